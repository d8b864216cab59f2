package evidence

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Algorithm identifiers (XML-DSig 1.1, RFC 6931, Exclusive C14N 1.0).
const (
	AlgExcC14N      = "http://www.w3.org/2001/10/xml-exc-c14n#"
	AlgEnveloped    = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	AlgECDSASHA256  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	AlgRSASHA256    = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	TypeSignedProps = "http://uri.etsi.org/01903#SignedProperties" // XAdES: marks the reference to SignedProperties
)

// Fixed Id values. One evidence per document, so short constants suffice and
// keep the output deterministic: S is the ds:Signature (the target of
// xades:QualifyingProperties), R the reference to the evidence (the object
// of xades:DataObjectFormat), SP the xades:SignedProperties.
const (
	idSignature   = "S"
	idDocRef      = "R"
	idSignedProps = "SP"
)

// The signature is written from these pieces. Each of SignedInfo and
// SignedProperties is written exactly as Exclusive C14N renders it when it is
// canonicalised on its own (as the reference and signature processing do):
// it declares the namespaces it uses, even though the enclosing ds:Signature
// or xades:QualifyingProperties already did. Redundant declarations are legal
// XML, so the bytes we digest and sign are literally the bytes in the document.
const (
	sigStart = `<ds:Signature` + xmlnsDS + ` Id="` + idSignature + `">`

	// XML-DSig 4.4 SignedInfo; reference 1 is the whole document minus the
	// signature (URI="", enveloped-signature transform, 6.6.4), reference 2
	// the XAdES signed properties (EN 319 132-1: with the Type attribute that marks it).
	siStart = `<ds:SignedInfo` + xmlnsDS + `>` +
		`<ds:CanonicalizationMethod Algorithm="` + AlgExcC14N + `"></ds:CanonicalizationMethod>` +
		`<ds:SignatureMethod Algorithm="`
	siRef1 = `"></ds:SignatureMethod>` +
		`<ds:Reference Id="` + idDocRef + `" URI="">` +
		`<ds:Transforms><ds:Transform Algorithm="` + AlgEnveloped + `"></ds:Transform>` +
		`<ds:Transform Algorithm="` + AlgExcC14N + `"></ds:Transform></ds:Transforms>` +
		`<ds:DigestMethod Algorithm="` + DigestSHA256 + `"></ds:DigestMethod><ds:DigestValue>`
	siRef2 = `</ds:DigestValue></ds:Reference>` +
		`<ds:Reference Type="` + TypeSignedProps + `" URI="#` + idSignedProps + `">` +
		`<ds:Transforms><ds:Transform Algorithm="` + AlgExcC14N + `"></ds:Transform></ds:Transforms>` +
		`<ds:DigestMethod Algorithm="` + DigestSHA256 + `"></ds:DigestMethod><ds:DigestValue>`
	siEnd = `</ds:DigestValue></ds:Reference></ds:SignedInfo>`

	// EN 319 132-1 4.3 QualifyingProperties; 5.2.1 SigningTime; 5.2.2
	// SigningCertificateV2 (IssuerSerialV2 omitted: optional, and the
	// certificate itself is in KeyInfo); 5.2.4 DataObjectFormat with the
	// MimeType that baseline B (clause 6.3) asks for.
	spStart = `<xades:SignedProperties` + xmlnsXAdES + ` Id="` + idSignedProps + `">` +
		`<xades:SignedSignatureProperties><xades:SigningTime>`
	spCert = `</xades:SigningTime><xades:SigningCertificateV2><xades:Cert><xades:CertDigest>` +
		`<ds:DigestMethod` + xmlnsDS + ` Algorithm="` + DigestSHA256 + `"></ds:DigestMethod>` +
		`<ds:DigestValue` + xmlnsDS + `>`
	spEnd = `</ds:DigestValue></xades:CertDigest></xades:Cert></xades:SigningCertificateV2></xades:SignedSignatureProperties>` +
		`<xades:SignedDataObjectProperties><xades:DataObjectFormat ObjectReference="#` + idDocRef + `">` +
		`<xades:MimeType>text/xml</xades:MimeType></xades:DataObjectFormat></xades:SignedDataObjectProperties>` +
		`</xades:SignedProperties>`

	objStart = `<ds:Object><xades:QualifyingProperties` + xmlnsXAdES + ` Target="#` + idSignature + `">`
	objEnd   = `</xades:QualifyingProperties></ds:Object></ds:Signature>`
)

// Signer signs evidence with the provider's evidence-signing key.
// It is safe for concurrent use.
type Signer struct {
	key  crypto.Signer
	cert *x509.Certificate
	// Now is the clock for xades:SigningTime; nil means time.Now. Tests
	// fix it to make documents reproducible.
	Now func() time.Time

	ecdsaSize int    // bytes per ECDSA coordinate; 0 for RSA
	siMethod  string // siStart + method URI + siRef1
	spTail    string // spCert + certificate digest + spEnd
	keyInfo   string // ds:KeyInfo with the leaf certificate
}

// NewSigner makes a Signer for key, whose certificate cert is written in
// every signature's KeyInfo. ECDSA P-256 keys sign with ecdsa-sha256 (the
// default for evidence: about 30 µs a signature), RSA keys of 2048 bits or
// more with rsa-sha256 (PKCS#1 v1.5; about 1 ms).
func NewSigner(key crypto.Signer, cert *x509.Certificate) (*Signer, error) {
	if key == nil || cert == nil {
		return nil, errors.New("evidence: NewSigner needs a key and a certificate")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("evidence: key does not match the certificate")
	}
	s := &Signer{key: key, cert: cert}
	var method string
	switch k := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("evidence: ECDSA curve %s not supported (want P-256)", k.Curve.Params().Name)
		}
		s.ecdsaSize = 32
		method = AlgECDSASHA256
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("evidence: RSA key of %d bits too small (want 2048 or more)", k.N.BitLen())
		}
		method = AlgRSASHA256
	default:
		return nil, fmt.Errorf("evidence: key type %T not supported (want ECDSA P-256 or RSA)", cert.PublicKey)
	}
	s.siMethod = siStart + method + siRef1
	certDigest := sha256.Sum256(cert.Raw)
	s.spTail = spCert + base64.StdEncoding.EncodeToString(certDigest[:]) + spEnd
	s.keyInfo = `<ds:KeyInfo><ds:X509Data><ds:X509Certificate>` +
		base64.StdEncoding.EncodeToString(cert.Raw) +
		`</ds:X509Certificate></ds:X509Data></ds:KeyInfo>`
	return s, nil
}

// Certificate returns the signer's certificate.
func (s *Signer) Certificate() *x509.Certificate { return s.cert }

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Sign validates e and returns the signed evidence document: the bytes of
// Marshal(e) with an enveloped XAdES-B signature inserted before the end tag.
//
// No canonicaliser runs here: the body is written in canonical form, so the
// digest of the document reference is SHA-256 over the bytes as written
// (root start tag through end tag, the signature excluded, as the
// enveloped-signature transform excludes it); SignedProperties and SignedInfo
// are likewise written in their stand-alone canonical form and hashed as is.
// The canonical-form claim is checked against goxmldsig's canonicaliser in
// the tests, and xmlsec1 verifies the output.
func (s *Signer) Sign(e *Evidence) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	bp := bodyPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 {
			bodyPool.Put(bp)
		}
	}()
	body := appendBody((*bp)[:0], e)
	bodyLen := len(body)
	body = appendEndTag(body, e.Code)
	*bp = body
	docDigest := sha256.Sum256(body)
	endTag := body[bodyLen:]
	body = body[:bodyLen]

	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	var spBuf [1024]byte
	sp := append(spBuf[:0], spStart...)
	sp = appendTime(sp, now())
	sp = append(sp, s.spTail...)
	spDigest := sha256.Sum256(sp)

	var siBuf [1536]byte
	si := append(siBuf[:0], s.siMethod...)
	si = base64.StdEncoding.AppendEncode(si, docDigest[:])
	si = append(si, siRef2...)
	si = base64.StdEncoding.AppendEncode(si, spDigest[:])
	si = append(si, siEnd...)

	sig, err := s.signSignedInfo(si)
	if err != nil {
		return nil, err
	}

	n := len(body) + len(sigStart) + len(si) + len("<ds:SignatureValue></ds:SignatureValue>") +
		base64.StdEncoding.EncodedLen(len(sig)) + len(s.keyInfo) + len(objStart) + len(sp) + len(objEnd) + len(endTag)
	out := make([]byte, 0, n)
	out = append(out, body...)
	out = append(out, sigStart...)
	out = append(out, si...)
	out = append(out, "<ds:SignatureValue>"...)
	out = base64.StdEncoding.AppendEncode(out, sig)
	out = append(out, "</ds:SignatureValue>"...)
	out = append(out, s.keyInfo...)
	out = append(out, objStart...)
	out = append(out, sp...)
	out = append(out, objEnd...)
	out = append(out, endTag...)
	return out, nil
}

// signSignedInfo signs SHA-256(SignedInfo). ECDSA signatures are converted
// from the ASN.1 DER that crypto.Signer returns to the r‖s form XML-DSig
// requires (RFC 4050 / XML-DSig 1.1 §6.4.3): xmlsec1 rejects DER with
// "signLen=71; signHalfLen=32" (interop-notes.md).
func (s *Signer) signSignedInfo(si []byte) ([]byte, error) {
	h := sha256.Sum256(si)
	der, err := s.key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("evidence: sign: %w", err)
	}
	if s.ecdsaSize == 0 {
		return der, nil
	}
	raw, err := ecdsaDERToRaw(der, s.ecdsaSize)
	if err != nil {
		return nil, fmt.Errorf("evidence: sign: %w", err)
	}
	return raw, nil
}

// ecdsaDERToRaw turns SEQUENCE { r INTEGER, s INTEGER } into r‖s, each
// left-padded to size bytes.
func ecdsaDERToRaw(der []byte, size int) ([]byte, error) {
	bad := errors.New("malformed ECDSA signature")
	if len(der) < 8 || der[0] != 0x30 {
		return nil, bad
	}
	// Short-form length only: P-256 signatures are at most 72 bytes.
	if int(der[1]) != len(der)-2 {
		return nil, bad
	}
	rest := der[2:]
	out := make([]byte, 2*size)
	for i := 0; i < 2; i++ {
		if len(rest) < 2 || rest[0] != 0x02 || int(rest[1]) > len(rest)-2 || rest[1] == 0 {
			return nil, bad
		}
		v := rest[2 : 2+int(rest[1])]
		rest = rest[2+int(rest[1]):]
		for len(v) > 0 && v[0] == 0 {
			v = v[1:]
		}
		if len(v) > size {
			return nil, bad
		}
		copy(out[(i+1)*size-len(v):(i+1)*size], v)
	}
	if len(rest) != 0 {
		return nil, bad
	}
	return out, nil
}
