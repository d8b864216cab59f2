package tsa

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/digitorus/timestamp"
)

// Token is a parsed RFC 3161 TimeStampToken: a CMS SignedData (RFC 5652)
// whose content is a TSTInfo (RFC 3161 §2.4.2). Parsing does not decide
// whether it is trustworthy; Verify does.
type Token struct {
	// Raw is the DER TimeStampToken (a ContentInfo): what evidence embeds
	// and what `openssl ts -verify -token_in -in FILE` reads.
	Raw []byte
	// Response is the DER TimeStampResp the TSA sent, when the token came
	// from one (Client, ParseResponse); nil otherwise. See ResponseDER.
	Response []byte

	Time          time.Time     // genTime, in UTC
	Accuracy      time.Duration // 0 when the TSA did not state it
	Serial        *big.Int      // unique per TSA (RFC 3161 §2.4.2)
	Policy        asn1.ObjectIdentifier
	HashAlg       crypto.Hash // hash of the message imprint
	HashedMessage []byte
	Nonce         *big.Int // nil when the request had none
	Ordering      bool
	// Certificates are the certificates carried in the SignedData: the TSA
	// certificate when the request set certReq, sometimes its chain.
	Certificates []*x509.Certificate

	tstInfo []byte // eContent, the DER TSTInfo that was signed
	si      parsedSigner
}

// parsedSigner is the one SignerInfo of a token (RFC 3161 §2.4.2: the TSA's
// signature is the only one).
type parsedSigner struct {
	sid           asn1.RawValue
	digest        crypto.Hash // digestAlgorithm
	sigAlg        asn1.ObjectIdentifier
	signedAttrs   []byte // DER with the SET OF tag, as signed (RFC 5652 §5.4)
	signature     []byte
	contentType   asn1.ObjectIdentifier
	messageDigest []byte
	essHash       crypto.Hash // 0 when there is no ESS signing-certificate attribute
	essCertHash   []byte
	essSerial     *big.Int // from the optional IssuerSerial
}

// ParseResponse parses a DER TimeStampResp (a .tsr file, the body of an HTTP
// reply). A response that does not grant a token yields a *RefusedError.
func ParseResponse(der []byte) (*Token, error) {
	var resp timeStampResp
	rest, err := asn1.Unmarshal(der, &resp)
	if err != nil {
		return nil, malformed("not a TimeStampResp: %s", asn1Reason(err))
	}
	if len(rest) > 0 {
		return nil, malformed("%d bytes of trailing data after the TimeStampResp", len(rest))
	}
	// RFC 3161 §2.4.2: a token is present only with granted or grantedWithMods.
	if st := timestamp.Status(resp.Status.Status); st != timestamp.Granted && st != timestamp.GrantedWithMods {
		return nil, refusal(resp.Status)
	}
	if len(resp.TimeStampToken.FullBytes) == 0 {
		return nil, malformed("status granted but no timeStampToken")
	}
	t, err := ParseToken(resp.TimeStampToken.FullBytes)
	if err != nil {
		return nil, err
	}
	t.Response = bytes.Clone(der)
	return t, nil
}

func refusal(si pkiStatusInfo) *RefusedError {
	e := &RefusedError{Status: timestamp.Status(si.Status)}
	for _, s := range si.StatusString {
		e.StatusText = append(e.StatusText, string(s.Bytes))
	}
	for i := 0; i < si.FailInfo.BitLength; i++ {
		if si.FailInfo.At(i) == 1 {
			e.FailInfo = append(e.FailInfo, timestamp.FailureInfo(i))
		}
	}
	return e
}

// ParseToken parses a DER TimeStampToken (RFC 3161 §2.4.2). It checks the
// structure only; call Verify to check the signature and the TSA.
func ParseToken(der []byte) (*Token, error) {
	der = bytes.Clone(der) // the Token's fields point into it
	var ci contentInfo
	rest, err := asn1.Unmarshal(der, &ci)
	if err != nil {
		return nil, malformed("not a CMS ContentInfo: %s", asn1Reason(err))
	}
	if len(rest) > 0 {
		return nil, malformed("%d bytes of trailing data after the token", len(rest))
	}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, malformed("content type %s, want signedData %s", ci.ContentType, oidSignedData)
	}
	var sd signedData
	if rest, err = asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil || len(rest) > 0 {
		return nil, malformed("bad SignedData: %s", errOrTrailing(err, rest))
	}
	// RFC 3161 §2.4.2: eContentType is id-ct-TSTInfo, eContent the DER TSTInfo.
	if !sd.EncapContentInfo.EContentType.Equal(oidTSTInfo) {
		return nil, malformed("encapsulated content type %s, want id-ct-TSTInfo %s", sd.EncapContentInfo.EContentType, oidTSTInfo)
	}
	if len(sd.EncapContentInfo.EContent) == 0 {
		return nil, malformed("no TSTInfo in the SignedData")
	}
	if len(sd.SignerInfos) != 1 {
		return nil, malformed("%d signerInfos, RFC 3161 §2.4.2 allows only the TSA's", len(sd.SignerInfos))
	}
	t := &Token{Raw: der, tstInfo: sd.EncapContentInfo.EContent}

	if t.Certificates, err = parseCertificateSet(sd.Certificates.Bytes); err != nil {
		return nil, err
	}
	if err := t.parseTSTInfo(); err != nil {
		return nil, err
	}
	if t.si, err = parseSignerInfo(sd.SignerInfos[0]); err != nil {
		return nil, err
	}
	return t, nil
}

// errOrTrailing describes why DER did not parse as one whole element.
func errOrTrailing(err error, rest []byte) string {
	if err != nil {
		return asn1Reason(err)
	}
	return fmt.Sprintf("%d bytes of trailing data", len(rest))
}

// parseCertificateSet reads a CertificateSet (RFC 5652 §10.2.3), keeping the
// X.509 certificates and skipping attribute and other certificates.
func parseCertificateSet(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil, malformed("bad certificates field: %s", asn1Reason(err))
		}
		b = rest
		if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagSequence {
			continue
		}
		c, err := x509.ParseCertificate(v.FullBytes)
		if err != nil {
			return nil, malformed("bad certificate in the token: %s", asn1Reason(err))
		}
		certs = append(certs, c)
	}
	return certs, nil
}

func (t *Token) parseTSTInfo() error {
	var info tstInfo
	rest, err := asn1.Unmarshal(t.tstInfo, &info)
	if err != nil || len(rest) > 0 {
		return malformed("bad TSTInfo: %s", errOrTrailing(err, rest))
	}
	if info.Version != 1 {
		return malformed("TSTInfo version %d, want 1", info.Version)
	}
	if t.Time, err = parseGenTime(info.GenTime); err != nil {
		return malformed("%s", asn1Reason(err))
	}
	t.HashAlg = hashFromOID(info.MessageImprint.HashAlgorithm.Algorithm)
	if t.HashAlg == 0 {
		return malformed("message imprint uses unknown hash algorithm %s", info.MessageImprint.HashAlgorithm.Algorithm)
	}
	if len(info.MessageImprint.HashedMessage) != t.HashAlg.Size() {
		return malformed("message imprint is %d bytes, %v needs %d", len(info.MessageImprint.HashedMessage), t.HashAlg, t.HashAlg.Size())
	}
	if info.SerialNumber == nil {
		return malformed("TSTInfo without serial number")
	}
	t.HashedMessage = info.MessageImprint.HashedMessage
	t.Policy = info.Policy
	t.Serial = info.SerialNumber
	t.Accuracy = info.Accuracy.duration()
	t.Ordering = info.Ordering
	t.Nonce = info.Nonce
	return nil
}

func parseSignerInfo(si signerInfo) (parsedSigner, error) {
	p := parsedSigner{sid: si.SID, sigAlg: si.SignatureAlgorithm.Algorithm, signature: si.Signature}
	if p.digest = hashFromOID(si.DigestAlgorithm.Algorithm); p.digest == 0 {
		return p, malformed("signer uses unknown digest algorithm %s", si.DigestAlgorithm.Algorithm)
	}
	if len(si.SignedAttrs.FullBytes) == 0 {
		// RFC 3161 §2.4.2 requires the ESS signingCertificate attribute, so a
		// token always has signed attributes.
		return p, malformed("signerInfo without signed attributes (RFC 3161 §2.4.2 requires signingCertificate)")
	}
	// RFC 5652 §5.4: the signature covers the DER of the attributes with the
	// EXPLICIT SET OF tag, not the [0] IMPLICIT tag they are sent with.
	p.signedAttrs = bytes.Clone(si.SignedAttrs.FullBytes)
	p.signedAttrs[0] = 0x31
	b := si.SignedAttrs.Bytes
	for len(b) > 0 {
		var a attribute
		rest, err := asn1.Unmarshal(b, &a)
		if err != nil {
			return p, malformed("bad signed attribute: %s", asn1Reason(err))
		}
		b = rest
		switch {
		case a.Type.Equal(oidAttrContentType):
			if _, err := asn1.Unmarshal(a.Values.Bytes, &p.contentType); err != nil {
				return p, malformed("bad content-type attribute: %s", asn1Reason(err))
			}
		case a.Type.Equal(oidAttrMessageDigest):
			if _, err := asn1.Unmarshal(a.Values.Bytes, &p.messageDigest); err != nil {
				return p, malformed("bad message-digest attribute: %s", asn1Reason(err))
			}
		case a.Type.Equal(oidAttrSigningCertV2):
			var sc signingCertificateV2
			if _, err := asn1.Unmarshal(a.Values.Bytes, &sc); err != nil {
				return p, malformed("bad signingCertificateV2 attribute: %s", asn1Reason(err))
			}
			if len(sc.Certs) == 0 {
				return p, malformed("empty signingCertificateV2 attribute")
			}
			id := sc.Certs[0] // RFC 5035 §3: the first identifies the signer's certificate
			p.essHash = crypto.SHA256
			if len(id.HashAlgorithm.Algorithm) > 0 {
				if p.essHash = hashFromOID(id.HashAlgorithm.Algorithm); p.essHash == 0 {
					return p, malformed("signingCertificateV2 uses unknown hash %s", id.HashAlgorithm.Algorithm)
				}
			}
			p.essCertHash, p.essSerial = id.CertHash, essSerial(id.IssuerSerial)
		case a.Type.Equal(oidAttrSigningCert):
			if p.essHash != 0 {
				continue // v2 wins when a TSA sends both
			}
			var sc signingCertificate
			if _, err := asn1.Unmarshal(a.Values.Bytes, &sc); err != nil {
				return p, malformed("bad signingCertificate attribute: %s", asn1Reason(err))
			}
			if len(sc.Certs) == 0 {
				return p, malformed("empty signingCertificate attribute")
			}
			p.essHash, p.essCertHash, p.essSerial = crypto.SHA1, sc.Certs[0].CertHash, essSerial(sc.Certs[0].IssuerSerial)
		}
	}
	return p, nil
}

func essSerial(v asn1.RawValue) *big.Int {
	if len(v.FullBytes) == 0 {
		return nil
	}
	var is essIssuerSerial
	if _, err := asn1.Unmarshal(v.FullBytes, &is); err != nil {
		return nil
	}
	return is.Serial
}

// ResponseDER returns a DER TimeStampResp holding the token: the TSA's own
// response when the token came from one, otherwise a granted response built
// around it. `openssl ts -verify -in FILE` and `ts -reply -in FILE` want a
// response; `-token_in` accepts Raw.
func (t *Token) ResponseDER() []byte {
	if t.Response != nil {
		return bytes.Clone(t.Response)
	}
	return grantedResponse(t.Raw)
}

func grantedResponse(token []byte) []byte {
	return mustMarshal(timeStampResp{
		Status:         pkiStatusInfo{Status: int(timestamp.Granted)},
		TimeStampToken: asn1.RawValue{FullBytes: token},
	})
}

// VerifyData is Verify for the data itself, hashed with the token's hash.
func (t *Token) VerifyData(data []byte, roots *x509.CertPool, intermediates []*x509.Certificate) error {
	if !t.HashAlg.Available() {
		return fmt.Errorf("tsa: hash %v not available", t.HashAlg)
	}
	h := t.HashAlg.New()
	h.Write(data)
	return t.Verify(h.Sum(nil), roots, intermediates)
}

// Verify checks that the token time-stamps digest (computed with t.HashAlg)
// and was made by a trusted TSA:
//
//   - the message imprint equals digest;
//   - the CMS signature verifies with the signer's certificate, taken from the
//     token or from intermediates (tokens requested without certReq carry
//     none), and the signed attributes bind the content (content type,
//     message digest) and that very certificate (ESS signingCertificate,
//     RFC 3161 §2.4.2, RFC 5035);
//   - the certificate is a TSA certificate (RFC 3161 §2.3: critical
//     extendedKeyUsage with only id-kp-timeStamping);
//   - it chains to roots, with every certificate valid at the token's time
//     (not now: a token stays valid after the TSA certificate expires).
//     A nil roots means the system roots.
//
// Revocation is not checked.
func (t *Token) Verify(digest []byte, roots *x509.CertPool, intermediates []*x509.Certificate) error {
	if !bytes.Equal(t.HashedMessage, digest) {
		return fmt.Errorf("%w: the token time-stamps %v %s, not %s", ErrImprintMismatch, t.HashAlg, shortHex(t.HashedMessage), shortHex(digest))
	}
	cert, err := t.checkSignature(intermediates)
	if err != nil {
		return err
	}
	if err := CheckTSACertificate(cert); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, c := range slices.Concat(t.Certificates, intermediates) {
		pool.AddCert(c)
	}
	_, err = cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: pool,
		CurrentTime:   t.Time,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	})
	if err != nil {
		return chainError(cert, t.Time, err)
	}
	return nil
}

// Signer returns the certificate that signed the token, looked up among the
// token's certificates and extra, without checking anything else.
func (t *Token) Signer(extra []*x509.Certificate) *x509.Certificate {
	for _, c := range slices.Concat(t.Certificates, extra) {
		if t.si.identifies(c) {
			return c
		}
	}
	return nil
}

// identifies reports whether the SignerIdentifier (RFC 5652 §5.3) names c.
func (p *parsedSigner) identifies(c *x509.Certificate) bool {
	if p.sid.Class == asn1.ClassContextSpecific && p.sid.Tag == 0 {
		return len(c.SubjectKeyId) > 0 && bytes.Equal(p.sid.Bytes, c.SubjectKeyId)
	}
	var ias issuerAndSerial
	if _, err := asn1.Unmarshal(p.sid.FullBytes, &ias); err != nil || ias.Serial == nil {
		return false
	}
	return ias.Serial.Cmp(c.SerialNumber) == 0 && bytes.Equal(ias.Issuer.FullBytes, c.RawIssuer)
}

// checkSignature verifies the SignerInfo (RFC 5652 §5.4, §5.6) and the ESS
// binding to the certificate, and returns the signer's certificate.
func (t *Token) checkSignature(extra []*x509.Certificate) (*x509.Certificate, error) {
	p := &t.si
	cert := t.Signer(extra)
	if cert == nil {
		if len(t.Certificates) == 0 {
			return nil, fmt.Errorf("%w: the token carries no certificate (requested without certReq?) and none of the %d supplied matches its signer", ErrBadSignature, len(extra))
		}
		return nil, fmt.Errorf("%w: no certificate in the token or supplied matches its signer", ErrBadSignature)
	}
	if !p.contentType.Equal(oidTSTInfo) {
		return nil, fmt.Errorf("%w: content-type attribute is %q, want id-ct-TSTInfo", ErrBadSignature, p.contentType.String())
	}
	h := p.digest.New()
	h.Write(t.tstInfo)
	if subtle.ConstantTimeCompare(h.Sum(nil), p.messageDigest) != 1 {
		return nil, fmt.Errorf("%w: message-digest attribute does not match the TSTInfo (content altered)", ErrBadSignature)
	}
	alg, err := signatureAlgorithm(p.sigAlg, p.digest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if err := cert.CheckSignature(alg, p.signedAttrs, p.signature); err != nil {
		return nil, fmt.Errorf("%w: signature by %q does not verify: %v", ErrBadSignature, cert.Subject.CommonName, err)
	}
	// RFC 3161 §2.4.2 / RFC 5035: the signed ESSCertID pins the certificate,
	// so another certificate with the same key cannot be substituted.
	if p.essHash == 0 {
		return nil, fmt.Errorf("%w: no ESS signingCertificate attribute (RFC 3161 §2.4.2 requires one)", ErrBadSignature)
	}
	var sum []byte
	if p.essHash == crypto.SHA1 {
		s := sha1.Sum(cert.Raw)
		sum = s[:]
	} else {
		hh := p.essHash.New()
		hh.Write(cert.Raw)
		sum = hh.Sum(nil)
	}
	if !bytes.Equal(sum, p.essCertHash) || (p.essSerial != nil && p.essSerial.Cmp(cert.SerialNumber) != 0) {
		return nil, fmt.Errorf("%w: ESS signingCertificate attribute names another certificate than %q", ErrBadSignature, cert.Subject.CommonName)
	}
	return cert, nil
}

// CheckTSACertificate checks what RFC 3161 §2.3 asks of a TSA certificate:
// the extendedKeyUsage extension is present, critical, and holds only
// id-kp-timeStamping; if keyUsage is present it allows digitalSignature or
// nonRepudiation. (OpenSSL enforces the same and otherwise says
// "unsuitable certificate purpose".)
func CheckTSACertificate(c *x509.Certificate) error {
	name := c.Subject.CommonName
	var found bool
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidExtKeyUsage) {
			continue
		}
		found = true
		if !e.Critical {
			return fmt.Errorf("%w: %q has a non-critical extendedKeyUsage; RFC 3161 §2.3 requires it critical", ErrNotTSACertificate, name)
		}
		var ekus []asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(e.Value, &ekus); err != nil {
			return fmt.Errorf("%w: %q has a malformed extendedKeyUsage: %v", ErrNotTSACertificate, name, err)
		}
		if len(ekus) != 1 || !ekus[0].Equal(oidKPTimeStamping) {
			return fmt.Errorf("%w: %q has extendedKeyUsage %v; RFC 3161 §2.3 requires only id-kp-timeStamping (%s)", ErrNotTSACertificate, name, ekus, oidKPTimeStamping)
		}
	}
	if !found {
		return fmt.Errorf("%w: %q has no extendedKeyUsage; RFC 3161 §2.3 requires a critical id-kp-timeStamping", ErrNotTSACertificate, name)
	}
	if c.KeyUsage != 0 && c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return fmt.Errorf("%w: %q keyUsage allows neither digitalSignature nor nonRepudiation", ErrNotTSACertificate, name)
	}
	return nil
}

func chainError(cert *x509.Certificate, at time.Time, err error) error {
	name := cert.Subject.CommonName
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		c := inv.Cert
		return fmt.Errorf("%w: certificate %q was not valid at the token's time %s (valid %s to %s)", ErrUntrustedTSA,
			c.Subject.CommonName, at.Format(time.RFC3339), c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	case errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage:
		return fmt.Errorf("%w: a CA above %q does not allow time stamping: %v", ErrNotTSACertificate, name, err)
	case errors.As(err, &ua):
		return fmt.Errorf("%w: %q (issued by %q) does not chain to a trusted root", ErrUntrustedTSA, name, cert.Issuer.CommonName)
	}
	return fmt.Errorf("%w: %q: %v", ErrUntrustedTSA, name, err)
}

func shortHex(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		s = s[:16] + "…"
	}
	return strings.ToLower(s)
}
