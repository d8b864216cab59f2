package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/kephs/kep/pki"
)

// Certificate errors. Errors about certificates are a *CertError wrapping one
// of these (and, when there is one, the underlying x509 or validation error);
// match with errors.Is.
var (
	ErrNoSerialNumber   = errors.New("identity: certificate subject has no serialNumber")
	ErrBadSerialNumber  = errors.New("identity: certificate serialNumber holds no valid TCKN")
	ErrIdentityMismatch = errors.New("identity: certificate belongs to another identity")
	ErrNotBindable      = errors.New("identity: scheme is not bound to signing certificates")

	ErrUntrusted      = errors.New("identity: certificate does not chain to a trusted CA")
	ErrExpired        = errors.New("identity: certificate expired")
	ErrNotYetValid    = errors.New("identity: certificate not yet valid")
	ErrKeyUsage       = errors.New("identity: certificate not allowed for this use")
	ErrInvalidChain   = errors.New("identity: certificate chain invalid")
	ErrNoTrustAnchors = errors.New("identity: no trust anchors")
)

// CertError reports why a certificate is not acceptable.
type CertError struct {
	Err    error             // one of the sentinel errors above
	Cert   *x509.Certificate // the certificate at fault, when known
	Reason string            // a sentence naming what is wrong
	Cause  error             // the underlying error, if any
	// Want and Got are the identities compared, for ErrIdentityMismatch.
	Want, Got ID
}

func (e *CertError) Error() string { return "identity: " + e.Reason }

// Unwrap returns the sentinel and the underlying cause.
func (e *CertError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// tcknSerialPrefixes are the forms in which the subject serialNumber
// attribute (X.520, OID 2.5.4.5) of a Turkish qualified certificate carries
// the holder's TCKN, longest first. "IDCTR-" and "PNOTR-" are the natural
// person semantics identifiers of ETSI EN 319 412-1 §5.1.3 (IDC: national
// identity card number, PNO: national personal number; TR: the country).
// The bare 11 digits and "TCKN" are what Turkish CAs have long issued.
var tcknSerialPrefixes = []string{"IDCTR-", "PNOTR-", "TCKN-", "TCKN:", "TCKN"}

// tcknFromSerialNumber extracts and validates the TCKN in one serialNumber
// attribute value. Prefixes are matched case-insensitively; surrounding
// spaces are ignored.
func tcknFromSerialNumber(v string) (string, *CertError) {
	s := strings.TrimSpace(v)
	for _, p := range tcknSerialPrefixes {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			s = s[len(p):]
			break
		}
	}
	if len(s) != TCKNDigits || !allDigits(s) {
		return "", &CertError{Err: ErrBadSerialNumber,
			Reason: fmt.Sprintf("the certificate's serialNumber %s is not a TCKN in a known form (11 digits, alone or after TCKN, TCKN-, TCKN:, IDCTR- or PNOTR-)", quoteMasked(v))}
	}
	if err := ValidateTCKN(s); err != nil {
		reason := err.Error()
		if ve := (*Error)(nil); errors.As(err, &ve) {
			reason = ve.Reason
		}
		return "", &CertError{Err: ErrBadSerialNumber, Cause: err,
			Reason: fmt.Sprintf("the certificate's serialNumber %s does not hold a valid TCKN: %s", quoteMasked(v), reason)}
	}
	return s, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func quoteMasked(v string) string { return fmt.Sprintf("%q", Mask(v)) }

// TCKNFromCertificate returns the TCKN of the holder of a qualified
// e-signature certificate, read from the subject's serialNumber attribute
// (OID 2.5.4.5) in any of the forms Turkish CAs use: 11 bare digits, or after
// "TCKN", "TCKN-", "TCKN:", "IDCTR-" or "PNOTR-" (ETSI EN 319 412-1 §5.1.3
// semantics identifiers). The TCKN's check digits are verified.
//
// The error matches ErrNoSerialNumber, or ErrBadSerialNumber (then also the
// TCKN validation error, when the form was right but the digits wrong).
func TCKNFromCertificate(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", &CertError{Err: ErrNoSerialNumber, Reason: "no certificate"}
	}
	var values []string
	for _, atv := range cert.Subject.Names {
		if atv.Type.Equal(pki.SerialNumberAttr) {
			values = append(values, fmt.Sprint(atv.Value))
		}
	}
	if len(values) == 0 {
		return "", &CertError{Err: ErrNoSerialNumber, Cert: cert,
			Reason: fmt.Sprintf("%s has no serialNumber attribute in its subject, so it names no TCKN", describe(cert))}
	}
	tckn := ""
	for _, v := range values {
		t, cerr := tcknFromSerialNumber(v)
		if cerr != nil {
			cerr.Cert = cert
			return "", cerr
		}
		if tckn != "" && t != tckn {
			return "", &CertError{Err: ErrBadSerialNumber, Cert: cert,
				Reason: fmt.Sprintf("%s has serialNumber attributes naming two different TCKNs (%s and %s)", describe(cert), Mask(tckn), Mask(t))}
		}
		tckn = t
	}
	return tckn, nil
}

// BindCertificate checks that cert belongs to want: that the TCKN in its
// subject is want's. Only TCKN identities bind to signing certificates: a
// legal person (VKN, MERSİS) or public body (DETSİS) acts through operators
// (işlem yetkilisi), real persons who sign with their own certificates, and
// the account layer checks that the operator may act for the organisation.
//
// The error matches ErrIdentityMismatch (naming both identities, masked),
// ErrNotBindable, an identity validation error for an invalid want, or an
// error of TCKNFromCertificate.
func BindCertificate(cert *x509.Certificate, want ID) error {
	if err := want.Validate(); err != nil {
		return err
	}
	if want.Scheme != TCKN {
		return &CertError{Err: ErrNotBindable, Cert: cert, Want: want,
			Reason: fmt.Sprintf("%s identities are not bound to signing certificates: a legal person or public body acts through operators who sign with certificates bearing their own TCKN", want.Scheme)}
	}
	got, err := TCKNFromCertificate(cert)
	if err != nil {
		return err
	}
	if got != want.Value {
		g := ID{Scheme: TCKN, Value: got}
		return &CertError{Err: ErrIdentityMismatch, Cert: cert, Want: want, Got: g,
			Reason: fmt.Sprintf("the certificate is bound to %s, not to %s", g.Masked(), want.Masked())}
	}
	return nil
}

// describe names a certificate in messages without personal data: a CA by its
// common name, an end-entity certificate (whose subject names a person) by its
// serial number and issuer.
func describe(c *x509.Certificate) string {
	if c.IsCA {
		return fmt.Sprintf("CA certificate %q", c.Subject.CommonName)
	}
	return fmt.Sprintf("certificate serial %x issued by %q", c.SerialNumber, c.Issuer.CommonName)
}
