package cms

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// SignDetached makes a detached CMS SignedData (DER) over content: SHA-256,
// with the signed attributes contentType, messageDigest, signingTime and
// signingCertificateV2 naming cert, as CAdES-BES (EN 319 122-1) requires
// (RFC 5652 §5, RFC 5035). The signature carries cert and chain (issuer
// first; a copy of cert in chain is skipped).
//
// content is signed byte for byte: for a MIME entity, pass it in canonical
// CRLF form (BuildSigned does).
func SignDetached(content []byte, key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate) ([]byte, error) {
	if key == nil || cert == nil {
		return nil, errors.New("cms: sign: key and certificate are required")
	}
	s, err := signerFor(key, cert, chain)
	if err != nil {
		return nil, err
	}
	return s.sign(content, time.Now())
}

// signingCertificateV2 encodes the SigningCertificateV2 attribute value for
// cert (RFC 5035 §3): one ESSCertIDv2 with the SHA-256 hash of the
// certificate (hashAlgorithm omitted: it is the DEFAULT) and its issuer and
// serial number.
func signingCertificateV2(cert *x509.Certificate) (asn1.RawValue, error) {
	type issuerSerial struct {
		Issuer []asn1.RawValue // GeneralNames
		Serial *big.Int
	}
	type essCertIDv2 struct {
		CertHash     []byte
		IssuerSerial issuerSerial
	}
	type signingCertificateV2 struct {
		Certs []essCertIDv2
	}
	sum := sha256.Sum256(cert.Raw)
	der, err := asn1.Marshal(signingCertificateV2{Certs: []essCertIDv2{{
		CertHash: sum[:],
		IssuerSerial: issuerSerial{
			// directoryName [4] Name: explicit, since Name is a CHOICE.
			Issuer: []asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: cert.RawIssuer}},
			Serial: cert.SerialNumber,
		},
	}}})
	if err != nil {
		return asn1.RawValue{}, fmt.Errorf("cms: signing-certificate-v2: %w", err)
	}
	return asn1.RawValue{FullBytes: der}, nil
}

// BuildSigned returns a complete multipart/signed message (RFC 1847, RFC 8551
// §3.5.3): header, then the multipart/signed Content-Type (micalg sha-256),
// entity as the first part and the detached signature as an
// application/pkcs7-signature part (base64, smime.p7s).
//
// header holds the outer header fields (From, To, Subject, Date,
// Message-ID ...), each line ending in CRLF, without Content-Type or
// Content-Transfer-Encoding; MIME-Version: 1.0 is added when missing.
// entity is the MIME entity to sign: its own header, an empty line, the body.
// Bare LFs in either are turned into CRLF before signing, so the message
// survives SMTP unchanged. Keep the entity 7-bit (base64 or quoted-printable
// bodies) when it will cross other systems: a gateway that re-encodes 8-bit
// content breaks the signature (RFC 8551 §3.1.3).
func BuildSigned(header, entity []byte, key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(header) + len(entity) + 8192 + 4*1024*len(chain))
	if err := WriteSigned(&buf, header, entity, key, cert, chain); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteSigned is BuildSigned writing to w, so that a large message is not
// copied again (the signing library makes one transient copy of entity).
func WriteSigned(w io.Writer, header, entity []byte, key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate) error {
	hdr, err := outerHeader(header)
	if err != nil {
		return err
	}
	entity, err = canonicalEntity(entity)
	if err != nil {
		return err
	}
	sig, err := SignDetached(entity, key, cert, chain)
	if err != nil {
		return err
	}
	boundary, err := chooseBoundary(entity, rand.Reader)
	if err != nil {
		return err
	}
	return writeSigned(w, hdr, entity, sig, boundary)
}

// WriteSignedParts writes the multipart/signed message made of header,
// entity and its detached signature sig (from SignDetached over the same
// entity), with the given boundary. Together with SignDetached and
// Boundary it makes the same message byte for byte every time, so that a
// signed message can be stored as its parts and its signature alone.
// entity must be CRLF canonical (Canonical).
func WriteSignedParts(w io.Writer, header, entity, sig []byte, boundary string) error {
	hdr, err := outerHeader(header)
	if err != nil {
		return err
	}
	if bytes.Contains(entity, []byte(boundary)) {
		return errors.New("cms: the boundary occurs in the entity")
	}
	return writeSigned(w, hdr, entity, sig, boundary)
}

func writeSigned(w io.Writer, hdr, entity, sig []byte, boundary string) error {
	bw := &errWriter{w: w}
	bw.Write(hdr)
	bw.WriteString("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n" +
		"\tmicalg=sha-256; boundary=\"" + boundary + "\"\r\n\r\n" +
		"This is an S/MIME signed message.\r\n\r\n--" + boundary + "\r\n")
	bw.Write(entity)
	bw.WriteString("\r\n--" + boundary + "\r\n" +
		"Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"smime.p7s\"\r\n" +
		"Content-Description: S/MIME Cryptographic Signature\r\n\r\n")
	writeBase64Lines(bw, sig)
	bw.WriteString("--" + boundary + "--\r\n")
	return bw.err
}

// Canonical returns entity with CRLF line breaks, checking that it is a
// MIME entity (header, empty line, body): what SignDetached should sign.
func Canonical(entity []byte) ([]byte, error) { return canonicalEntity(entity) }

// Boundary returns a multipart boundary that does not occur in entity,
// derived from seed alone: the same entity and seed give the same boundary.
func Boundary(entity []byte, seed string) (string, error) {
	return chooseBoundary(entity, &seededReader{seed: sha256.Sum256([]byte(seed))})
}

// seededReader is a deterministic byte stream: SHA-256 in counter mode.
type seededReader struct {
	seed [32]byte
	n    uint64
	buf  []byte
}

func (r *seededReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var ctr [8]byte
		binary.BigEndian.PutUint64(ctr[:], r.n)
		r.n++
		h := sha256.Sum256(append(r.seed[:], ctr[:]...))
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// SignOpaque returns an application/pkcs7-mime signed-data message (RFC 8551
// §3.5.2): header as for BuildSigned, then the CMS SignedData encapsulating
// entity (CRLF canonical), base64 encoded as smime.p7m. Only S/MIME-aware
// agents can read the content; BuildSigned is the usual choice.
func SignOpaque(header, entity []byte, key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate) ([]byte, error) {
	hdr, err := outerHeader(header)
	if err != nil {
		return nil, err
	}
	entity, err = canonicalEntity(entity)
	if err != nil {
		return nil, err
	}
	if key == nil || cert == nil {
		return nil, errors.New("cms: sign: key and certificate are required")
	}
	s, err := signerFor(key, cert, chain)
	if err != nil {
		return nil, err
	}
	der, err := s.signData(entity, time.Now(), true)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(hdr) + 256 + base64.StdEncoding.EncodedLen(len(der))*78/76)
	buf.Write(hdr)
	buf.WriteString("Content-Type: application/pkcs7-mime; smime-type=signed-data; name=\"smime.p7m\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n")
	writeBase64Lines(&buf, der)
	return buf.Bytes(), nil
}

// outerHeader checks the caller's header fields and returns them CRLF
// terminated, with MIME-Version added when missing.
func outerHeader(header []byte) ([]byte, error) {
	hdr := toCRLF(header)
	if len(hdr) > 0 && !bytes.HasSuffix(hdr, []byte("\r\n")) {
		hdr = append(hdr[:len(hdr):len(hdr)], '\r', '\n')
	}
	if bytes.HasPrefix(hdr, []byte("\r\n")) || bytes.Contains(hdr, []byte("\r\n\r\n")) {
		return nil, errors.New("cms: the outer header contains an empty line")
	}
	h, err := parseHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("cms: outer header: %w", err)
	}
	for _, f := range []string{"Content-Type", "Content-Transfer-Encoding"} {
		if _, ok := h[f]; ok {
			return nil, fmt.Errorf("cms: the outer header must not set %s", f)
		}
	}
	if _, ok := h["Mime-Version"]; !ok {
		hdr = append(hdr[:len(hdr):len(hdr)], "MIME-Version: 1.0\r\n"...)
	}
	return hdr, nil
}

// canonicalEntity returns entity with CRLF line breaks, checking that it is a
// MIME entity (header, empty line, body).
func canonicalEntity(entity []byte) ([]byte, error) {
	e := toCRLF(entity)
	if !bytes.HasPrefix(e, []byte("\r\n")) && !bytes.Contains(e, []byte("\r\n\r\n")) {
		return nil, errors.New("cms: the entity to sign needs its header, an empty line and the body")
	}
	return e, nil
}

// chooseBoundary returns a boundary that does not occur in entity. "=_" makes
// it impossible in base64 and quoted-printable text, and 144 random bits make
// a collision elsewhere vanishingly unlikely; we check anyway.
func chooseBoundary(entity []byte, random io.Reader) (string, error) {
	var b [18]byte
	for range 8 {
		if _, err := io.ReadFull(random, b[:]); err != nil {
			return "", fmt.Errorf("cms: boundary: %w", err)
		}
		boundary := "----=_KEP_" + hex.EncodeToString(b[:])
		if !bytes.Contains(entity, []byte(boundary)) {
			return boundary, nil
		}
	}
	return "", errors.New("cms: no boundary found that does not occur in the entity")
}

// writeBase64Lines writes b in base64, 76 characters a line, each ending
// in CRLF (RFC 2045 §6.8).
func writeBase64Lines(w io.Writer, b []byte) {
	const in = 57 // 76 / 4 * 3
	line := make([]byte, 0, 78)
	for len(b) > 0 {
		n := min(in, len(b))
		line = base64.StdEncoding.AppendEncode(line[:0], b[:n])
		line = append(line, '\r', '\n')
		w.Write(line)
		b = b[n:]
	}
}

// errWriter remembers the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) WriteString(s string) {
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}
