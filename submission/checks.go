package submission

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/address"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/store"
)

// inspected is what the checks learned about a message, for the acceptance
// or the rejection evidence.
type inspected struct {
	sender     *store.Account
	from       string
	recipients []string
	headerID   string
	iletiID    string
	iletiTip   string
	size       int64
	digest     *blob.Digest
}

// maxSigningSkew is how far in the future a signing time may claim to be;
// maxSigningAge how far in the past.
const (
	maxSigningSkew = 5 * time.Minute
	maxSigningAge  = 3 * 24 * time.Hour
)

// inspect runs the access-point checks on a message.
func (ss *session) inspect(data []byte) (*inspected, *Refusal) {
	d := blob.Digest(sha256.Sum256(data))
	in := &inspected{size: int64(len(data)), digest: &d, recipients: append([]string(nil), ss.rcpt...), from: ss.from}
	ctx := context.Background()
	if i := bareLineBreak(data); i >= 0 {
		return in, refuse(550, codeSyntax, reasonMalformed, "The message has a bare CR or LF at byte %d; lines must end in CRLF (RFC 5322 §2.3).", i)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return in, refuse(550, codeSyntax, reasonMalformed, "The message header cannot be read (%v); send an RFC 5322 message.", err)
	}
	h := msg.Header
	in.headerID = strings.TrimSpace(h.Get("Message-Id"))
	in.iletiID = strings.TrimSpace(h.Get("X-Tr-Rem-Iletiid"))
	in.iletiTip = strings.TrimSpace(h.Get("X-Tr-Rem-Iletitip"))

	// Exactly one From, which the principal may send for.
	froms, err := h.AddressList("From")
	if err != nil || len(froms) != 1 {
		return in, refuse(550, codeBadSender, reasonOneFrom, "The message must have exactly one From address (found %d).", len(froms))
	}
	in.from = strings.ToLower(froms[0].Address)
	sender, ref := ss.senderAccount(ctx, in.from)
	if ref != nil {
		return in, ref
	}
	in.sender = sender
	if ss.from != in.from {
		return in, refuse(550, codeNotAuth, reasonReversePath, "The envelope sender (MAIL FROM:<%s>) must be the From address %s.", ss.from, in.from)
	}
	// Every SMTP recipient is visible in To or Cc; no Bcc.
	visible := map[string]bool{}
	for _, field := range []string{"To", "Cc"} {
		if h.Get(field) == "" {
			continue
		}
		list, err := h.AddressList(field)
		if err != nil {
			return in, refuse(550, codeSyntax, reasonMalformed, "The %s header cannot be read: %v.", field, err)
		}
		for _, a := range list {
			visible[strings.ToLower(a.Address)] = true
		}
	}
	if strings.TrimSpace(h.Get("Bcc")) != "" {
		return in, refuse(550, codeNotAuth, evidence.ReasonCodeBccNotEmpty, "Bcc is not allowed in KEP: every recipient must be listed in To or Cc.")
	}
	if len(ss.rcpt) == 0 {
		return in, refuse(554, codeNotAuth, reasonRecipientNotInTo, "The message has no recipient.")
	}
	for _, r := range ss.rcpt {
		if !visible[r] {
			return in, refuse(550, codeNotAuth, reasonRecipientNotInTo, "Recipient %s is not listed in To or Cc; KEP messages show every recipient.", r)
		}
	}
	// Size × recipients.
	if total := in.size * int64(len(ss.rcpt)); total > ss.s.opts.MaxTotalBytes {
		return in, refuse(552, codeTooBig, evidence.ReasonCodeSizeLimit, "The message size times its %d recipients is %d MB, over the %d MB limit; send it in parts or to fewer recipients.",
			len(ss.rcpt), total>>20, ss.s.opts.MaxTotalBytes>>20)
	}
	// A closed system: KEP addresses of known providers only.
	for _, r := range ss.rcpt {
		a, err := address.Parse(r)
		if errors.Is(err, address.ErrNotKEPDomain) {
			return in, refuse(550, codeBadDest, evidence.ReasonCodeRecipientNotKEP, "%s is not a KEP address: KEP messages go only to KEP addresses (…@hsNN.kep.tr).", r)
		}
		if err != nil {
			return in, refuse(550, smtpCode(5, 1, 3), evidence.ReasonCodeRecipientNotKEP, "%s is not a valid KEP address: %v.", r, err)
		}
		domain := "hs" + strings.TrimPrefix(a.Provider, "hs") + ".kep.tr"
		if domain != ss.s.opts.Domain && (ss.s.opts.Directory == nil || !ss.s.opts.Directory.Known(domain)) {
			return in, refuse(550, codeBadDest, evidence.ReasonCodeUnknownProvider, "%s is at %s, which is not a provider in the KEP directory.", r, domain)
		}
	}
	// The sending account may send.
	if account.Status(sender.Status) != account.Active {
		return in, refuse(550, codeNotAuth, reasonSenderNotActive, "The account %s is %s and cannot send.", sender.Address, sender.Status)
	}
	if account.Capability(sender.Capability) == account.ReceiveOnly {
		return in, refuse(550, codeNotAuth, evidence.ReasonCodeReceiveOnly, "The account %s is receive-only (sadece alıcı) and cannot send KEP messages.", sender.Address)
	}
	switch in.iletiTip {
	case "":
		in.iletiTip = evidence.IletiTipStandart
	case evidence.IletiTipStandart, evidence.IletiTipEYazisma, evidence.IletiTipETebligat:
	default:
		return in, refuse(550, codeSyntax, reasonBadIletiTip, "X-TR-REM-iletiTip is %q; it must be standart, eYazisma or eTebligat.", in.iletiTip)
	}
	if in.iletiID == "" {
		in.iletiID = evidence.NewID()
	}
	// The qualified e-signature.
	signed, err := cms.Verify(data)
	switch {
	case errors.Is(err, cms.ErrNotSigned):
		return in, refuse(550, codeCrypto, evidence.ReasonCodeNotSigned, "The message is not signed with a qualified e-signature (S/MIME); sign it with your e-signature before sending. (%v)", err)
	case errors.Is(err, cms.ErrEncrypted):
		return in, refuse(550, codeCrypto, reasonEncrypted, "The message is encrypted; KEP needs it signed (S/MIME signed-data), not encrypted to the provider.")
	case err != nil:
		return in, refuse(550, codeCrypto, evidence.ReasonCodeBadSignature, "The message's e-signature does not verify: %v.", err)
	}
	want, ref := ss.signerIdentity(sender)
	if ref != nil {
		return in, ref
	}
	// The certificate must be valid when the message was signed. The
	// signing time is the signer's claim, so it is believed only within
	// maxSigningAge: an older claim cannot make an expired certificate good.
	at := time.Now()
	if st := signed.SigningTime; !st.IsZero() {
		switch {
		case st.Before(at.Add(-maxSigningAge)):
			return in, refuse(550, codeCrypto, evidence.ReasonCodeUntrustedCertificate, "The message was signed on %s, more than %d days ago; sign it again and send it.", st.UTC().Format(time.RFC3339), int(maxSigningAge.Hours()/24))
		case st.Before(at.Add(maxSigningSkew)):
			at = st
		}
	}
	var inter []*x509.Certificate
	for _, c := range signed.Certificates {
		if !c.Equal(signed.Signer) {
			inter = append(inter, c)
		}
	}
	if err := ss.s.trust.CheckSigner(signed.Signer, inter, at, want); err != nil {
		if errors.Is(err, identity.ErrIdentityMismatch) || errors.Is(err, identity.ErrNoSerialNumber) || errors.Is(err, identity.ErrBadSerialNumber) || errors.Is(err, identity.ErrNotBindable) {
			return in, refuse(550, codeNotAuth, evidence.ReasonCodeIdentityMismatch, "The message is signed with a certificate that does not belong to %s: %v.", whoSigns(ss.p, sender), err)
		}
		return in, refuse(550, codeCrypto, evidence.ReasonCodeUntrustedCertificate, "The signing certificate is not accepted: %v.", err)
	}
	return in, nil
}

// senderAccount resolves the From address to an account the principal may
// send for: their own, or one the operator holds the send grant on.
func (ss *session) senderAccount(ctx context.Context, from string) (*store.Account, *Refusal) {
	q := ss.s.accounts.DB.Q()
	if ss.p.Account != nil {
		if from != ss.p.Account.Address {
			return nil, refuse(550, codeNotAuth, evidence.ReasonCodeFromMismatch, "You are logged in as %s and cannot send as %s.", ss.p.Account.Address, from)
		}
		a, err := store.GetAccount(ctx, q, ss.p.Account.ID)
		if err != nil {
			return nil, refuse(451, codeTempFail, reasonMalformed, "The account cannot be read: %v", err)
		}
		return a, nil
	}
	a, err := store.GetAccountByAddress(ctx, q, from)
	if err != nil || ss.p.RoleOn(a.ID) == nil {
		return nil, refuse(550, codeNotAuth, evidence.ReasonCodeFromMismatch, "Operator %s does not act for %s.", identity.Mask(ss.p.Operator.TCKN), from)
	}
	if !ss.p.Can(a.ID, account.GrantSend) {
		return a, refuse(550, codeNotAuth, reasonNoSendGrant, "Operator %s has no send grant on %s; the main operator can grant it.", identity.Mask(ss.p.Operator.TCKN), a.Address)
	}
	return a, nil
}

// signerIdentity is whose certificate must sign: the account holder's, or
// the sending operator's.
func (ss *session) signerIdentity(sender *store.Account) (identity.ID, *Refusal) {
	if ss.p.Operator != nil {
		return identity.ID{Scheme: identity.TCKN, Value: ss.p.Operator.TCKN}, nil
	}
	id, err := identity.ParseID(sender.OwnerID)
	if err != nil {
		return identity.ID{}, refuse(451, codeTempFail, reasonMalformed, "The account's owner identity cannot be read: %v", err)
	}
	return id, nil
}

func whoSigns(p *account.Principal, sender *store.Account) string {
	if p.Operator != nil {
		return fmt.Sprintf("operator %s", p.Operator.Name)
	}
	return "the holder of " + sender.Address
}

// bareLineBreak returns the offset of the first CR or LF that is not part
// of a CRLF pair, or -1.
func bareLineBreak(b []byte) int {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 >= len(b) || b[i+1] != '\n' {
				return i
			}
			i++
		case '\n':
			return i
		}
	}
	return -1
}
