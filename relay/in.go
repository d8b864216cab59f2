package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/store"
)

// Server is the reception point (docs/relay.md): SMTP over implicit TLS on
// a listener of its own, open only to providers the directory pins. It
// checks everything it is given before it stores anything, and answers
// every refusal with an SMTP reply that says which check failed.
type Server struct {
	Mailbox   *mailbox.Service
	Directory func() *directory.Directory
	Trust     *identity.TrustStore // e-signature CAs, for the original's signer
	Cert      tls.Certificate      // this provider's TLS certificate
	Domain    string               // this provider's domain (the greeting)
	MaxBytes  int64                // 0: 25 MiB (kep-rules: about 25 MB between providers)
	// TSARoots are the TSA CAs whose time stamps on returned evidence
	// bundles are trusted (back.go).
	TSARoots *x509.CertPool
	Metrics  *Metrics // nil counts nothing
	Now      func() time.Time
	Log      *slog.Logger

	srv      *smtp.Server
	verified evidence.VerifyCache // checkpoints and time stamps of returned bundles
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Serve answers on l (a plain TCP listener; TLS is added here) until Close.
func (s *Server) Serve(l net.Listener) error {
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = s.Domain
	srv.MaxMessageBytes = s.MaxBytes
	if srv.MaxMessageBytes == 0 {
		srv.MaxMessageBytes = 25 << 20
	}
	srv.MaxRecipients = 1000
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Minute, time.Minute
	srv.ErrorLog = slog.NewLogLogger(s.log().Handler(), slog.LevelDebug)
	s.srv = srv
	return srv.Serve(tls.NewListener(l, ServerConfig(s.Cert)))
}

// Close stops the server.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

func smtpErr(code int, enh smtp.EnhancedCode, format string, args ...any) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: fmt.Sprintf(format, args...)}
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	st, ok := c.TLSConnectionState()
	if !ok {
		return nil, smtpErr(530, smtp.EnhancedCode{5, 7, 0}, "KEP reception point: TLS required")
	}
	var leaf *x509.Certificate
	if len(st.PeerCertificates) > 0 {
		leaf = st.PeerCertificates[0]
	}
	p, err := PeerProvider(s.Directory(), leaf, s.now())
	if err != nil {
		s.log().Warn("relay: connection refused", "remote", c.Conn().RemoteAddr().String(), "err", err)
		return nil, smtpErr(530, smtp.EnhancedCode{5, 7, 1}, "KEP reception point: %v", err)
	}
	return &session{s: s, p: p}, nil
}

type session struct {
	s    *Server
	p    *directory.Provider
	from string
	back bool // MAIL FROM:<>: a returned evidence
	rcpt []string
}

func (ss *session) Reset()        { ss.from, ss.rcpt, ss.back = "", nil, false }
func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if from == "" {
		// A returned evidence (docs/relay.md, "Evidence that crosses").
		ss.from, ss.back = "", true
		return nil
	}
	if !strings.Contains(from, "@") || !ss.p.Serves(domainOf(from)) {
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "sender <%s> is not at a domain of %s, the provider this connection is authenticated as", from, ss.p.ID)
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	dom := domainOf(to)
	local := ss.s.Domain
	if !strings.Contains(to, "@") || (dom != local && !strings.HasSuffix(dom, "."+local)) {
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "recipient <%s> is not at %s: this reception point takes only this provider's recipients", to, local)
	}
	_, err := store.GetAccountByAddress(context.Background(), ss.s.Mailbox.DB.Q(), strings.ToLower(to))
	if errors.Is(err, store.ErrNotFound) {
		return smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "no KEP account <%s> at %s", to, local)
	}
	if err != nil {
		ss.s.log().Error("relay: look up recipient", "err", err)
		return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "temporary fault looking up the recipient; try again later")
	}
	ss.rcpt = append(ss.rcpt, strings.ToLower(to))
	return nil
}

func (ss *session) Data(r io.Reader) error {
	env, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if ss.back {
		if len(ss.rcpt) != 1 {
			return smtpErr(554, smtp.EnhancedCode{5, 5, 3}, "a returned evidence goes to one recipient, the original sender, not %d", len(ss.rcpt))
		}
		return ss.s.receiveEvidence(ctx, ss.p, ss.rcpt[0], env)
	}
	in, err := ss.s.Check(ss.p, ss.from, ss.rcpt, env)
	if err != nil {
		ss.s.log().Warn("relay: envelope refused", "provider", ss.p.ID, "err", err)
		return smtpErr(554, smtp.EnhancedCode{5, 7, 0}, "envelope refused: %v", err)
	}
	res, err := ss.s.Mailbox.AcceptRelayed(ctx, in)
	if err != nil {
		ss.s.log().Error("relay: store a relayed message", "provider", ss.p.ID, "err", err)
		return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "temporary fault storing the message; try again later")
	}
	ss.s.log().Info("relay: accepted", "provider", ss.p.ID, "message", res.MessageID, "duplicate", res.Duplicate, "evidence", len(res.Evidence))
	return nil
}

// Check verifies an envelope provider p relayed for recipients rcpt
// (docs/relay.md, "The reception point checks"), and returns what the
// mailbox stores. Refused recipients (an account not active) get 21.
func (s *Server) Check(p *directory.Provider, from string, rcpt []string, env []byte) (*mailbox.Relayed, error) {
	now := s.now()
	outer, err := cms.Verify(env)
	if err != nil {
		return nil, fmt.Errorf("the envelope's signature does not verify: %w", err)
	}
	at := outer.SigningTime
	if at.IsZero() {
		at = now
	}
	if !listed(p.SigningCertificates(directory.UseEnvelope, at), outer.Signer) {
		return nil, fmt.Errorf("the envelope is signed by %q, a certificate the directory does not list for %s's envelopes at %s", outer.Signer.Subject.CommonName, p.ID, at.UTC().Format(time.RFC3339))
	}
	evXML, original, err := envelopeParts(outer.Content)
	if err != nil {
		return nil, err
	}
	ev, evCert, err := evidence.Verify(evXML)
	if err != nil {
		return nil, fmt.Errorf("the acceptance evidence does not verify: %w", err)
	}
	if ev.Code != evidence.Accepted {
		return nil, fmt.Errorf("the envelope carries evidence %d, not acceptance evidence 10", ev.Code)
	}
	if !listed(p.SigningCertificates(directory.UseEvidence, ev.EventTime), evCert) {
		return nil, fmt.Errorf("the acceptance evidence is signed by %q, a certificate the directory does not list for %s's evidence at %s", evCert.Subject.CommonName, p.ID, ev.EventTime.UTC().Format(time.RFC3339))
	}
	// The outer header is outside the signature (RFC 1847); its
	// Message-ID at least must name the acceptance it carries.
	if mid := outer.Header.Get("Message-Id"); !strings.HasPrefix(mid, "<"+ev.ID+"@") {
		return nil, fmt.Errorf("the envelope's Message-ID %q does not name its acceptance evidence %s", mid, ev.ID)
	}
	sum := sha256.Sum256(original)
	if !bytes.Equal(sum[:], ev.Message.Digest) {
		withCRLF := sha256.Sum256(append(append([]byte(nil), original...), '\r', '\n'))
		if !bytes.Equal(withCRLF[:], ev.Message.Digest) {
			return nil, errors.New("the original's digest differs from the one in the acceptance evidence (altered in transit)")
		}
		original = append(original, '\r', '\n')
	}
	if !strings.EqualFold(ev.Sender.Address, from) {
		return nil, fmt.Errorf("MAIL FROM <%s> is not the sender <%s> of the acceptance evidence", from, ev.Sender.Address)
	}
	for _, r := range rcpt {
		if !hasRecipient(ev, r) {
			return nil, fmt.Errorf("recipient <%s> is not among the recipients of the acceptance evidence", r)
		}
	}
	inner, err := cms.Verify(original)
	if err != nil {
		return nil, fmt.Errorf("the original's signature does not verify: %w", err)
	}
	if s.Trust == nil {
		return nil, errors.New("no e-signature trust anchors configured")
	}
	want, err := s.expectedSigner(ev, inner.Signer)
	if err != nil {
		return nil, err
	}
	var inter []*x509.Certificate
	for _, c := range inner.Certificates {
		if !c.Equal(inner.Signer) {
			inter = append(inter, c)
		}
	}
	// As of the sending provider's acceptance (docs/certificates.md): a
	// relay retried hours later judges the signer as it stood then.
	if err := s.Trust.CheckSignerAt(inner.Signer, inter, inner.SigningTime, ev.SubmissionTime, want); err != nil {
		return nil, fmt.Errorf("the original's signer, as of %s's acceptance at %s: %w", p.ID, ev.SubmissionTime.UTC().Format(time.RFC3339), err)
	}
	in := &mailbox.Relayed{Provider: p.ID, Envelope: env, Accepted: ev, From: from, Recipients: rcpt, Refused: map[string]evidence.Reason{}}
	for _, r := range rcpt {
		a, err := store.GetAccountByAddress(context.Background(), s.Mailbox.DB.Q(), r)
		if err == nil && account.Status(a.Status) != account.Active {
			in.Refused[r] = evidence.ReasonMailboxClosed()
		}
	}
	return in, nil
}

// expectedSigner is the identity the original's signer must carry, from
// what the sending provider's evidence 10 records (docs/relay.md, "The
// reception point checks"): the receiving provider accepts what the
// sending access point accepted, no more.
//
//   - A company's e-seal (mali mühür) stands for the company: the sender's
//     VKN (docs/signing.md), whoever the operator was.
//   - A company account's operator (işlem yetkilisi) signing with their own
//     e-signature: the operator's TCKN, which evidence 10 names in
//     kep:Operator. The sending provider checked the operator's grant on
//     the account; it answers for that with its signature on the evidence,
//     and this provider checks that the signer is the operator named there.
//   - Otherwise the sender's own identity (a person's TCKN).
func (s *Server) expectedSigner(ev *evidence.Evidence, signer *x509.Certificate) (identity.ID, error) {
	if ev.Operator != nil && ev.Operator.Identity != "" && s.Trust.ESealVKN(signer) == "" {
		id, err := identity.ParseID(ev.Operator.Identity)
		if err != nil {
			return identity.ID{}, fmt.Errorf("the acceptance evidence's operator identity: %w", err)
		}
		if id.Scheme != identity.TCKN {
			return identity.ID{}, fmt.Errorf("the acceptance evidence names an operator by %s, not by a TCKN", id.Scheme)
		}
		return id, nil
	}
	id, err := identity.ParseID(ev.Sender.Identity)
	if err != nil {
		return identity.ID{}, fmt.Errorf("the acceptance evidence's sender identity: %w", err)
	}
	return id, nil
}

func listed(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, l := range certs {
		if l.Equal(c) {
			return true
		}
	}
	return false
}

func hasRecipient(ev *evidence.Evidence, addr string) bool {
	for _, p := range ev.Recipients {
		if strings.EqualFold(p.Address, addr) {
			return true
		}
	}
	return false
}

// envelopeParts returns the acceptance evidence (XML) and the signed
// original from the envelope's signed entity (the multipart/mixed the
// mailbox renders: introduction, delil-kabul.xml in base64, the original
// as message/rfc822).
func envelopeParts(entity []byte) (evXML, original []byte, err error) {
	m, err := mail.ReadMessage(bytes.NewReader(entity))
	if err != nil {
		return nil, nil, fmt.Errorf("the envelope's content: %w", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return nil, nil, fmt.Errorf("the envelope's content is %q, not multipart/mixed", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("the envelope's parts: %w", err)
		}
		pt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		body, err := io.ReadAll(part)
		if err != nil {
			return nil, nil, err
		}
		switch pt {
		case "application/xml":
			if evXML != nil {
				return nil, nil, errors.New("the envelope holds two evidence documents")
			}
			if evXML, err = base64.StdEncoding.DecodeString(strings.Map(dropSpace, string(body))); err != nil {
				return nil, nil, fmt.Errorf("the acceptance evidence's base64: %w", err)
			}
		case "message/rfc822":
			if original != nil {
				return nil, nil, errors.New("the envelope holds two originals")
			}
			original = body
		}
	}
	if evXML == nil || original == nil {
		return nil, nil, errors.New("the envelope lacks the acceptance evidence or the original")
	}
	return evXML, original, nil
}

func dropSpace(r rune) rune {
	if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
		return -1
	}
	return r
}
