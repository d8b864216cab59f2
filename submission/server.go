// Package submission is in charge of the SMTP submission service (RFC 6409)
// of a KEP provider: port 587 with STARTTLS and port 465 with implicit TLS
// (RFC 8314), AUTH only after TLS with account passwords, app passwords and
// operators' own credentials, and the access point's checks on every
// message (docs/kep-rules.md "Messages and envelopes", after RFC 6109 §3.1):
// one From, which the authenticated principal may send for; reverse-path
// equal to From; every recipient in To or Cc; no Bcc; size × recipients
// within the limit; recipients only at KEP providers (a closed system,
// told already at RCPT: rcpt.go);
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
	"github.com/kephs/kep/connlimit"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/mailbox"
)

// Options configure the submission service.
type Options struct {
	Hostname        string
	Domain          string // this provider's domain
	MaxMessageBytes int64
	MaxRecipients   int
	MaxTotalBytes   int64 // size × recipients
	// KnownDomain, when set, says whether a provider domain (hsNN.kep.tr)
	// is a KEP provider messages can go to (the node wires it to its
	// provider directory); without it, only this
	// provider's own domain (and its companies' subdomains) is. Recipients
	// elsewhere are refused at RCPT (rcpt.go).
	KnownDomain func(domain string) bool
	Logger      *slog.Logger
	Metrics     *Metrics         // nil counts nothing
	Limits      Limits           // zero fields take DefaultLimits
	Revocation  RevocationPolicy // checks.go
}

// Server is the submission service: the SMTP front-end of the access point.
type Server struct {
	*AccessPoint
	tls *tls.Config

	pool *connlimit.Pool // connections held, over both ports
	// ctx ends when the service closes: AUTH and DATA work under it.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	servers []*smtp.Server
}

// New makes a submission service over the mailboxes and accounts, checking
// signatures against the e-signature trust store.
func New(mb *mailbox.Service, accounts *account.Service, trust *identity.TrustStore, tlsConfig *tls.Config, o Options) *Server {
	ap := NewAccessPoint(mb, accounts, trust, o)
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{AccessPoint: ap, tls: tlsConfig, pool: connlimit.NewPool(), ctx: ctx, cancel: cancel}
}

func (s *Server) newSMTP() *smtp.Server {
	srv := smtp.NewServer(backend{s})
	srv.Domain = s.opts.Hostname
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = s.opts.MaxRecipients
	srv.MaxLineLength = 4000                // RFC 5322 §2.1.1 allows 998; some signers write longer base64 lines
	srv.ReadTimeout = s.opts.Limits.Command // per line; connlimit keeps it within the phase and session
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
	return srv.Serve(s.limit(l, false))
}

// ServeTLS serves port 465: implicit TLS (RFC 8314 §3.3).
func (s *Server) ServeTLS(l net.Listener) error {
	srv := s.newSMTP()
	srv.TLSConfig = s.tls
	return srv.Serve(tls.NewListener(s.limit(l, true), s.tls))
}

// Close stops every listener and connection, and cancels the AUTH and
// DATA work under way.
func (s *Server) Close() error {
	s.cancel()
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

// NewSession starts a session at EHLO (again after STARTTLS): the
// handshake phase ends and commands follow.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	remote := ""
	if addr, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		remote = addr.IP.String()
	}
	ss := &session{s: b.s, conn: c, remote: remote, lc: connlimit.Of(c.Conn())}
	ss.txn.s, ss.txn.authMethod = b.s.AccessPoint, evidence.AuthSMTPCMS
	if ss.lc != nil && ss.lc.TimedOut() {
		return nil, cutErr()
	}
	id := ""
	if ss.lc != nil {
		ss.lc.Phase("command", 0)
		id = ss.lc.ID
		ss.connTag = id
	}
	ss.ctx, ss.cancel = context.WithCancel(b.s.ctx)
	// Every line of the session names its connection; no user name, no
	// address of the message (personal data: a TCKN is a user name).
	ss.log = b.s.opts.Logger.With("server", "smtp", "conn", id, "remote", remote)
	return ss, nil
}

// session is one SMTP session (one per EHLO after connecting or STARTTLS).
type session struct {
	s      *Server
	conn   *smtp.Conn
	lc     *connlimit.Conn // the connection under its limits (nil only in odd wiring)
	remote string
	ctx    context.Context // ends at Logout and when the service closes
	cancel context.CancelFunc
	// txn holds the principal, the envelope and the log of the session:
	// the access point's checks (access.go) work on it.
	txn
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	// As imapd's Login: failures never say whether the user exists, are
	// throttled by account.Service, and are logged without the user name.
	check := func(username, password string) error {
		if err := ss.cut(); err != nil {
			return err
		}
		p, err := ss.s.accounts.Authenticate(ss.ctx, username, password, ss.remote)
		switch {
		case err == nil:
		case errors.Is(err, account.ErrThrottled):
			ss.log.Warn("smtp login throttled")
			ss.s.opts.Metrics.authFailed()
			return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
				Message: fmt.Sprintf("Too many failed logins for this user from your address; try again in %s", account.RetryAfter(err))}
		case errors.Is(err, account.ErrBadCredentials):
			ss.log.Info("smtp login failed")
			ss.s.opts.Metrics.authFailed()
			return smtp.ErrAuthFailed
		case errors.Is(err, account.ErrAccountNotActive):
			// Only someone who knows the password learns this.
			ss.log.Info("smtp login to an inactive account")
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "The account is not active; contact your provider"}
		default:
			ss.log.Error("smtp login", "err", err)
			return &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Authentication is temporarily unavailable; try again later"}
		}
		ss.p, ss.authAt = p, time.Now().UTC()
		if p.Operator != nil {
			ss.log.Info("smtp login", "operator", p.Operator.ID, "app_password", p.AppPassword != "")
		} else {
			ss.log.Info("smtp login", "account", p.Account.ID, "app_password", p.AppPassword != "")
		}
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
	if err := ss.cut(); err != nil {
		return err
	}
	if ss.p == nil {
		return smtp.ErrAuthRequired
	}
	ss.from = strings.ToLower(strings.TrimSpace(from))
	ss.rcpt, ss.refused = ss.rcpt[:0], nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.cut(); err != nil {
		return err
	}
	if ss.p == nil {
		return smtp.ErrAuthRequired
	}
	return ss.addRcpt(to)
}

func (ss *session) Reset() {
	ss.from, ss.rcpt, ss.refused = "", nil, nil
}

func (ss *session) Logout() error {
	ss.cancel()
	return nil
}

// Data receives the message, streams it into the content store, runs the
// access-point checks and accepts or rejects it.
func (ss *session) Data(r io.Reader) error {
	if err := ss.cut(); err != nil {
		return err
	}
	if ss.p == nil {
		return smtp.ErrAuthRequired
	}
	ctx := ss.ctx
	if ss.lc != nil {
		// The whole message within Limits.Data (and the session's bound),
		// however slowly it trickles in.
		ss.lc.Phase("data", ss.s.opts.Limits.Data)
		defer ss.lc.Phase("command", 0)
	}
	// Messages up to inMemory bytes are read into memory and written to the
	// content store in one go; larger ones stream into it and are read back
	// once for the checks (a 100 MB message is never held twice).
	buf := dataBufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, err := io.CopyN(buf, r, inMemory+1)
	var data []byte
	var w *blob.Writer
	switch {
	case errors.Is(err, io.EOF):
		// The message, at its size: the mailbox keeps it a while (the
		// envelope cache); the reading buffer goes back to the pool.
		data, err = bytes.Clone(buf.Bytes()), nil
		putDataBuf(buf)
	case err == nil:
		if w, err = ss.s.mb.Blobs.Create(); err != nil {
			putDataBuf(buf)
			return ss.tempFail(ctx, err).SMTP()
		}
		w.Write(buf.Bytes())
		putDataBuf(buf)
		if _, err = io.Copy(w, r); err == nil {
			data, err = os.ReadFile(w.File().Name())
		}
	default: // the message stopped arriving
		putDataBuf(buf)
	}
	if nr := ss.s.mb.Issuer.CheckReady(); nr != nil && (err == nil || errors.Is(err, smtp.ErrDataTooLarge)) {
		if w != nil { // issue 9.3: no evidence, not even a rejection: 451
			w.Abort()
		}
		return ss.tempFail(ctx, nr).SMTP()
	}
	if err != nil {
		received := buf.Bytes() // for a message too large, what arrived of it
		if w != nil {
			received, _ = os.ReadFile(w.File().Name())
			w.Abort()
		}
		if errors.Is(err, smtp.ErrDataTooLarge) {
			return ss.tooBig(ctx, received).SMTP()
		}
		return ss.readFailed(err)
	}
	acc, ref := ss.submit(ctx, data, w)
	if ref != nil {
		return ref.SMTP()
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0},
		Message: "Accepted: KEP evidence " + acc.EvidenceID + " (iletiID " + acc.IletiID + ")"}
}

// dataBufs holds the buffers DATA is read into: one 32 KB buffer per
// message was a fifth of the bytes the server allocated. A message read
// whole is copied out at its own size, so no buffer is kept past Data.
var dataBufs = sync.Pool{New: func() any {
	b := new(bytes.Buffer)
	b.Grow(32 << 10) // the usual message in one allocation, not a doubling series
	return b
}}

// putDataBuf returns buf to dataBufs unless it grew for a large message.
func putDataBuf(buf *bytes.Buffer) {
	if buf.Cap() <= 1<<20 {
		dataBufs.Put(buf)
	}
}

// readFailed answers a message whose bytes stopped arriving: after a
// timeout the connection ends (connlimit reads nothing more, so the rest
// of the message is never taken for commands).
func (ss *session) readFailed(err error) error {
	if ss.lc != nil && ss.lc.TimedOut() {
		ss.lc.End()
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
			Message: "The message did not arrive in time; nothing was accepted, closing the connection"}
	}
	ss.log.Info("message not received", "err", err)
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "The message could not be read; nothing was accepted, try again"}
}

// cut refuses to act on a line read when the connection timed out: the
// SMTP library hands on the part of a line that arrived before a read
// timeout as if it were whole (bufio.Reader.ReadLine), so every command
// that acts checks this first, and a half-sent line never does anything.
// The library's own answers to it (a syntax error) may still be written
// before the connection closes.
func cutErr() error {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timed out in the middle of a line; the line was not run, closing the connection"}
}

func (ss *session) cut() error {
	if ss.lc != nil && ss.lc.TimedOut() {
		return cutErr()
	}
	return nil
}

func sprintf(format string, v ...any) string { return fmt.Sprintf(format, v...) }
func sprint(v ...any) string                 { return fmt.Sprint(v...) }

func smtpCode(a, b, c int) smtp.EnhancedCode { return smtp.EnhancedCode{a, b, c} }
