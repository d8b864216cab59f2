// Package imapd is in charge of retrieving KEP mail over IMAP: it serves the
// mailboxes of package mailbox to mail clients, on port 993 with implicit
// TLS and on port 143 with STARTTLS (no LOGIN or AUTHENTICATE before TLS:
// LOGINDISABLED until then, RFC 9051 §6.2.3), authenticating account holders
// and operators through account.Service (passwords, app passwords and
// back-off), and turning what clients do into the mailbox's retrieval
// events: the first body fetch without .PEEK of a KEP message is its read
// evidence (60), EXPUNGE is content deletion (evidence stays), and mailbox
// notifications drive IDLE and the unilateral EXISTS / EXPUNGE updates.
//
// The protocol engine is github.com/emersion/go-imap/v2/imapserver (a
// beta); this package implements its Session over the store, keeping no
// mailbox state in memory beyond each connection's view of its selected
// folder, so several nodes may serve the same store.
//
// # Who sees what (namespaces, RFC 2342)
//
// An account holder (user name: the KEP address) sees their own account in
// the personal namespace, prefix "" and hierarchy delimiter "/": INBOX,
// Sent, Delil, Drafts, Trash and Archive.
//
// An operator (işlem yetkilisi; user name: their TCKN) has no mailbox of
// their own: NAMESPACE reports no personal namespace and one shared
// namespace with prefix "" (RFC 2342 §5), in which every account they hold
// the read grant on appears as a non-selectable parent named by its
// address, with the account's folders below it: "acme@hs01.kep.tr/INBOX",
// "acme@hs01.kep.tr/Delil", and so on. Accounts they hold no read grant on
// do not appear and cannot be selected, examined or queried (NO
// [NONEXISTENT], exactly as for a mailbox that does not exist). Roles are
// re-read from the store whenever a mailbox is listed, selected or queried,
// so a revoked grant takes effect at the operator's next such command.
//
// An operator's own INBOX is an empty, read-only placeholder, so that
// clients that SELECT INBOX at login work and no company's mail is read
// there by accident.
//
// # Rules are the mailbox's
//
// This package decides no rule: what a principal may do (grants per flag,
// copy, move, expunge, append, user folders, which folder holds what, the
// quota) is decided by mailbox.Service's principal-taking methods (see
// docs/mailbox-rules.md); this package maps their refusals to NO with RFC
// 5530 response codes ([NOPERM] naming the missing grant, [CANNOT],
// [OVERQUOTA], [LIMIT], [ALREADYEXISTS], [NONEXISTENT]). CLOSE without the
// delete grant closes the mailbox without expunging, as on a read-only
// mailbox (RFC 9051 §6.4.1).
//
// # Folders
//
// Standard folders (by role: INBOX, Sent, Delil, Drafts, Trash, Archive)
// are fixed; user folders can be created, renamed and deleted within the
// mailbox's limits. APPEND is accepted into Drafts, Sent (deduplicated
// against the provider's own Sent copy by Message-ID) and user folders.
// Messages never move between accounts. Sent, Drafts, Trash and Archive
// carry their RFC 6154 special-use attributes.
//
// # Read evidence
//
// Before any byte of a KEP message's body is sent (BODY[…], BINARY[…],
// RFC822 or RFC822.TEXT of a section that holds content: the whole
// message, its text, or a numbered part, not HEADER, HEADER.FIELDS or
// MIME), mailbox.Service.Serve records that the body was served to the
// principal; without .PEEK it also issues evidence 60 (reason: body
// fetch), and if that cannot be recorded the body is not sent (NO). A
// STORE of \Seen by a principal the body was served to before, PEEK
// included, is the retrieval too (reason: \Seen after a download): what
// Thunderbird, neomutt and mbsync do. A \Seen on a message never
// downloaded is not a retrieval. 60 is issued once per recipient. Non-PEEK
// body fetches also set \Seen (RFC 9051 §6.4.5) unless the mailbox was
// opened with EXAMINE; EXAMINE does not suppress the evidence, because the
// content did leave the server. See docs/evidence.md, "What counts as a
// retrieval".
//
// # Immutable messages
//
// UIDVALIDITY and UIDs come from the store (mailbox.Folder.UIDValidity,
// UIDNext) and survive restarts. The bytes of a UID never change (RFC 9051
// §2.3.1.1): a KEP message's envelope is rendered by the mailbox from the
// original and the signature made at delivery, the same bytes every time;
// evidence items and notices, which the mailbox renders from the evidence
// store and the account, are materialized (mailbox.Service.Materialize)
// the first time their size or bytes are needed. Drafts and the sender's
// copies are stored as they are and streamed from the content store.
//
// # Quota
//
// GETQUOTA and GETQUOTAROOT (RFC 9208, through the SessionQuota hook of
// the patched imapserver) report one quota root per account: "" for an
// account holder, the account's address for an operator (one per account
// they may read; none for the placeholder INBOX), with the STORAGE
// resource in KiB from the figures the mailbox charges and enforces
// (store.Account UsedBytes / QuotaBytes; see quota.go). APPEND and COPY
// beyond the quota fail with NO [OVERQUOTA]; clients also see usage per
// folder with STATUS (SIZE) (RFC 8438), and the mailbox's 80/90/100 %
// notices reach the INBOX.
//
// # Connections
//
// Each phase of a connection has a timeout (Options.Limits, limits.go):
// the TLS handshake (on port 993 and after STARTTLS), silence before
// login, the rest of a started command line, an APPEND literal, and
// silence once logged in (IDLE included, 35 minutes by default as RFC
// 9051 §5.4 asks). A client cut by one is told `* BYE Autologout` where
// TLS allows it, and a half-read line is never run. Connections are capped
// per source address and in all, over both ports; the one beyond a cap
// gets `* BYE [UNAVAILABLE]` and the reason.
//
// # What is not supported
//
// CONDSTORE/QRESYNC, LITERAL+ and CATENATE are not offered. SETQUOTA is
// not offered: quotas are set by the provider. Malformed input: the
// library answers BAD with a reason to a malformed command that has a tag,
// but closes the connection without a reply when the tag or command name
// cannot be read.
package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/connlimit"
	"github.com/kephs/kep/mailbox"
)

// Options configure a Server.
type Options struct {
	// MaxMessageBytes is the largest APPEND accepted (the APPENDLIMIT,
	// RFC 7889); 100 MiB when zero, capped at 4 GiB − 1.
	MaxMessageBytes int64
	// Logger receives the server's logs; slog.Default() when nil.
	Logger *slog.Logger
	// Hostname names this server in logs.
	Hostname string
	Metrics  *Metrics // nil counts nothing
	// Limits are the timeouts per phase and the connection caps (limits.go).
	Limits Limits
}

// Server is the IMAP server of a provider node.
type Server struct {
	mb       *mailbox.Service
	accounts *account.Service
	tls      *tls.Config
	opts     Options
	log      *slog.Logger
	imap     *imapserver.Server
	info     *infoCache
	pool     *connlimit.Pool // connections held, over both ports

	ctx    context.Context
	cancel context.CancelFunc
}

// New makes an IMAP server over the node's mailboxes and accounts.
// tlsConfig is the server's certificate configuration, used for port 993
// and for STARTTLS on port 143.
func New(mb *mailbox.Service, accounts *account.Service, tlsConfig *tls.Config, opts Options) *Server {
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 100 << 20
	}
	if opts.MaxMessageBytes > math.MaxUint32 {
		opts.MaxMessageBytes = math.MaxUint32
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	tc := tlsConfig.Clone()
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	opts.Limits.fill()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{mb: mb, accounts: accounts, tls: tc, opts: opts, ctx: ctx, cancel: cancel, pool: connlimit.NewPool(),
		log: opts.Logger.With("server", "imap", "host", opts.Hostname), info: newInfoCache(8192)}
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps:       capabilities(),
		Logger:     libLogger{s.log},
		TLSConfig:  tc, // STARTTLS (RFC 9051 §6.2.1)
		// InsecureAuth stays false: LOGIN and AUTHENTICATE need TLS, and
		// the library advertises LOGINDISABLED before it.
		// Timeouts per phase (issue 9.5); the library ends the connection
		// with `* BYE Autologout` and never runs a half-read line.
		TLSHandshakeTimeout:    opts.Limits.Handshake,
		UnauthenticatedTimeout: opts.Limits.Unauthenticated,
		IdleTimeout:            opts.Limits.Idle,
		CommandTimeout:         opts.Limits.Command,
		LiteralTimeout:         opts.Limits.Literal,
	})
	return s
}

// capabilities lists what the server offers beyond what imapserver always
// adds (SASL-IR, LITERAL-, STARTTLS, AUTH=PLAIN / LOGINDISABLED, UNSELECT,
// ENABLE, IDLE (RFC 2177), UTF8=ACCEPT, APPENDLIMIT).
func capabilities() imap.CapSet {
	return imap.CapSet{
		imap.CapIMAP4rev1:    {}, // RFC 3501
		imap.CapIMAP4rev2:    {}, // RFC 9051
		imap.CapNamespace:    {}, // RFC 2342
		imap.CapUIDPlus:      {}, // RFC 4315
		imap.CapESearch:      {}, // RFC 4731
		imap.CapSearchRes:    {}, // RFC 5182
		imap.CapListExtended: {}, // RFC 5258
		imap.CapListStatus:   {}, // RFC 5819
		imap.CapMove:         {}, // RFC 6851
		imap.CapStatusSize:   {}, // RFC 8438
		imap.CapBinary:       {}, // RFC 3516
		imap.CapChildren:     {}, // RFC 3348
		imap.CapSpecialUse:   {}, // RFC 6154
	}
}

// ServeTLS accepts IMAP connections with implicit TLS (port 993, RFC 8314)
// on l, a plain TCP listener, within the connection caps, until Close. The
// handshake is bounded by Limits.Handshake (imapserver applies it to the
// *tls.Conn before the greeting).
func (s *Server) ServeTLS(l net.Listener) error {
	return s.serve(s.limit(l, true))
}

// ServeSTARTTLS accepts IMAP connections on l that must upgrade with
// STARTTLS before they may log in (port 143), until Close.
func (s *Server) ServeSTARTTLS(l net.Listener) error {
	return s.serve(s.limit(l, false))
}

func (s *Server) serve(l net.Listener) error {
	err := s.imap.Serve(l)
	if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Close stops the listeners and ends every connection.
func (s *Server) Close() error {
	s.cancel()
	err := s.imap.Close()
	if err != nil && s.ctx.Err() != nil && strings.Contains(err.Error(), "server closed") {
		return nil // closed twice
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// libLogger passes imapserver's messages to slog: panics it recovered and
// commands that failed inside the server as errors, connection chatter
// (clients going away, unparsable lines) as debug.
type libLogger struct{ log *slog.Logger }

func (l libLogger) Printf(format string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	switch {
	case strings.Contains(msg, "panic"):
		l.log.Error("imap: recovered panic", "detail", msg)
	case strings.HasPrefix(msg, "handling "):
		// A command the session failed without an IMAP status (a store
		// error), or one the library could not parse into one (a bad date).
		l.log.Warn("imap: command failed", "detail", msg)
	default:
		l.log.Debug("imap: connection", "detail", msg)
	}
}
