package evidence

import "errors"

// Parse errors. Every error Parse returns is a *ParseError for which
// errors.Is(err, ErrMalformed) holds, together with the specific sentinel.
var (
	ErrMalformed      = errors.New("malformed evidence")
	ErrDTD            = errors.New("DTD or entity declaration not allowed")
	ErrNamespace      = errors.New("wrong namespace")
	ErrUnknownElement = errors.New("unknown or unexpected element")
	ErrMissingElement = errors.New("missing required element")
	ErrBadTime        = errors.New("bad xs:dateTime (want e.g. 2024-05-01T09:30:00.000Z)")
	ErrBadValue       = errors.New("bad value")
)

// Verification errors, returned (possibly wrapped) by Verify.
var (
	ErrNoSignature         = errors.New("evidence: no signature")
	ErrDigestMismatch      = errors.New("evidence: reference digest mismatch")
	ErrBadSignatureValue   = errors.New("evidence: signature value does not verify")
	ErrSigningCertMismatch = errors.New("evidence: SigningCertificateV2 does not match the KeyInfo certificate")
)

// ParseError says where in the document parsing failed.
type ParseError struct {
	Path string // e.g. "SubmissionAcceptanceRejection/SenderDetails"
	Err  error  // one of the sentinels above, possibly wrapped with detail
}

func (e *ParseError) Error() string {
	if e.Path == "" {
		return "evidence: " + e.Err.Error()
	}
	return "evidence: " + e.Path + ": " + e.Err.Error()
}

// Unwrap makes errors.Is match both the specific sentinel and ErrMalformed.
func (e *ParseError) Unwrap() []error { return []error{e.Err, ErrMalformed} }

// DigestMismatchError names the reference whose digest did not match:
// URI "" is the evidence itself, "#SP" the XAdES signed properties.
type DigestMismatchError struct {
	URI string
}

func (e *DigestMismatchError) Error() string {
	what := "the evidence document (URI=\"\")"
	if e.URI != "" {
		what = "the signed properties (URI=\"" + e.URI + "\")"
	}
	return ErrDigestMismatch.Error() + " for " + what
}

func (e *DigestMismatchError) Is(target error) bool { return target == ErrDigestMismatch }
