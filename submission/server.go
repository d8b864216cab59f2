// Package submission is in charge of the SMTP submission service (RFC 6409)
// of a KEP provider: port 587 with STARTTLS and port 465 with implicit TLS
// (RFC 8314), AUTH only after TLS with account passwords, app passwords and
// operators' own credentials, and the access point's checks on every
// message (kep-domain.md "Messages and envelopes", after RFC 6109 §3.1):
// one From, which the authenticated principal may send for; reverse-path
// equal to From; every recipient in To or Cc; no Bcc; size × recipients
// within the limit; recipients only at KEP providers (a closed system);
// a send-and-receive account; a valid S/MIME signature by a trusted,
// identity-bound qualified certificate. A message that passes is accepted
// in one transaction with its evidence (10); one that fails gets an SMTP
// reply a person can act on and, unless authentication failed, rejection
// evidence (11) in the sender's evidence folder.
package submission

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/store"
)

// Directory knows which KEP domains belong to providers the message can go
// to (the authority's signed provider directory). This provider's own
// domain is always known.
type Directory interface {
	Known(domain string) bool
}

// Options configure the submission service.
type Options struct {
	Hostname        string
	Domain          string // this provider's domain
	MaxMessageBytes int64
	MaxRecipients   int
	MaxTotalBytes   int64 // size × recipients
	Directory       Directory
	Logger          *slog.Logger
	Revocation      RevocationPolicy // checks.go
}

// Server is the submission service.
type Server struct {
	mb       *mailbox.Service
	accounts *account.Service
	trust    *identity.TrustStore
	opts     Options
	tls      *tls.Config

	mu      sync.Mutex
	servers []*smtp.Server
}

// New makes a submission service over the mailboxes and accounts, checking
// signatures against the e-signature trust store.
func New(mb *mailbox.Service, accounts *account.Service, trust *identity.TrustStore, tlsConfig *tls.Config, o Options) *Server {
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 100 << 20
	}
	if o.MaxRecipients == 0 {
		o.MaxRecipients = 100
	}
	if o.MaxTotalBytes == 0 {
		o.MaxTotalBytes = 1 << 30
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Server{mb: mb, accounts: accounts, trust: trust, opts: o, tls: tlsConfig}
}

func (s *Server) newSMTP() *smtp.Server {
	srv := smtp.NewServer(backend{s})
	srv.Domain = s.opts.Hostname
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = s.opts.MaxRecipients
	srv.MaxLineLength = 4000 // RFC 5322 §2.1.1 allows 998; some signers write longer base64 lines
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = time.Minute
	srv.AllowInsecureAuth = false // AUTH is offered only after TLS
	srv.EnableSMTPUTF8 = false
	srv.ErrorLog = slogger{s.opts.Logger}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	return srv
}

// ServeSTARTTLS serves port 587: plain connection, STARTTLS required before
// AUTH.
func (s *Server) ServeSTARTTLS(l net.Listener) error {
	srv := s.newSMTP()
	srv.TLSConfig = s.tls
	return srv.Serve(l)
}

// ServeTLS serves port 465: implicit TLS (RFC 8314 §3.3).
func (s *Server) ServeTLS(l net.Listener) error {
	srv := s.newSMTP()
	srv.TLSConfig = s.tls
	return srv.Serve(tls.NewListener(l, s.tls))
}

// Close stops every listener and connection.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, srv := range s.servers {
		errs = append(errs, srv.Close())
	}
	return errors.Join(errs...)
}

type slogger struct{ l *slog.Logger }

func (l slogger) Printf(format string, v ...any) {
	l.l.Debug("smtp", "msg", strings.TrimSpace(sprintf(format, v...)))
}
func (l slogger) Println(v ...any) { l.l.Debug("smtp", "msg", strings.TrimSpace(sprint(v...))) }

// inMemory is the largest message read into memory whole.
const inMemory = 1 << 20

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	remote := ""
	if addr, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		remote = addr.IP.String()
	}
	return &session{s: b.s, conn: c, remote: remote}, nil
}

// session is one SMTP connection.
type session struct {
	s      *Server
	conn   *smtp.Conn
	remote string
	p      *account.Principal
	authAt time.Time

	from string
	rcpt []string
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(username, password string) error {
		p, err := ss.s.accounts.Authenticate(context.Background(), username, password, ss.remote)
		switch {
		case errors.Is(err, account.ErrThrottled):
			return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed logins; try again later"}
		case errors.Is(err, account.ErrAccountNotActive):
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "The account is not active; contact your provider"}
		case err != nil:
			return smtp.ErrAuthFailed
		}
		ss.p, ss.authAt = p, time.Now().UTC()
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Acting as another user is not supported; log in as yourself"}
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return newLoginServer(check), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.p == nil {
		return smtp.ErrAuthRequired
	}
	ss.from = strings.ToLower(strings.TrimSpace(from))
	ss.rcpt = ss.rcpt[:0]
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.p == nil {
		return smtp.ErrAuthRequired
	}
	ss.rcpt = append(ss.rcpt, strings.ToLower(strings.TrimSpace(to)))
	return nil
}

func (ss *session) Reset() {
	ss.from, ss.rcpt = "", nil
}

func (ss *session) Logout() error { return nil }

// Data receives the message, streams it into the content store, runs the
// access-point checks and accepts or rejects it.
func (ss *session) Data(r io.Reader) error {
	if ss.p == nil {
		return smtp.ErrAuthRequired
	}
	ctx := context.Background()
	// Messages up to inMemory bytes are read into memory and written to the
	// content store in one go; larger ones stream into it and are read back
	// once for the checks (a 100 MB message is never held twice).
	var buf bytes.Buffer
	_, err := io.CopyN(&buf, r, inMemory+1)
	var data []byte
	var w *blob.Writer
	switch {
	case errors.Is(err, io.EOF):
		data, err = buf.Bytes(), nil
	case err == nil:
		if w, err = ss.s.mb.Blobs.Create(); err != nil {
			return tempFail(err)
		}
		w.Write(buf.Bytes())
		buf = bytes.Buffer{}
		if _, err = io.Copy(w, r); err == nil {
			data, err = os.ReadFile(w.File().Name())
		}
	}
	if err != nil {
		if w != nil {
			w.Abort()
		}
		if errors.Is(err, smtp.ErrDataTooLarge) {
			ref := refuse(552, codeTooBig, evidence.ReasonCodeSizeLimit, "The message is larger than the %d MB this provider accepts.", ss.s.opts.MaxMessageBytes>>20)
			ss.reject(ctx, &inspected{}, ref)
			return ref.SMTP()
		}
		return err
	}
	in, ref := ss.inspect(data)
	if ref != nil {
		if w != nil {
			w.Abort()
		}
		if ref.Code >= 500 { // a temporary failure is no rejection: the sender retries
			ss.reject(ctx, in, ref)
		}
		return ref.SMTP()
	}
	var digest blob.Digest
	var gen int64
	var small []byte // the message, when it was read into memory whole
	if w == nil {
		small = data
	}
	if w != nil {
		digest, gen, err = w.CommitDeferred()
	} else {
		digest, gen, err = ss.s.mb.Blobs.PutDeferred(data)
	}
	if err != nil {
		return tempFail(err)
	}
	msg, rec, err := ss.s.mb.Accept(ctx, &mailbox.Submission{
		Sender: in.sender, Operator: ss.p.Operator, Original: digest, Size: in.size, BlobGen: gen, From: in.from,
		Recipients: in.recipients, HeaderID: in.headerID, IletiID: in.iletiID, IletiTip: in.iletiTip, Data: small,
		AuthMethod: evidence.AuthSMTPCMS, AuthTime: ss.authAt, Properties: in.properties,
	})
	if err != nil {
		ss.s.opts.Logger.Error("accept", "err", err)
		return tempFail(err)
	}
	ss.s.opts.Logger.Info("accepted", "evidence", rec.Evidence.ID, "ileti", msg.IletiID, "recipients", len(in.recipients), "size", in.size)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0},
		Message: "Accepted: KEP evidence " + rec.Evidence.ID + " (iletiID " + msg.IletiID + ")"}
}

func tempFail(err error) error {
	return &smtp.SMTPError{Code: 451, EnhancedCode: codeTempFail, Message: "The message could not be stored; nothing was accepted, try again (" + truncate(err.Error(), 120) + ")"}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// reject issues the rejection evidence (11) for a refused message.
func (ss *session) reject(ctx context.Context, in *inspected, ref *Refusal) {
	rj := &mailbox.Rejection{Sender: in.sender, Operator: ss.p.Operator, From: in.from, Recipients: in.recipients, Size: in.size,
		HeaderID: in.headerID, IletiID: in.iletiID, IletiTip: in.iletiTip, Reason: ref.Reason, AuthMethod: evidence.AuthSMTPCMS, AuthTime: ss.authAt}
	if in.digest != nil {
		rj.Digest = in.digest[:]
	}
	if rj.Sender == nil {
		rj.Sender = ss.defaultSender(ctx)
	}
	if rj.From == "" {
		rj.From = ss.from
	}
	if len(rj.Recipients) == 0 {
		rj.Recipients = ss.rcpt
	}
	if _, err := ss.s.mb.Reject(ctx, rj); err != nil {
		ss.s.opts.Logger.Error("rejection evidence", "err", err)
	}
	ss.s.opts.Logger.Info("rejected", "reason", ref.Reason.Code)
}

// defaultSender is the account whose evidence folder receives a rejection
// when the message named no account the principal may act for.
func (ss *session) defaultSender(ctx context.Context) *store.Account {
	if ss.p.Account != nil {
		return ss.p.Account
	}
	for _, r := range ss.p.Roles {
		if a, err := store.GetAccount(ctx, ss.s.accounts.DB.Q(), r.AccountID); err == nil {
			return a
		}
	}
	return nil
}

func sprintf(format string, v ...any) string { return fmt.Sprintf(format, v...) }
func sprint(v ...any) string                 { return fmt.Sprint(v...) }

func smtpCode(a, b, c int) smtp.EnhancedCode { return smtp.EnhancedCode{a, b, c} }
