// Package cms is in charge of S/MIME signatures on messages: checking the
// signature a user puts on every message submitted to the KEP service
// (multipart/signed with a detached CMS signature, or application/pkcs7-mime
// signed-data; RFC 8551 S/MIME 4.0, RFC 1847, RFC 5652 CMS), and making the
// provider's own signatures (the signed envelope around an original, EN 319
// 532-3) as CAdES-BES signatures with the signing-certificate-v2 attribute
// (RFC 5035).
//
// Verify answers one question only: is this message signed, and is the
// signature mathematically valid over the content with the certificate it
// carries? Whether that certificate is trusted, was valid at the signing time,
// has the right key usage and belongs to the sender's identity (TCKN, VKN) is
// decided by package identity, from Signed.Signer, Signed.Intermediates and
// Signed.SigningTime.
//
// The signed bytes are sacred: they are verified, stored and forwarded exactly
// as received (only line breaks are canonicalised to CRLF for the check, as
// S/MIME requires, RFC 8551 §3.1.1). Nothing here re-encodes a MIME entity.
//
// The package holds the project's one CMS model and one algorithm policy
// (docs/algorithms.md): ParseSignedData and SignedData.VerifySigner read
// every CMS SignedData the provider meets — S/MIME signatures here, RFC 3161
// time-stamp tokens for package tsa — and Policy says which algorithms are
// accepted in new signatures (Current) and in old evidence checked as of
// its time (AsOf). Parsing uses encoding/asn1 after normalising BER (see
// normalizeBER). Signing has one signer, which writes DER itself
// (detached.go): SHA-256, signingTime, signingCertificateV2.
package cms

import (
	"crypto"
	"crypto/x509"
	"errors"
	"net/textproto"
	"time"
)

// Errors returned by Verify. Each is wrapped with a detail; match them with
// errors.Is. Their text is meant to reach the sender unchanged (SMTP reply,
// rejection evidence reason).
var (
	// ErrNotSigned: the message is not an S/MIME signed message at all
	// (plain text, multipart/mixed, PGP, certs-only ...).
	ErrNotSigned = errors.New("the message is not S/MIME signed")
	// ErrEncrypted: the message is S/MIME enveloped (encrypted) data. KEP
	// requires a signature the provider can check, so it is refused as such.
	ErrEncrypted = errors.New("the message is S/MIME encrypted; a KEP message must be signed, not encrypted")
	// ErrBadSignature: the signature does not match the content (content
	// changed in transit, signature taken from another message, wrong key).
	ErrBadSignature = errors.New("the S/MIME signature is not valid for this content")
	// ErrNoSignerCert: the signature does not carry the signer's certificate.
	ErrNoSignerCert = errors.New("the S/MIME signature does not include the signer's certificate")
	// ErrMalformed: the message claims to be S/MIME signed but its MIME or
	// CMS structure cannot be read.
	ErrMalformed = errors.New("the S/MIME message is malformed")
	// ErrUnsupportedAlgorithm: a digest or signature algorithm we do not
	// implement (DSA, MD5, GOST ...).
	ErrUnsupportedAlgorithm = errors.New("the S/MIME signature uses an unsupported algorithm")
)

// Signed is a message whose S/MIME signature has been checked by Verify.
type Signed struct {
	// Header is the header of the outer message (From, To, Subject ...).
	Header textproto.MIMEHeader
	// Content is the signed MIME entity (its own headers, blank line, body)
	// exactly as it was signed: for multipart/signed the first part with line
	// breaks canonicalised to CRLF, for application/pkcs7-mime the
	// encapsulated content. It may share memory with Verify's input.
	Content []byte
	// Detached is true for multipart/signed, false for application/pkcs7-mime.
	Detached bool
	// Signer is the certificate of the first signer (Signers[0]).
	Signer *x509.Certificate
	// Certificates holds every certificate the signature carries (signer,
	// intermediates, sometimes the root), in the order found.
	Certificates []*x509.Certificate
	// SigningTime is the first signer's signingTime attribute, as claimed by
	// the signer's clock (RFC 5652 §11.3); zero when absent. It is not a
	// trusted time: the provider's time stamp is.
	SigningTime time.Time
	// DigestAlgorithm is the first signer's digest algorithm.
	DigestAlgorithm crypto.Hash
	// Signers has every signer, all of whose signatures verified.
	Signers []SignerInfo
	// Signature is the CMS SignedData as carried in the message (DER or BER).
	Signature []byte
}

// SignerInfo describes one verified signer (RFC 5652 §5.3).
type SignerInfo struct {
	Certificate        *x509.Certificate
	DigestAlgorithm    crypto.Hash
	SignatureAlgorithm x509.SignatureAlgorithm
	SigningTime        time.Time // zero when absent
	// CertificateBound is true when a signing-certificate-v2 (RFC 5035) or
	// signing-certificate (RFC 2634) signed attribute names Certificate by
	// hash and the hash matched; CAdES-BES requires it. (A mismatch fails
	// Verify with ErrBadSignature.)
	CertificateBound bool
}

// Intermediates returns the certificates carried in the signature other than
// the signer's, as a pool for x509.VerifyOptions.Intermediates.
func (s *Signed) Intermediates() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range s.Certificates {
		if c != s.Signer {
			pool.AddCert(c)
		}
	}
	return pool
}
