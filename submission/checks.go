package submission

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/revocation"
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
	// properties go into the acceptance evidence: the revocation data that
	// showed the signer's certificate good (evidence.RevocationRef), or
	// that its status could not be obtained (RevocationPolicy).
	properties []evidence.Property
}

// RevocationPolicy is how the access point checks that the signer's
// certificate was not revoked at acceptance (docs/kep-rules.md, access-point
// checks; issue 9).
type RevocationPolicy struct {
	// Checker asks the certificate's OCSP responders and CRL distribution
	// points. Nil: revocation is not checked (only for tests of other
	// parts; a provider always sets it).
	Checker *revocation.Checker
	// AcceptUnavailable chooses "accept and record": when no revocation
	// source answers, the message is accepted and its evidence records that
	// the status could not be obtained (property RevocationUnavailable).
	// By default such a message gets a temporary failure (451 4.7.5) and no
	// rejection evidence: the sender did nothing wrong and may retry.
	AcceptUnavailable bool
	// AllowNoSource accepts, recording it as for AcceptUnavailable, a
	// certificate that names neither an OCSP responder nor a CRL
	// distribution point. By default it is refused (550, rejection
	// evidence): a qualified certificate names at least one (ETSI EN
	// 319 412-2 §4.3.11). Only for development CAs without revocation
	// services (`kep init`'s).
	AllowNoSource bool
}

// maxMIMEDepth is how deep multipart and message/rfc822 parts may nest.
// Mail clients nest a handful of levels (a forward of a forward of a signed
// message is about 6); Postfix refuses beyond 100 (mime_nesting_limit). A
// thousand levels is only ever an attack on the parsers downstream
// (recipients' clients, the provider's own renderer).
const maxMIMEDepth = 32

// maxSigningSkew is how far in the future a signing time may claim to be;
// maxSigningAge how far in the past.
const (
	maxSigningSkew = 5 * time.Minute
	maxSigningAge  = 3 * 24 * time.Hour
)

// inspect runs the access-point checks on a message.
func (ss *txn) inspect(data []byte) (*inspected, *Refusal) {
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
	if depth := mimeDepth(msg.Header, msg.Body, 1); depth > maxMIMEDepth {
		return in, refuse(550, codeSyntax, reasonMIMETooDeep, "The message nests MIME parts more than %d levels deep; send it with fewer nested parts or forwards.", maxMIMEDepth)
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
	// A recipient refused at RCPT that To or Cc still names refuses the
	// message whole (rcpt.go).
	if ref := ss.poisoned(in, visible); ref != nil {
		return in, ref
	}
	// Size × recipients.
	if total := in.size * int64(len(ss.rcpt)); total > ss.s.opts.MaxTotalBytes {
		return in, refuse(552, codeTooBig, evidence.ReasonCodeSizeLimit, "The message size times its %d recipients is %d MB, over the %d MB limit; send it in parts or to fewer recipients.",
			len(ss.rcpt), total>>20, ss.s.opts.MaxTotalBytes>>20)
	}
	// A closed system: KEP addresses of known providers only (rcpt.go).
	for _, r := range ss.rcpt {
		if ref := ss.s.recipientRefusal(r); ref != nil {
			return in, ref
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
	// A company's e-seal (mali mühür) stands for the company: it is bound to
	// the account owner's VKN, whichever operator submits (docs/signing.md).
	if vkn := ss.s.trust.ESealVKN(signed.Signer); vkn != "" {
		if owner, err := identity.ParseID(sender.OwnerID); err == nil {
			want = owner
		}
		in.properties = append(in.properties, evidence.Property{Name: evidence.PropertyESeal, Value: "VKN:" + vkn})
	}
	// The certificate must be valid when the message was signed and when the
	// provider accepts it (docs/kep-rules.md, access-point checks). The signing
	// time is the signer's claim: it is believed only within maxSigningAge,
	// and it can never stand in for the acceptance time, so a backdated
	// signingTime cannot make an expired certificate good.
	asOf := ss.now()
	var signedAt time.Time
	if st := signed.SigningTime; !st.IsZero() {
		switch {
		case st.Before(asOf.Add(-maxSigningAge)):
			return in, refuse(550, codeCrypto, evidence.ReasonCodeUntrustedCertificate, "The message was signed on %s, more than %d days ago; sign it again and send it.", st.UTC().Format(time.RFC3339), int(maxSigningAge.Hours()/24))
		case st.Before(asOf.Add(maxSigningSkew)):
			signedAt = st
		}
	}
	var inter []*x509.Certificate
	for _, c := range signed.Certificates {
		if !c.Equal(signed.Signer) {
			inter = append(inter, c)
		}
	}
	if err := ss.s.trust.CheckSignerAt(signed.Signer, inter, signedAt, asOf, want); err != nil {
		if errors.Is(err, identity.ErrIdentityMismatch) || errors.Is(err, identity.ErrNoSerialNumber) || errors.Is(err, identity.ErrBadSerialNumber) || errors.Is(err, identity.ErrNotBindable) {
			return in, refuse(550, codeNotAuth, evidence.ReasonCodeIdentityMismatch, "The message is signed with a certificate that does not belong to %s: %v.", whoSigns(ss.p, sender), err)
		}
		return in, refuse(550, codeCrypto, evidence.ReasonCodeUntrustedCertificate, "The signing certificate is not accepted: %v.", err)
	}
	if ref := ss.checkRevocation(ctx, in, signed.Signer, inter, asOf); ref != nil {
		return in, ref
	}
	return in, nil
}

// now is the provider's clock, the one its evidence uses.
func (ss *txn) now() time.Time {
	if ss.s.mb != nil && ss.s.mb.Now != nil {
		return ss.s.mb.Now().UTC()
	}
	return time.Now().UTC()
}

// checkRevocation checks that the signer's certificate was not revoked at
// asOf, and stores the deciding OCSP response or CRL once (by its digest)
// for the acceptance evidence to cite.
func (ss *txn) checkRevocation(ctx context.Context, in *inspected, cert *x509.Certificate, inter []*x509.Certificate, asOf time.Time) *Refusal {
	pol := ss.s.opts.Revocation
	if pol.Checker == nil {
		return nil
	}
	chains, err := ss.s.trust.VerifyCertificate(cert, inter, asOf, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection})
	if err != nil || len(chains) == 0 || len(chains[0]) < 2 {
		return refuse(550, codeCrypto, evidence.ReasonCodeUntrustedCertificate, "The signing certificate is not accepted: %v.", err)
	}
	res, err := pol.Checker.Check(ctx, cert, chains[0][1], asOf)
	switch {
	case errors.Is(err, revocation.ErrRevoked):
		if perr := pol.Checker.Keep(ctx, ss.s.accounts.DB.Q(), res.Data); perr != nil {
			ss.s.opts.Logger.Error("store revocation data", "err", perr)
		}
		in.properties = append(in.properties, evidence.RevocationRefFor(res.Data.Kind, res.Data.DER, cert.SerialNumber).Property())
		return refuse(550, codeCrypto, reasonCertificateRevoked, "The signing certificate was revoked: %v. Sign with a valid certificate; your e-signature provider (ESHS) can tell you why it was revoked.", err)
	case errors.Is(err, revocation.ErrNoSource) && pol.AllowNoSource:
		in.properties = append(in.properties, evidence.Property{Name: evidence.PropertyRevocationUnavailable, Value: truncate(err.Error(), 500)})
		return nil
	case errors.Is(err, revocation.ErrNoSource):
		// ETSI EN 319 412-2 §4.3.11: a qualified certificate names at
		// least one CRL distribution point or OCSP responder.
		return refuse(550, codeCrypto, evidence.ReasonCodeUntrustedCertificate, "The signing certificate is not accepted: %v; a qualified certificate names where its revocation is published (ETSI EN 319 412-2 §4.3.11).", err)
	case err != nil:
		if !pol.AcceptUnavailable {
			ss.log.Warn("revocation status unavailable", "err", err)
			// The reply names no internal detail (addresses, network
			// errors); the log line, under the connection's id, does.
			return refuse(451, smtpCode(4, 7, 5), reasonRevocationUnavailable, "Whether the signing certificate is revoked cannot be checked right now (its OCSP responder and CRL do not answer); nothing was accepted, send the message again later (connection %s).", ss.connID())
		}
		in.properties = append(in.properties, evidence.Property{Name: evidence.PropertyRevocationUnavailable, Value: truncate(err.Error(), 500)})
		return nil
	}
	if err := pol.Checker.Keep(ctx, ss.s.accounts.DB.Q(), res.Data); err != nil {
		return refuse(451, codeTempFail, reasonRevocationUnavailable, "The revocation data could not be stored; nothing was accepted, send the message again later.")
	}
	in.properties = append(in.properties, evidence.RevocationRefFor(res.Data.Kind, res.Data.DER, cert.SerialNumber).Property())
	return nil
}

// mimeDepth returns how deep the MIME structure of an entity with header h
// and body goes, counting the entity as level depth and descending into
// multipart and message/rfc822 parts; it stops descending past
// maxMIMEDepth. A part that cannot be parsed ends its branch: the depth
// limit is about nesting, not about well-formedness.
func mimeDepth(h mail.Header, body io.Reader, depth int) int {
	if depth > maxMIMEDepth {
		return depth
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return depth
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return depth
	}
	max := depth
	switch {
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "":
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				break
			}
			if d := mimeDepth(mail.Header(p.Header), p, depth+1); d > max {
				max = d
			}
			if max > maxMIMEDepth {
				break
			}
		}
	case mt == "message/rfc822" || mt == "message/global":
		inner, err := mail.ReadMessage(body)
		if err == nil {
			max = mimeDepth(inner.Header, inner.Body, depth+1)
		}
	}
	return max
}

// senderAccount resolves the From address to an account the principal may
// send for: their own, or one the operator holds the send grant on.
func (ss *txn) senderAccount(ctx context.Context, from string) (*store.Account, *Refusal) {
	q := ss.s.accounts.DB.Q()
	if ss.p.Account != nil {
		if from != ss.p.Account.Address {
			return nil, refuse(550, codeNotAuth, evidence.ReasonCodeFromMismatch, "You are logged in as %s and cannot send as %s.", ss.p.Account.Address, from)
		}
		a, err := store.GetAccount(ctx, q, ss.p.Account.ID)
		if err != nil {
			ss.log.Error("sender account", "err", err)
			return nil, refuse(451, codeTempFail, reasonMalformed, "The account cannot be read right now; nothing was accepted, try again (connection %s)", ss.connID())
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
func (ss *txn) signerIdentity(sender *store.Account) (identity.ID, *Refusal) {
	if ss.p.Operator != nil {
		return identity.ID{Scheme: identity.TCKN, Value: ss.p.Operator.TCKN}, nil
	}
	id, err := identity.ParseID(sender.OwnerID)
	if err != nil {
		ss.log.Error("account owner identity", "account", sender.ID, "err", err)
		return identity.ID{}, refuse(451, codeTempFail, reasonMalformed, "The account's owner identity cannot be read; nothing was accepted, contact your provider (connection %s)", ss.connID())
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

// Reason codes of the checks in this file.
const (
	reasonMIMETooDeep           = evidence.ReasonKEPBase + "mime-too-deep"
	reasonCertificateRevoked    = evidence.ReasonKEPBase + "certificate-revoked"
	reasonRevocationUnavailable = evidence.ReasonKEPBase + "revocation-unavailable"
)

// truncate shortens s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
