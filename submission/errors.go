package submission

import (
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/evidence"
)

// Refusal is an access-point check that failed: one value carries the SMTP
// reply (code, enhanced status code RFC 3463, a sentence a person can act
// on) and the reason written into the rejection evidence, so that the
// client, the sender's evidence folder and the logs all say the same thing.
type Refusal struct {
	Code     int
	Enhanced smtp.EnhancedCode
	Reason   evidence.Reason // Code: a reason URI; Text: the sentence
}

func (r *Refusal) Error() string { return r.Reason.Text }

// SMTP returns the refusal as the SMTP reply.
func (r *Refusal) SMTP() *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: r.Enhanced, Message: r.Reason.Text}
}

// Temporary says whether nothing was decided: the sender may send the same
// message again (a 4xx reply; no rejection evidence was issued).
func (r *Refusal) Temporary() bool { return r.Code < 500 }

// MachineCode is the refusal's stable machine code for APIs: its reason
// code without the KEP prefix ("bcc-not-empty", "bad-signature", …).
// Package evidence and this file name every one.
func (r *Refusal) MachineCode() string {
	return strings.TrimPrefix(r.Reason.Code, evidence.ReasonKEPBase)
}

func refuse(code int, enh smtp.EnhancedCode, reasonCode, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Enhanced: enh, Reason: evidence.Reason{Code: reasonCode, Text: fmt.Sprintf(format, args...)}}
}

// Reason codes of the access point that package evidence does not name.
const (
	reasonMalformed        = evidence.ReasonKEPBase + "malformed"
	reasonRecipientNotInTo = evidence.ReasonKEPBase + "recipient-not-in-to-cc"
	reasonOneFrom          = evidence.ReasonKEPBase + "one-from"
	reasonReversePath      = evidence.ReasonKEPBase + "reverse-path-mismatch"
	reasonNoSendGrant      = evidence.ReasonKEPBase + "no-send-grant"
	reasonBadIletiTip      = evidence.ReasonKEPBase + "bad-ileti-tip"
	reasonEncrypted        = evidence.ReasonKEPBase + "encrypted"
	reasonSenderNotActive  = evidence.ReasonKEPBase + "sender-not-active"

	// Refusals of a request's form, before any check of the message: no
	// evidence carries them (Code 554 without a rejection: see replay).
	reasonBadIdempotencyKey    = evidence.ReasonKEPBase + "bad-idempotency-key"
	reasonIdempotencyKeyReused = evidence.ReasonKEPBase + "idempotency-key-reused"

	// Temporary refusals (4xx): no evidence carries them.
	reasonTooManyRecipients   = evidence.ReasonKEPBase + "too-many-recipients"
	reasonShuttingDown        = evidence.ReasonKEPBase + "shutting-down"
	reasonEvidenceUnavailable = evidence.ReasonKEPBase + "evidence-unavailable"
	reasonNotStored           = evidence.ReasonKEPBase + "not-stored"
)

var (
	codeSyntax    = smtp.EnhancedCode{5, 6, 0} // X.6.0 other media error
	codeNotAuth   = smtp.EnhancedCode{5, 7, 1} // X.7.1 delivery not authorized, message refused
	codeCrypto    = smtp.EnhancedCode{5, 7, 5} // X.7.5 cryptographic failure
	codeBadDest   = smtp.EnhancedCode{5, 1, 2} // X.1.2 bad destination system address
	codeBadSender = smtp.EnhancedCode{5, 1, 7} // X.1.7 bad sender's mailbox address syntax
	codeTooBig    = smtp.EnhancedCode{5, 3, 4} // X.3.4 message too big for system
	codeTempFail  = smtp.EnhancedCode{4, 3, 0} // X.3.0 other or undefined mail system status
)
