package submission

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/store"
)

// AccessPoint is the provider's access point (docs/kep-rules.md, "Messages
// and envelopes"; RFC 6109 §3.1): the checks every submitted message
// passes and the acceptance or rejection that follows, whatever front-end
// received it. SMTP (this package's Server), the REST API and the web all
// submit through it, so a refusal says the same thing on each, and in the
// rejection evidence (11).
type AccessPoint struct {
	mb       *mailbox.Service
	accounts *account.Service
	trust    *identity.TrustStore
	opts     Options
	keys     keyLocks // idempotency keys under way
}

// NewAccessPoint makes the access point over the mailboxes and accounts,
// checking signatures against the e-signature trust store. Options'
// zero fields take their defaults.
func NewAccessPoint(mb *mailbox.Service, accounts *account.Service, trust *identity.TrustStore, o Options) *AccessPoint {
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
	o.Limits.fill()
	return &AccessPoint{mb: mb, accounts: accounts, trust: trust, opts: o}
}

// MaxMessageBytes is the largest message the access point accepts.
func (s *AccessPoint) MaxMessageBytes() int64 { return s.opts.MaxMessageBytes }

// MaxRecipients is the most recipients one message may have.
func (s *AccessPoint) MaxRecipients() int { return s.opts.MaxRecipients }

// Accepted is a message the access point accepted: its acceptance
// evidence (10) is issued and its deliveries are queued.
type Accepted struct {
	MessageID  int64 // the message's row (mailbox.KEPMessage.ID)
	EvidenceID string
	IletiID    string
	HeaderID   string
	Recipients []string
	Size       int64
	Digest     blob.Digest
	At         time.Time
	// Replayed says the message was accepted earlier under the request's
	// idempotency key: nothing was sent now.
	Replayed bool
}

// Request is one message submitted by a front-end.
type Request struct {
	Principal  *account.Principal
	From       string   // the envelope sender; it must be the From address
	Recipients []string // the envelope recipients; each must be in To or Cc
	Data       []byte   // the signed original, CRLF line ends
	AuthMethod string   // evidence.Auth…; default evidence.AuthSMTPCMS
	AuthTime   time.Time
	Logger     *slog.Logger // nil: the access point's (no personal data is logged)
	// Tag names the connection or request in replies and logs, so an
	// operator can find the log line a person quotes.
	Tag string
	// IdempotencyKey, when set, makes the submission safe to retry
	// (mailbox/idempotency.go): under a key the sending account used
	// within mailbox.IdempotencyRetention, the same bytes get the first
	// acceptance again (Accepted.Replayed) and other bytes a refusal
	// (reason idempotency-key-reused) — neither sends anything.
	IdempotencyKey string
}

// Submit runs the access point's checks on one message from principal p
// and accepts it, or refuses it with rejection evidence (a permanent
// refusal, Code 5xx) or without (a temporary one, Code 4xx: nothing was
// accepted, the client tries again).
func (s *AccessPoint) Submit(ctx context.Context, p *account.Principal, from string, rcpts []string, data []byte) (*Accepted, *Refusal) {
	return s.SubmitRequest(ctx, &Request{Principal: p, From: from, Recipients: rcpts, Data: data})
}

// SubmitRequest is Submit with every detail of the request.
func (s *AccessPoint) SubmitRequest(ctx context.Context, r *Request) (*Accepted, *Refusal) {
	t := &txn{s: s, p: r.Principal, authAt: r.AuthTime, authMethod: r.AuthMethod, from: strings.ToLower(strings.TrimSpace(r.From)), log: r.Logger, connTag: r.Tag}
	if t.authMethod == "" {
		t.authMethod = evidence.AuthSMTPCMS
	}
	if t.log == nil {
		t.log = s.opts.Logger
	}
	// The same address twice is one recipient (as at RCPT, rcpt.go).
	for _, rc := range r.Recipients {
		rc = strings.ToLower(strings.TrimSpace(rc))
		dup := false
		for _, have := range t.rcpt {
			dup = dup || have == rc
		}
		if !dup {
			t.rcpt = append(t.rcpt, rc)
		}
	}
	if len(t.rcpt) > s.opts.MaxRecipients {
		return nil, refuse(452, smtpCode(4, 5, 3), reasonTooManyRecipients, "The message has %d recipients; at most %d are accepted in one message.", len(t.rcpt), s.opts.MaxRecipients)
	}
	if nr := s.mb.Issuer.CheckReady(); nr != nil {
		return nil, t.tempFail(ctx, nr)
	}
	if int64(len(r.Data)) > s.opts.MaxMessageBytes {
		return nil, t.tooBig(ctx, r.Data)
	}
	if r.IdempotencyKey == "" {
		return t.submit(ctx, r.Data, nil)
	}
	if len(r.IdempotencyKey) > mailbox.MaxIdempotencyKey {
		return nil, refuse(550, codeSyntax, reasonBadIdempotencyKey, "The idempotency key is %d bytes long; at most %d are accepted.", len(r.IdempotencyKey), mailbox.MaxIdempotencyKey)
	}
	// One submission per key at a time on this node; the database's key
	// (idempotency_keys' primary key) holds across nodes.
	sender, err := store.GetAccountByAddress(ctx, s.accounts.DB.Q(), t.from)
	if err != nil {
		return t.submit(ctx, r.Data, nil) // no such sender: the checks refuse it
	}
	unlock := s.keys.lock(sender.ID, r.IdempotencyKey)
	defer unlock()
	t.idemKey = r.IdempotencyKey
	if acc, ref := t.replay(ctx, sender.ID, r.Data); acc != nil || ref != nil {
		return acc, ref
	}
	acc, ref := t.submit(ctx, r.Data, nil)
	if ref != nil && ref.Reason.Code == reasonNotStored {
		// Another node accepted it under the same key meanwhile.
		if acc, ref2 := t.replay(ctx, sender.ID, r.Data); acc != nil || ref2 != nil {
			return acc, ref2
		}
	}
	return acc, ref
}

// replay answers a submission under an idempotency key the sending account
// used already: the first acceptance again for the same bytes, a refusal
// for others; nil, nil when the key is new.
func (t *txn) replay(ctx context.Context, accountID int64, data []byte) (*Accepted, *Refusal) {
	prev, err := t.s.mb.IdempotentSubmission(ctx, accountID, t.idemKey)
	if err != nil {
		return nil, t.tempFail(ctx, err)
	}
	if prev == nil {
		return nil, nil
	}
	if prev.Digest != blob.Digest(sha256.Sum256(data)) {
		return nil, refuse(554, smtpCode(5, 5, 0), reasonIdempotencyKeyReused, "The idempotency key was used for another message on %s; nothing was sent. Use a new key for a new message.",
			prev.Message.SubmittedAt.Format(time.RFC3339))
	}
	m := prev.Message
	ds, err := mailbox.Deliveries(ctx, t.s.mb.DB.Q(), m.ID)
	if err != nil {
		return nil, t.tempFail(ctx, err)
	}
	acc := &Accepted{MessageID: m.ID, EvidenceID: m.EvidenceID, IletiID: m.IletiID, HeaderID: m.HeaderID, Size: m.Size, Digest: m.Digest, At: m.SubmittedAt, Replayed: true}
	for _, d := range ds {
		acc.Recipients = append(acc.Recipients, d.Recipient)
	}
	return acc, nil
}

// keyLocks serialises submissions under one idempotency key on this node.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

func (k *keyLocks) lock(accountID int64, key string) (unlock func()) {
	name := strconv.FormatInt(accountID, 10) + "\x00" + key
	for {
		k.mu.Lock()
		if k.held == nil {
			k.held = map[string]chan struct{}{}
		}
		ch, busy := k.held[name]
		if !busy {
			ch = make(chan struct{})
			k.held[name] = ch
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.held, name)
				k.mu.Unlock()
				close(ch)
			}
		}
		k.mu.Unlock()
		<-ch
	}
}

// txn is one message under way through the access point: who submits it,
// its envelope, and where its log lines go.
type txn struct {
	s          *AccessPoint
	p          *account.Principal
	authAt     time.Time
	authMethod string
	log        *slog.Logger
	connTag    string // the connection's or request's id, for replies and logs
	idemKey    string // the request's idempotency key, "" none

	from    string
	rcpt    []string            // accepted recipients, lower case, each once
	refused map[string]*Refusal // recipients refused at RCPT (rcpt.go)
}

func (ss *txn) connID() string {
	if ss.connTag == "" {
		return "-"
	}
	return ss.connTag
}

// submit runs the checks on data (also in w, the content store's writer,
// when the message was too large to hold only in memory) and accepts or
// refuses it.
func (ss *txn) submit(ctx context.Context, data []byte, w *blob.Writer) (*Accepted, *Refusal) {
	in, ref := ss.inspect(data)
	if ref != nil {
		if w != nil {
			w.Abort()
		}
		if ref.Code >= 500 { // a temporary failure is no rejection: the sender retries
			ss.reject(ctx, in, ref)
		}
		return nil, ref
	}
	var digest blob.Digest
	var gen int64
	var small []byte // the message, when it was read into memory whole
	var err error
	if w == nil {
		small = data
		digest, gen, err = ss.s.mb.Blobs.PutDeferred(data)
	} else {
		digest, gen, err = w.CommitDeferred()
	}
	if err != nil {
		return nil, ss.tempFail(ctx, err)
	}
	msg, rec, err := ss.s.mb.Accept(ctx, &mailbox.Submission{
		Sender: in.sender, Operator: ss.p.Operator, Original: digest, Size: in.size, BlobGen: gen, From: in.from,
		Recipients: in.recipients, HeaderID: in.headerID, IletiID: in.iletiID, IletiTip: in.iletiTip, Data: small,
		AuthMethod: ss.authMethod, AuthTime: ss.authAt, Properties: in.properties, IdempotencyKey: ss.idemKey,
	})
	if err != nil {
		return nil, ss.tempFail(ctx, err)
	}
	ss.s.opts.Metrics.accept()
	ss.log.Info("accepted", "evidence", rec.Evidence.ID, "ileti", msg.IletiID, "recipients", len(in.recipients), "size", in.size)
	return &Accepted{MessageID: msg.ID, EvidenceID: rec.Evidence.ID, IletiID: msg.IletiID, HeaderID: msg.HeaderID,
		Recipients: in.recipients, Size: in.size, Digest: digest, At: msg.SubmittedAt}, nil
}

// tooBig refuses a message over the size limit, with rejection evidence.
// received is what arrived of it (up to the limit and a little past): the
// message never arrived whole, so the evidence's digest and size are those
// of the bytes received (an evidence carries a digest).
func (ss *txn) tooBig(ctx context.Context, received []byte) *Refusal {
	ref := refuse(552, codeTooBig, evidence.ReasonCodeSizeLimit, "The message is larger than the %d MB this provider accepts.", ss.s.opts.MaxMessageBytes>>20)
	d := blob.Digest(sha256.Sum256(received))
	ss.reject(ctx, &inspected{size: int64(len(received)), digest: &d}, ref)
	return ref
}

// tempFail answers a failure of the provider's own (the store, the log):
// nothing was accepted or refused, the client tries again. The reply
// carries no internal error text; the log line, under the connection's
// id, does.
func (ss *txn) tempFail(ctx context.Context, err error) *Refusal {
	ss.s.opts.Metrics.refuse("temporary")
	if ctx.Err() != nil {
		ss.log.Warn("message not stored: the service is shutting down", "err", err)
		return refuse(421, smtpCode(4, 3, 2), reasonShuttingDown, "The service is shutting down; nothing was accepted, try again shortly")
	}
	if nr := (*evidence.NotReadyError)(nil); errors.As(err, &nr) { // the provider's keys (issue 9.3)
		ss.log.Warn("message not accepted: no evidence can be issued now", "key", nr.Key, "cause", nr.Reason)
		return refuse(451, codeTempFail, reasonEvidenceUnavailable, "The provider cannot issue evidence now: %s; nothing was accepted, try again later", nr.Reason)
	}
	ss.log.Error("message not stored", "err", err)
	return refuse(451, codeTempFail, reasonNotStored, "The message could not be stored; nothing was accepted, try again (connection %s)", ss.connID())
}

// reject issues the rejection evidence (11) for a refused message.
func (ss *txn) reject(ctx context.Context, in *inspected, ref *Refusal) {
	rj := &mailbox.Rejection{Sender: in.sender, Operator: ss.p.Operator, From: in.from, Recipients: in.recipients, Size: in.size,
		HeaderID: in.headerID, IletiID: in.iletiID, IletiTip: in.iletiTip, Reason: ref.Reason, AuthMethod: ss.authMethod, AuthTime: ss.authAt}
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
		ss.log.Error("rejection evidence", "err", err)
	}
	ss.s.opts.Metrics.refuse(ref.Reason.Code)
	ss.log.Info("rejected", "reason", ref.Reason.Code)
}

// defaultSender is the account whose evidence folder receives a rejection
// when the message named no account the principal may act for.
func (ss *txn) defaultSender(ctx context.Context) *store.Account {
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
