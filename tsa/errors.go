package tsa

import (
	"errors"
	"fmt"
	"strings"
)

// Errors a caller can test with errors.Is. Every error returned by this
// package wraps at most one of them and carries the details in its text.
var (
	// ErrUnreachable: the TSA could not be reached (DNS, connection, TLS,
	// timeout). The underlying net or context error is wrapped as well.
	ErrUnreachable = errors.New("tsa: TSA unreachable")
	// ErrMalformed: the bytes are not a well-formed RFC 3161 response or
	// token.
	ErrMalformed = errors.New("tsa: malformed time-stamp")
	// ErrNonceMismatch: the token does not echo the request's nonce
	// (RFC 3161 §2.4.2), so it may be a replay.
	ErrNonceMismatch = errors.New("tsa: nonce mismatch")
	// ErrImprintMismatch: the token time-stamps other data than the digest
	// being checked.
	ErrImprintMismatch = errors.New("tsa: message imprint mismatch")
	// ErrBadSignature: the CMS signature over the token does not verify, or
	// its signed attributes do not bind it to its content and certificate.
	ErrBadSignature = errors.New("tsa: bad time-stamp signature")
	// ErrUntrustedTSA: the TSA certificate does not chain to a trusted root,
	// or it (or a CA above it) was not valid at the token's time.
	ErrUntrustedTSA = errors.New("tsa: TSA certificate not trusted")
	// ErrNotTSACertificate: the signing certificate is not a time-stamping
	// certificate as RFC 3161 §2.3 requires (critical extendedKeyUsage with
	// only id-kp-timeStamping).
	ErrNotTSACertificate = errors.New("tsa: not a time-stamping certificate")
)

// HTTPError is returned by the Client when the TSA answers with an HTTP
// status other than 200 OK.
type HTTPError struct {
	URL         string
	StatusCode  int
	Status      string // e.g. "401 Unauthorized"
	ContentType string
	Body        string // start of the body, for the log
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("tsa: TSA %s answered HTTP %s", e.URL, e.Status)
	switch e.StatusCode {
	case 401, 403:
		msg += " (check the TSA account: username, password, headers)"
	case 415:
		msg += " (the TSA does not accept application/timestamp-query)"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// RefusedError is a TimeStampResp whose PKIStatus is not granted
// (RFC 3161 §2.4.2). The Server returns it from Stamp for the same reasons it
// would send a rejection over HTTP.
type RefusedError struct {
	Status     Status
	StatusText []string      // PKIFreeText from the TSA, if any
	FailInfo   []FailureInfo // every PKIFailureInfo bit set
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tsa: TSA refused the request: PKIStatus %d (%s)", int(e.Status), e.Status)
	for i, f := range e.FailInfo {
		if i == 0 {
			b.WriteString(", failInfo ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", failInfoName(f), f)
	}
	if len(e.StatusText) > 0 {
		fmt.Fprintf(&b, ": %q", strings.Join(e.StatusText, "; "))
	}
	return b.String()
}

// Has reports whether the TSA set failure bit f.
func (e *RefusedError) Has(f FailureInfo) bool {
	for _, g := range e.FailInfo {
		if g == f {
			return true
		}
	}
	return false
}

// failInfoName is the ASN.1 name of a PKIFailureInfo bit (RFC 3161 §2.4.2).
func failInfoName(f FailureInfo) string {
	switch f {
	case BadAlgorithm:
		return "badAlg"
	case BadRequest:
		return "badRequest"
	case BadDataFormat:
		return "badDataFormat"
	case TimeNotAvailable:
		return "timeNotAvailable"
	case UnacceptedPolicy:
		return "unacceptedPolicy"
	case UnacceptedExtension:
		return "unacceptedExtension"
	case AddInfoNotAvailable:
		return "addInfoNotAvailable"
	case SystemFailure:
		return "systemFailure"
	}
	return fmt.Sprintf("bit%d", int(f))
}

// asn1Reason shortens an encoding/asn1 error for people: its structure
// errors end with a dump of Go field parameters.
func asn1Reason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, " {optional:"); i > 0 {
		msg = msg[:i]
	}
	return msg
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
