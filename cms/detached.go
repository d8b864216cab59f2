package cms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// A detached signer writes the CMS SignedData (RFC 5652 §5) of
// SignDetached and SignOpaque directly in DER; it is the package's one
// signer (the github.com/digitorus/pkcs7 signer it replaced was slower and
// needed its SHA-1 default overridden): everything that does not depend on the
// content — the certificates, the signer's identifier, the
// signing-certificate-v2 attribute, the algorithm identifiers — is encoded
// once per key and certificate, so that a signature costs the content's
// digest, the key operation and a few hundred bytes of copying. The
// provider signs every envelope with it.
type detachedSigner struct {
	key       crypto.Signer
	hash      crypto.Hash
	sigAlg    []byte // AlgorithmIdentifier of the signature
	sid       []byte // IssuerAndSerialNumber
	certs     []byte // [0] IMPLICIT SET OF Certificate
	scv2Attr  []byte // the signingCertificateV2 Attribute
	digestAlg []byte // AlgorithmIdentifier sha256, parameters absent
}

var detachedSigners sync.Map // [32]byte (key certificate and chain) → *detachedSigner

func signerFor(key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate) (*detachedSigner, error) {
	h := sha256.New()
	h.Write(cert.Raw)
	for _, c := range chain {
		h.Write(c.Raw)
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	if v, ok := detachedSigners.Load(k); ok {
		s := v.(*detachedSigner)
		if s.key == key {
			return s, nil
		}
	}
	s, err := newDetachedSigner(key, cert, chain)
	if err != nil {
		return nil, err
	}
	detachedSigners.Store(k, s)
	return s, nil
}

func newDetachedSigner(key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate) (*detachedSigner, error) {
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("cms: sign: the key does not belong to the certificate")
	}
	s := &detachedSigner{key: key, hash: crypto.SHA256}
	s.digestAlg = tlv(0x30, mustDER(oidSHA256))
	switch key.Public().(type) {
	case *ecdsa.PublicKey:
		s.sigAlg = tlv(0x30, mustDER(oidECDSAWithSHA256)) // ecdsa-with-SHA256, no parameters (RFC 5758 §3.2)
	case *rsa.PublicKey:
		s.sigAlg = tlv(0x30, append(mustDER(oidRSAEncryption), 0x05, 0x00)) // rsaEncryption, NULL (RFC 3370 §3.2)
	default:
		return nil, fmt.Errorf("cms: sign: unsupported key type %T", key.Public())
	}
	serial, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return nil, err
	}
	s.sid = tlv(0x30, append(append([]byte(nil), cert.RawIssuer...), serial...))
	var certs []byte
	certs = append(certs, cert.Raw...)
	for _, c := range chain {
		if !c.Equal(cert) {
			certs = append(certs, c.Raw...)
		}
	}
	s.certs = tlv(0xa0, certs)
	scv2, err := signingCertificateV2(cert)
	if err != nil {
		return nil, err
	}
	s.scv2Attr = attrDER(oidAttrSigningCertificateV2, scv2.FullBytes)
	return s, nil
}

// sign returns the DER ContentInfo of a detached SignedData over content.
func (s *detachedSigner) sign(content []byte, at time.Time) ([]byte, error) {
	return s.signData(content, at, false)
}

// signData returns the DER ContentInfo of a SignedData over content, which
// it encapsulates as eContent when encapsulate is set (application/pkcs7-mime,
// RFC 8551 §3.5.2) and leaves out otherwise (multipart/signed).
func (s *detachedSigner) signData(content []byte, at time.Time, encapsulate bool) ([]byte, error) {
	digest := sha256.Sum256(content)
	attrs := [][]byte{
		attrDER(oidAttrContentType, mustDER(oidData)),
		attrDER(oidAttrSigningTime, mustDER(at.UTC().Truncate(time.Second))),
		attrDER(oidAttrMessageDigest, tlv(0x04, digest[:])),
		s.scv2Attr,
	}
	// DER orders the elements of a SET OF by their encodings (X.690 §11.6).
	sort.Slice(attrs, func(i, j int) bool { return string(attrs[i]) < string(attrs[j]) })
	var set []byte
	for _, a := range attrs {
		set = append(set, a...)
	}
	signed := tlv(0x31, set) // what is signed: the attributes as a SET (RFC 5652 §5.4)
	sum := sha256.Sum256(signed)
	sig, err := s.key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("cms: sign: %w", err)
	}
	signerInfo := tlv(0x30, concat(
		[]byte{0x02, 0x01, 0x01}, // version 1: issuerAndSerialNumber
		s.sid,
		s.digestAlg,
		tlv(0xa0, set), // signedAttrs [0] IMPLICIT
		s.sigAlg,
		tlv(0x04, sig),
	))
	signedData := tlv(0x30, concat(
		[]byte{0x02, 0x01, 0x01}, // version 1
		tlv(0x31, s.digestAlg),
		encapContentInfo(content, encapsulate),
		s.certs,
		tlv(0x31, signerInfo),
	))
	return tlv(0x30, concat(mustDER(oidSignedData), tlv(0xa0, signedData))), nil
}

// encapContentInfo is the EncapsulatedContentInfo (RFC 5652 §5.2): id-data,
// with the content as [0] EXPLICIT OCTET STRING only when encapsulated.
func encapContentInfo(content []byte, encapsulate bool) []byte {
	if !encapsulate {
		return tlv(0x30, mustDER(oidData))
	}
	return tlv(0x30, concat(mustDER(oidData), tlv(0xa0, tlv(0x04, content))))
}

func attrDER(oid asn1.ObjectIdentifier, value []byte) []byte {
	return tlv(0x30, concat(mustDER(oid), tlv(0x31, value)))
}

func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// tlv encodes a DER tag, definite length and value.
func tlv(tag byte, value []byte) []byte {
	n := len(value)
	out := make([]byte, 0, n+6)
	out = append(out, tag)
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, 0x82, byte(n>>8), byte(n))
	case n < 0x1000000:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		out = append(out, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, value...)
}

func mustDER(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
