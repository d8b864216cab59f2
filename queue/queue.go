// Package queue is in charge of outbound work after acceptance: each
// recipient's transport state, the schedule of attempts (exponential
// back-off with a ceiling), the deadlines that end in a warning to the
// sender or in failure evidence, and the claiming of work, so that after a
// crash nothing is lost and nodes sharing one PostgreSQL never work on the
// same item at once. It decides when, and by which transport (Router); the
// transports decide how, and issue the evidence (40/41 for the local
// mailbox; later 31 and the other provider's evidence for the relay).
//
// The design, its states and transitions are in docs/architecture.md
// ("The delivery queue").
package queue

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kephs/kep/store"
)

// State is where one recipient's copy travels (deliveries.transport_state),
// apart from whether it was read (deliveries.state, owned by mailbox).
// The database's CHECK constraint holds the same list (migration 0005).
type State string

const (
	// Pending: not yet settled; a transport will try it.
	Pending State = "pending"
	// Awaiting: handed to the recipient's provider, which has yet to return
	// its evidence (relay; docs/kep-rules.md, "Closed system").
	Awaiting State = "awaiting"
	// Delivered: placed in the recipient's mailbox (evidence 40 issued, or
	// received from the recipient's provider).
	Delivered State = "delivered"
	// Failed: given up, with failure evidence (41, or 31 for the relay).
	Failed State = "failed"
)

// States lists every transport state.
var States = []State{Pending, Awaiting, Delivered, Failed}

// Final reports whether no transport will act on a recipient in state s
// again.
func (s State) Final() bool { return s == Delivered || s == Failed }

// Kind says what a queue item carries. The database's CHECK constraint
// holds the same list (migration 0005); a new kind extends both.
type Kind string

const (
	// KindMessage: an accepted message's recipients still pending
	// (queue_items.ref is messages.id).
	KindMessage Kind = "message"
	// KindEvidenceReturn: evidence sent back to another provider (relay).
	KindEvidenceReturn Kind = "evidence_return"
	// KindNotice: an SMS or e-mail notice (notice).
	KindNotice Kind = "notice"
	// KindWebhook: a webhook call (notice).
	KindWebhook Kind = "webhook"
)

// Kinds lists every item kind.
var Kinds = []Kind{KindMessage, KindEvidenceReturn, KindNotice, KindWebhook}

// Backoff spaces the attempts of one item: the n-th failed attempt waits
// First·2^(n-1), never more than Ceiling.
type Backoff struct {
	First   time.Duration
	Ceiling time.Duration
}

// Delay is how long to wait after the attempts-th failed attempt (1 for
// the first failure).
func (b Backoff) Delay(attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	d := b.First
	for i := 1; i < attempts; i++ {
		if d >= b.Ceiling/2 {
			return b.Ceiling
		}
		d *= 2
	}
	return min(d, b.Ceiling)
}

// Deadline is how long after acceptance the sender is warned that a copy
// is still travelling (Warn; zero for no warning) and when the queue gives
// up and the transport issues failure evidence (Fail).
type Deadline struct {
	Warn time.Duration
	Fail time.Duration
}

// Policy holds the queue's timing rules (docs/kep-rules.md, "Timing rules").
type Policy struct {
	Backoff Backoff
	// Lease is how long a claim lasts: a node that dies holding work
	// leaves it due again after Lease. The node that accepts a message
	// holds it, in memory, for the same time.
	Lease time.Duration
	// Deadlines by message type (X-TR-REM-iletiTip); Default for the rest.
	Deadlines map[string]Deadline
	Default   Deadline
}

// DefaultPolicy is the default schedule: the first retry after 30 s,
// doubling up to an hour; a warning at 12 h and failure at 24 h after
// acceptance for every message type, as PEC does for the relay (the
// figure is uncertain for KEP; docs/kep-rules.md, "Timing rules").
func DefaultPolicy() Policy {
	return Policy{
		Backoff: Backoff{First: 30 * time.Second, Ceiling: time.Hour},
		Lease:   2 * time.Minute,
		Default: Deadline{Warn: 12 * time.Hour, Fail: 24 * time.Hour},
	}
}

// DeadlineFor returns the deadline of a message type.
func (p Policy) DeadlineFor(iletiTip string) Deadline {
	if d, ok := p.Deadlines[iletiTip]; ok {
		return d
	}
	return p.Default
}

// Item is one unit of scheduled work (queue_items row).
type Item struct {
	ID         int64
	Kind       Kind
	Ref        int64
	CreatedAt  time.Time
	Attempts   int
	WarnAt     time.Time // zero: no warning due (none, or given already)
	DeadlineAt time.Time
	Reason     string
}

// Recipient is one pending recipient of a message (deliveries row).
type Recipient struct {
	DeliveryID int64
	Address    string
}

// Job is a message's pending recipients handed to the transports.
type Job struct {
	// Item is the scheduled item, or nil when the node that accepted the
	// message delivers it from memory: then no item row exists (one is
	// made only if this attempt does not settle every recipient).
	Item       *Item
	MessageID  int64
	IletiTip   string
	AcceptedAt time.Time
	Recipients []Recipient
	// Warn: the warning deadline has passed (given when this attempt fails).
	Warn bool
	// Expired: the deadline has passed; the transport must settle every
	// recipient for good, with failure evidence where it cannot deliver.
	Expired bool

	tries int // immediate retries (ErrRetryNow) in memory
}

// Transport carries recipients towards their mailboxes.
type Transport interface {
	// Name names the transport in logs; it is unique among a router's
	// transports (the queue groups recipients by it).
	Name() string
	// Deliver settles what it can of rs, the job's recipients routed to
	// this transport. It moves each recipient it settles out of Pending in
	// the same transaction as the recipient's evidence, where its UPDATE
	// says `AND transport_state = 'pending'` (see PendingOnly), and calls
	// Done in that transaction before it commits. An error leaves the
	// unsettled recipients pending for a retry after back-off;
	// ErrRetryNow asks for one at once (a race was lost, nothing failed).
	Deliver(ctx context.Context, job *Job, rs []Recipient) error
}

// Warner is a transport that tells the sender when a copy is late (the
// relay's 12 h notice). Warn runs in tx, once per item.
type Warner interface {
	Warn(ctx context.Context, tx *store.Tx, job *Job, rs []Recipient) error
}

// ErrRetryNow is returned by a transport that lost a race (the quota
// changed under it): the job is tried again at once, a few times.
var ErrRetryNow = errors.New("queue: retry at once")

// Router picks the transport of each recipient.
type Router interface {
	Route(address string) Transport
}

// DomainRouter sends the recipients of the provider's domain, and of its
// subdomains (institutional accounts, docs/kep-rules.md "Addresses"), to
// Local, and everyone else to Other (the relay; until it exists, a
// transport that issues non-delivery evidence with the reason).
type DomainRouter struct {
	Domain string
	Local  Transport
	Other  Transport
}

// Route implements Router.
func (r DomainRouter) Route(address string) Transport {
	at := strings.LastIndexByte(address, '@')
	dom := strings.ToLower(address[at+1:])
	d := strings.ToLower(r.Domain)
	if at >= 0 && (dom == d || strings.HasSuffix(dom, "."+d)) {
		return r.Local
	}
	return r.Other
}

// PendingOnly is the condition a transport's UPDATE of a deliveries row
// carries, so that a recipient settled elsewhere is never settled twice.
const PendingOnly = `transport_state = '` + string(Pending) + `'`

// Done ends a job's item inside the transport's transaction once none of
// its recipients is pending; it does nothing for a job without an item.
func Done(ctx context.Context, tx store.Querier, job *Job) error {
	if job.Item == nil {
		return nil
	}
	_, err := tx.Exec(ctx, `DELETE FROM queue_items WHERE id = ? AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = ? AND `+PendingOnly+`)`,
		job.Item.ID, job.MessageID)
	return err
}
