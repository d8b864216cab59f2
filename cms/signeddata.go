package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sync"

	_ "crypto/sha1" // SHA-1 is still needed for the signing-certificate (v1) attribute
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// Object identifiers (RFC 5652 §14, RFC 5035, RFC 5754, RFC 8419, RFC 4055).
var (
	oidData              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidEnvelopedData     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidEncryptedData     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidAuthEnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23}

	oidAttrContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	// id-aa-signingCertificate (RFC 2634 §5.4) and id-aa-signingCertificateV2
	// (RFC 5035 §3).
	oidAttrSigningCertificate   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 12}
	oidAttrSigningCertificateV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}

	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSASSAPSS       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidSHA1WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA224WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 14}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidECDSAWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSAWithSHA224 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 1}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// ASN.1 structures of RFC 5652. Fields whose exact bytes matter (signed
// attributes, certificates, signer identifier) are kept raw.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue // SET OF; unused: each SignerInfo names its own
	EncapContentInfo encapsulatedContentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      asn1.RawValue // SET OF SignerInfo
}

type encapsulatedContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

// RawSigner is a SignerInfo (RFC 5652 §5.3) as carried.
type RawSigner struct {
	Version            int
	SID                asn1.RawValue // issuerAndSerialNumber or [0] subjectKeyIdentifier
	DigestAlgorithm    pkix.AlgorithmIdentifier
	SignedAttrs        asn1.RawValue `asn1:"optional,tag:0"`
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
	UnsignedAttrs      asn1.RawValue `asn1:"optional,tag:1"`
}

type issuerAndSerialNumber struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue // SET OF AttributeValue
}

// ESSCertID (RFC 2634 §5.4.1) and ESSCertIDv2 (RFC 5035 §4); hashAlgorithm
// exists only in v2, where it defaults to SHA-256.
type essCertID struct {
	HashAlgorithm pkix.AlgorithmIdentifier `asn1:"optional"`
	CertHash      []byte
	IssuerSerial  asn1.RawValue `asn1:"optional"`
}

type signingCertificate struct {
	Certs    []essCertID
	Policies asn1.RawValue `asn1:"optional"`
}

// verifiedData is the outcome of checking a CMS SignedData.
type verifiedData struct {
	content []byte
	certs   []*x509.Certificate
	signers []SignerInfo
}

// digestMismatchError marks a messageDigest that does not match the content,
// so that Verify can retry a multipart/signed part without canonicalisation.
type digestMismatchError struct{ hash crypto.Hash }

func (e digestMismatchError) Error() string {
	return fmt.Sprintf("%v: the %v digest of the content does not match the signed messageDigest (the content was changed, or the signature belongs to another message)", ErrBadSignature, e.hash)
}

func (e digestMismatchError) Unwrap() error { return ErrBadSignature }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func wrap(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// SignedData is the project's one ASN.1 model of a CMS SignedData
// (RFC 5652 §5.1) inside its ContentInfo (§3). Package cms reads S/MIME
// signatures with it, package tsa reads RFC 3161 time-stamp tokens with it
// (a token is a SignedData over a TSTInfo), and package evidence checks the
// tokens of a bundle through tsa. Fields whose exact bytes matter (signed
// attributes, signer identifiers) are kept raw. VerifySigner checks a
// signature under an algorithm Policy.
type SignedData struct {
	// Raw is the ContentInfo in DER: the input itself, or its BER turned
	// into DER lengths (normalizeBER).
	Raw              []byte
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier
	// ContentType is eContentType: id-data for S/MIME, id-ct-TSTInfo for a
	// time-stamp token.
	ContentType asn1.ObjectIdentifier
	// Content is eContent, nil when the signature is detached.
	Content []byte
	// Certificates are the X.509 certificates carried, in order.
	Certificates []*x509.Certificate
	// CRLs is the raw [1] revocationInfoChoices field, nil when absent.
	CRLs    []byte
	Signers []RawSigner

	certErr   error // the first carried certificate Go could not parse
	rewritten bool  // the input was BER, not DER lengths
	ci        contentInfo
	sd        signedData
}

// ParseSignedData reads a ContentInfo holding a SignedData, in BER or DER.
// It checks the structure only. Errors wrap ErrMalformed, ErrEncrypted
// (enveloped data) or ErrNotSigned (another content type, or no signer).
func ParseSignedData(ber []byte) (*SignedData, error) {
	der, err := normalizeBER(ber)
	if err != nil {
		return nil, malformed("CMS: %v", err)
	}
	out := &SignedData{Raw: der, rewritten: len(der) != len(ber) || len(ber) == 0 || &der[0] != &ber[0]}
	ci := &out.ci
	if rest, err := asn1.Unmarshal(der, ci); err != nil {
		return nil, malformed("CMS ContentInfo: %v", err)
	} else if len(rest) > 0 {
		return nil, malformed("CMS ContentInfo: trailing data")
	}
	switch {
	case ci.ContentType.Equal(oidSignedData):
	case ci.ContentType.Equal(oidEnvelopedData), ci.ContentType.Equal(oidAuthEnvelopedData), ci.ContentType.Equal(oidEncryptedData):
		return nil, wrap(ErrEncrypted, "CMS content type %v", ci.ContentType)
	default:
		return nil, wrap(ErrNotSigned, "CMS content type %v is not signed-data", ci.ContentType)
	}
	sd := &out.sd
	if rest, err := asn1.Unmarshal(ci.Content.Bytes, sd); err != nil {
		return nil, malformed("CMS SignedData: %v", err)
	} else if len(rest) > 0 {
		return nil, malformed("CMS SignedData: trailing data")
	}
	out.Version = sd.Version
	isSet := func(v asn1.RawValue) bool {
		return v.Class == asn1.ClassUniversal && v.Tag == asn1.TagSet && v.IsCompound
	}
	if !isSet(sd.DigestAlgorithms) || !isSet(sd.SignerInfos) {
		return nil, malformed("CMS SignedData: digestAlgorithms and signerInfos must be SETs")
	}
	for rest := sd.DigestAlgorithms.Bytes; len(rest) > 0; {
		var a pkix.AlgorithmIdentifier
		if rest, err = asn1.Unmarshal(rest, &a); err != nil {
			return nil, malformed("CMS digestAlgorithms: %v", err)
		}
		out.DigestAlgorithms = append(out.DigestAlgorithms, a)
	}
	out.ContentType = sd.EncapContentInfo.EContentType
	if len(sd.EncapContentInfo.EContent.FullBytes) > 0 {
		var oct asn1.RawValue
		if rest, err := asn1.Unmarshal(sd.EncapContentInfo.EContent.Bytes, &oct); err != nil || len(rest) > 0 || oct.Class != asn1.ClassUniversal || oct.Tag != asn1.TagOctetString || oct.IsCompound {
			return nil, malformed("CMS eContent is not an OCTET STRING")
		}
		out.Content = oct.Bytes
		if out.Content == nil {
			out.Content = []byte{}
		}
	}
	out.CRLs = sd.CRLs.FullBytes
	out.Certificates, out.certErr = parseCertificates(sd.Certificates)

	for rest := sd.SignerInfos.Bytes; len(rest) > 0; {
		var si RawSigner
		if rest, err = asn1.Unmarshal(rest, &si); err != nil {
			return nil, malformed("CMS SignerInfo: %v", err)
		}
		out.Signers = append(out.Signers, si)
	}
	if len(out.Signers) == 0 {
		return nil, wrap(ErrNotSigned, "the CMS structure has no signer (certs-only)")
	}
	return out, nil
}

// CheckDER reports an error unless the input was DER: definite minimal
// lengths throughout (BER was not normalised), and the ContentInfo,
// SignedData, encapsulated content and SignerInfos byte for byte the
// encoding of their parsed fields (encoding/asn1 does not check the length
// of an EXPLICIT tag against the element inside it).
func (sd *SignedData) CheckDER() error {
	if sd.rewritten {
		return malformed("the CMS structure is BER, not DER")
	}
	var sis []byte
	for i := range sd.Signers {
		b, err := asn1.Marshal(sd.Signers[i])
		if err != nil {
			return malformed("SignerInfo: %v", err)
		}
		sis = append(sis, b...)
	}
	if !bytes.Equal(sis, sd.sd.SignerInfos.Bytes) {
		return malformed("the CMS SignerInfos are not DER")
	}
	inner, err := asn1.Marshal(sd.sd)
	if err != nil {
		return malformed("SignedData: %v", err)
	}
	ci := sd.ci
	ci.Content = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner}
	outer, err := asn1.Marshal(ci)
	if err != nil || !bytes.Equal(outer, sd.Raw) {
		return malformed("the CMS structure is not DER: it differs from the encoding of its own fields")
	}
	return nil
}

// VerifySigner checks signer i (RFC 5652 §5.4, §5.6) over content (nil:
// the encapsulated content) under policy p, looking for the signer's
// certificate among certs (nil: the certificates carried). It checks that
// the signature is mathematically valid, that the signed attributes bind the
// content (contentType, messageDigest) and, when an ESS signing-certificate
// attribute is present, that it names that certificate (RFC 5035 §5.4).
// It does not check the certificate's chain, validity or key usage.
// Errors wrap ErrBadSignature, ErrNoSignerCert, ErrMalformed or
// ErrUnsupportedAlgorithm.
func (sd *SignedData) VerifySigner(i int, content []byte, certs []*x509.Certificate, p Policy) (SignerInfo, error) {
	if content == nil {
		content = sd.Content
	}
	certErr := error(nil)
	if certs == nil {
		certs, certErr = sd.Certificates, sd.certErr
	}
	return verifySigner(&sd.Signers[i], sd.ContentType, content, certs, certErr, map[crypto.Hash][]byte{}, p)
}

// verifySignedData checks a CMS ContentInfo holding SignedData (RFC 5652 §5)
// under the policy for new signatures. For a detached signature
// (multipart/signed) content is the signed content; otherwise
// (application/pkcs7-mime) the content is encapsulated. Every SignerInfo
// must verify, as openssl requires.
func verifySignedData(sig []byte, detached bool, content []byte) (*verifiedData, error) {
	sd, err := ParseSignedData(sig)
	if err != nil {
		return nil, err
	}
	// The content: encapsulated, or given beside a detached signature.
	if sd.Content != nil {
		if detached {
			return nil, malformed("the detached signature of a multipart/signed message also encapsulates content")
		}
		content = sd.Content
	} else if !detached {
		return nil, malformed("application/pkcs7-mime signed-data without encapsulated content")
	}

	v := &verifiedData{content: content, certs: sd.Certificates}
	digests := map[crypto.Hash][]byte{}
	for i := range sd.Signers {
		s, err := verifySigner(&sd.Signers[i], sd.ContentType, content, sd.Certificates, sd.certErr, digests, Current)
		if err != nil {
			if len(sd.Signers) > 1 {
				return nil, fmt.Errorf("signer %d: %w", i+1, err)
			}
			return nil, err
		}
		v.signers = append(v.signers, s)
	}
	return v, nil
}

// parseCertificates reads the CertificateSet (RFC 5652 §10.2.3), skipping the
// choices that are not X.509 certificates. A certificate Go cannot parse is
// skipped too (it may be an irrelevant extra); the first such error is
// returned to explain a missing signer certificate.
func parseCertificates(set asn1.RawValue) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	var firstErr error
	for rest := set.Bytes; len(rest) > 0; {
		var raw asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &raw); err != nil {
			return certs, err
		}
		if raw.Class != asn1.ClassUniversal || raw.Tag != asn1.TagSequence {
			continue // attribute certificate or other format
		}
		c, err := parseCertificate(raw.FullBytes)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		certs = append(certs, c)
	}
	return certs, firstErr
}

// certCache holds certificates parsed from DER, by their bytes: a user's
// certificate and chain arrive with each message they sign, and parsing
// them was a tenth of the verification's cost. A parsed certificate is
// never changed after parsing, so one may be shared.
var certCache struct {
	sync.Mutex
	m map[string]*x509.Certificate
}

// certCacheSize bounds the cache; when full it starts again empty.
const certCacheSize = 4096

// parseCertificate is x509.ParseCertificate through certCache.
func parseCertificate(der []byte) (*x509.Certificate, error) {
	certCache.Lock()
	c := certCache.m[string(der)]
	certCache.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	certCache.Lock()
	if certCache.m == nil || len(certCache.m) >= certCacheSize {
		certCache.m = map[string]*x509.Certificate{}
	}
	certCache.m[string(der)] = c
	certCache.Unlock()
	return c, nil
}

// findSigner matches the SignerIdentifier (RFC 5652 §5.3) against certs.
func findSigner(sid asn1.RawValue, certs []*x509.Certificate) (*x509.Certificate, error) {
	switch {
	case sid.Class == asn1.ClassUniversal && sid.Tag == asn1.TagSequence:
		var ias issuerAndSerialNumber
		if rest, err := asn1.Unmarshal(sid.FullBytes, &ias); err != nil || len(rest) > 0 {
			return nil, malformed("SignerInfo issuerAndSerialNumber: %v", err)
		}
		for _, c := range certs {
			if c.SerialNumber.Cmp(ias.Serial) == 0 && bytes.Equal(c.RawIssuer, ias.Issuer.FullBytes) {
				return c, nil
			}
		}
		return nil, nil
	case sid.Class == asn1.ClassContextSpecific && sid.Tag == 0 && !sid.IsCompound:
		for _, c := range certs {
			if len(c.SubjectKeyId) > 0 && bytes.Equal(c.SubjectKeyId, sid.Bytes) {
				return c, nil
			}
		}
		return nil, nil
	}
	return nil, malformed("SignerInfo has an unknown signer identifier")
}

func hashForDigestOID(oid asn1.ObjectIdentifier) (crypto.Hash, error) {
	switch {
	case oid.Equal(oidSHA256), oid.Equal(oidSHA256WithRSA), oid.Equal(oidECDSAWithSHA256):
		return crypto.SHA256, nil
	case oid.Equal(oidSHA384), oid.Equal(oidSHA384WithRSA), oid.Equal(oidECDSAWithSHA384):
		return crypto.SHA384, nil
	case oid.Equal(oidSHA512), oid.Equal(oidSHA512WithRSA), oid.Equal(oidECDSAWithSHA512):
		return crypto.SHA512, nil
	case oid.Equal(oidSHA224), oid.Equal(oidSHA224WithRSA), oid.Equal(oidECDSAWithSHA224):
		return crypto.SHA224, nil
	case oid.Equal(oidSHA1), oid.Equal(oidSHA1WithRSA), oid.Equal(oidECDSAWithSHA1):
		// Known, so that Policy can say why it is refused (or accept it in
		// old evidence).
		return crypto.SHA1, nil
	}
	return 0, wrap(ErrUnsupportedAlgorithm, "digest algorithm %v", oid)
}

// signatureAlgorithm names the x509 constant for a signer's algorithms, for
// reporting only (verification below does not depend on it).
func signatureAlgorithm(family string, h crypto.Hash) x509.SignatureAlgorithm {
	switch family {
	case "ed25519":
		return x509.PureEd25519
	case "rsa":
		switch h {
		case crypto.SHA256:
			return x509.SHA256WithRSA
		case crypto.SHA384:
			return x509.SHA384WithRSA
		case crypto.SHA512:
			return x509.SHA512WithRSA
		}
	case "pss":
		switch h {
		case crypto.SHA256:
			return x509.SHA256WithRSAPSS
		case crypto.SHA384:
			return x509.SHA384WithRSAPSS
		case crypto.SHA512:
			return x509.SHA512WithRSAPSS
		}
	case "ecdsa":
		switch h {
		case crypto.SHA256:
			return x509.ECDSAWithSHA256
		case crypto.SHA384:
			return x509.ECDSAWithSHA384
		case crypto.SHA512:
			return x509.ECDSAWithSHA512
		}
	}
	return x509.UnknownSignatureAlgorithm
}

// verifySigner checks one SignerInfo (RFC 5652 §5.4 and §5.6).
func verifySigner(si *RawSigner, eContentType asn1.ObjectIdentifier, content []byte, certs []*x509.Certificate, certErr error, digests map[crypto.Hash][]byte, p Policy) (SignerInfo, error) {
	var out SignerInfo
	cert, err := findSigner(si.SID, certs)
	if err != nil {
		return out, err
	}
	if cert == nil {
		if certErr != nil {
			return out, wrap(ErrNoSignerCert, "no carried certificate matches the signer (one could not be parsed: %v)", certErr)
		}
		return out, wrap(ErrNoSignerCert, "no carried certificate matches the signer")
	}
	out.Certificate = cert
	h, err := hashForDigestOID(si.DigestAlgorithm.Algorithm)
	if err != nil {
		return out, err
	}
	out.DigestAlgorithm = h
	if err := p.CheckDigest(h); err != nil {
		return out, err
	}
	digest := func(b []byte) []byte {
		hh := h.New()
		hh.Write(b)
		return hh.Sum(nil)
	}
	contentDigest, ok := digests[h]
	if !ok {
		contentDigest = digest(content)
		digests[h] = contentDigest
	}

	// What the signature covers: the DER of the signed attributes with the
	// [0] IMPLICIT tag replaced by SET OF (RFC 5652 §5.4), or the content
	// itself when there are none (allowed only for id-data).
	var signed []byte
	var attrs []attribute
	if len(si.SignedAttrs.FullBytes) > 0 {
		if attrs, err = parseAttributes(si.SignedAttrs.Bytes); err != nil {
			return out, err
		}
		ct, err := singleValue(attrs, oidAttrContentType)
		if err != nil {
			return out, err
		}
		var ctOID asn1.ObjectIdentifier
		if ct == nil {
			return out, malformed("signed attributes lack contentType (RFC 5652 §11.1)")
		} else if _, err := asn1.Unmarshal(ct, &ctOID); err != nil {
			return out, malformed("contentType attribute: %v", err)
		} else if !ctOID.Equal(eContentType) {
			return out, wrap(ErrBadSignature, "signed contentType %v differs from the content's type %v", ctOID, eContentType)
		}
		md, err := singleValue(attrs, oidAttrMessageDigest)
		if err != nil {
			return out, err
		}
		var mdValue []byte
		if md == nil {
			return out, malformed("signed attributes lack messageDigest (RFC 5652 §11.2)")
		} else if _, err := asn1.Unmarshal(md, &mdValue); err != nil {
			return out, malformed("messageDigest attribute: %v", err)
		}
		if !bytes.Equal(mdValue, contentDigest) {
			return out, digestMismatchError{h}
		}
		st, err := singleValue(attrs, oidAttrSigningTime)
		if err != nil {
			return out, err
		}
		if st != nil {
			if _, err := asn1.Unmarshal(st, &out.SigningTime); err != nil {
				return out, malformed("signingTime attribute: %v", err)
			}
			out.SigningTime = out.SigningTime.UTC()
		}
		signed = append([]byte{0x31}, si.SignedAttrs.FullBytes[1:]...)
	} else {
		if !eContentType.Equal(oidData) {
			return out, malformed("SignerInfo without signed attributes over content type %v (RFC 5652 §5.3)", eContentType)
		}
		signed = content
	}

	if err := p.CheckKey(cert.PublicKey); err != nil {
		return out, err
	}
	if err := checkSignature(si, cert, h, signed, &out); err != nil {
		return out, err
	}

	// The signing-certificate attributes bind the signature to one
	// certificate, so the signer's certificate cannot be swapped for another
	// with the same key (RFC 5035 §5.4, RFC 2634 §5.4).
	for _, a := range []struct {
		oid asn1.ObjectIdentifier
		def crypto.Hash
	}{{oidAttrSigningCertificateV2, crypto.SHA256}, {oidAttrSigningCertificate, crypto.SHA1}} {
		v, err := singleValue(attrs, a.oid)
		if err != nil {
			return out, err
		}
		if v == nil {
			continue
		}
		if err := checkSigningCertificate(v, a.def, cert); err != nil {
			return out, err
		}
		out.CertificateBound = true
	}
	return out, nil
}

func checkSignature(si *RawSigner, cert *x509.Certificate, h crypto.Hash, signed []byte, out *SignerInfo) error {
	alg := si.SignatureAlgorithm.Algorithm
	var family string
	switch {
	case alg.Equal(oidRSAEncryption), alg.Equal(oidSHA256WithRSA), alg.Equal(oidSHA384WithRSA),
		alg.Equal(oidSHA512WithRSA), alg.Equal(oidSHA224WithRSA), alg.Equal(oidSHA1WithRSA):
		family = "rsa"
	case alg.Equal(oidRSASSAPSS):
		family = "pss"
	case alg.Equal(oidECPublicKey), alg.Equal(oidECDSAWithSHA256), alg.Equal(oidECDSAWithSHA384),
		alg.Equal(oidECDSAWithSHA512), alg.Equal(oidECDSAWithSHA224), alg.Equal(oidECDSAWithSHA1):
		family = "ecdsa"
	case alg.Equal(oidEd25519):
		family = "ed25519"
	default:
		return wrap(ErrUnsupportedAlgorithm, "signature algorithm %v", alg)
	}
	// An identifier that names its hash (sha384WithRSAEncryption,
	// ecdsa-with-SHA256) must name the digest algorithm's: a verifier that
	// trusted the one and another the other would disagree.
	if named, err := hashForDigestOID(alg); err == nil && family != "pss" && !alg.Equal(oidRSAEncryption) && !alg.Equal(oidECPublicKey) && named != h {
		return wrap(ErrBadSignature, "the signature algorithm %v names %v, the digest algorithm is %v", alg, named, h)
	}
	out.SignatureAlgorithm = signatureAlgorithm(family, h)
	hashed := func() []byte {
		hh := h.New()
		hh.Write(signed)
		return hh.Sum(nil)
	}
	var err error
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		switch family {
		case "rsa":
			err = rsa.VerifyPKCS1v15(pub, h, hashed(), si.Signature)
		case "pss":
			if perr := checkPSSParams(si.SignatureAlgorithm.Parameters, h); perr != nil {
				return perr
			}
			err = rsa.VerifyPSS(pub, h, hashed(), si.Signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		default:
			err = fmt.Errorf("signature algorithm %v with an RSA certificate key", alg)
		}
	case *ecdsa.PublicKey:
		if family != "ecdsa" {
			err = fmt.Errorf("signature algorithm %v with an ECDSA certificate key", alg)
		} else if !ecdsa.VerifyASN1(pub, hashed(), si.Signature) {
			err = errors.New("ECDSA verification failed")
		}
	case ed25519.PublicKey:
		if family != "ed25519" {
			err = fmt.Errorf("signature algorithm %v with an Ed25519 certificate key", alg)
		} else if !ed25519.Verify(pub, signed, si.Signature) {
			err = errors.New("Ed25519 verification failed")
		}
	default:
		return wrap(ErrUnsupportedAlgorithm, "certificate key type %T", cert.PublicKey)
	}
	if err != nil {
		return wrap(ErrBadSignature, "the signature does not verify with the signer's certificate (%v)", err)
	}
	return nil
}

// checkPSSParams accepts RSASSA-PSS parameters (RFC 4055 §3.1) whose hash and
// MGF1 hash are the signer's digest algorithm; the salt length is detected.
func checkPSSParams(params asn1.RawValue, h crypto.Hash) error {
	var p struct {
		Hash    pkix.AlgorithmIdentifier `asn1:"explicit,optional,tag:0"`
		MGF     pkix.AlgorithmIdentifier `asn1:"explicit,optional,tag:1"`
		Salt    int                      `asn1:"explicit,optional,tag:2"`
		Trailer int                      `asn1:"explicit,optional,tag:3"`
	}
	if _, err := asn1.Unmarshal(params.FullBytes, &p); err != nil {
		return malformed("RSASSA-PSS parameters: %v", err)
	}
	ph := crypto.SHA1 // the RFC 4055 default
	if len(p.Hash.Algorithm) > 0 {
		var err error
		if ph, err = hashForDigestOID(p.Hash.Algorithm); err != nil {
			return err
		}
	}
	if ph != h {
		return wrap(ErrUnsupportedAlgorithm, "RSASSA-PSS hash %v differs from the digest algorithm %v", ph, h)
	}
	return nil
}

// parseAttributes reads a SET OF Attribute body (RFC 5652 §5.3).
func parseAttributes(b []byte) ([]attribute, error) {
	var attrs []attribute
	for len(b) > 0 {
		var a attribute
		var err error
		if b, err = asn1.Unmarshal(b, &a); err != nil {
			return nil, malformed("signed attribute: %v", err)
		}
		if a.Values.Class != asn1.ClassUniversal || a.Values.Tag != asn1.TagSet || !a.Values.IsCompound {
			return nil, malformed("signed attribute %v: values are not a SET", a.Type)
		}
		attrs = append(attrs, a)
	}
	return attrs, nil
}

// singleValue returns the encoding of the one value of attribute oid, nil if
// absent. The attributes read here must appear once with one value (RFC 5652
// §11, RFC 5035 §5.4): a second copy could make two verifiers disagree.
func singleValue(attrs []attribute, oid asn1.ObjectIdentifier) ([]byte, error) {
	var found []byte
	for _, a := range attrs {
		if !a.Type.Equal(oid) {
			continue
		}
		if found != nil {
			return nil, malformed("signed attribute %v appears twice", oid)
		}
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(a.Values.Bytes, &v)
		if err != nil {
			return nil, malformed("signed attribute %v: %v", oid, err)
		}
		if len(rest) > 0 {
			return nil, malformed("signed attribute %v has more than one value", oid)
		}
		found = v.FullBytes
	}
	return found, nil
}

// checkSigningCertificate compares the first ESSCertID(v2) — the one naming
// the signing certificate — with cert.
func checkSigningCertificate(v []byte, def crypto.Hash, cert *x509.Certificate) error {
	var sc signingCertificate
	if rest, err := asn1.Unmarshal(v, &sc); err != nil || len(rest) > 0 {
		return malformed("signing-certificate attribute: %v", err)
	}
	if len(sc.Certs) == 0 {
		return malformed("signing-certificate attribute names no certificate")
	}
	id := sc.Certs[0]
	h := def
	if len(id.HashAlgorithm.Algorithm) > 0 {
		var err error
		if id.HashAlgorithm.Algorithm.Equal(oidSHA1) {
			h = crypto.SHA1 // a certificate hash, not a signature: SHA-1 is fine here
		} else if h, err = hashForDigestOID(id.HashAlgorithm.Algorithm); err != nil {
			return err
		}
	}
	hh := h.New()
	hh.Write(cert.Raw)
	if !bytes.Equal(hh.Sum(nil), id.CertHash) {
		return wrap(ErrBadSignature, "the ESS signing-certificate attribute names a different certificate than the one carried (RFC 5035 §5.4)")
	}
	if len(id.IssuerSerial.FullBytes) > 0 {
		var is struct {
			Issuer asn1.RawValue // GeneralNames
			Serial *big.Int
		}
		if rest, err := asn1.Unmarshal(id.IssuerSerial.FullBytes, &is); err != nil || len(rest) > 0 || is.Serial == nil {
			return malformed("signing-certificate attribute: bad issuerSerial")
		}
		if is.Serial.Cmp(cert.SerialNumber) != 0 {
			return wrap(ErrBadSignature, "the ESS signing-certificate attribute names serial number %v, the certificate has %v (RFC 5035 §4)", is.Serial, cert.SerialNumber)
		}
	}
	return nil
}
