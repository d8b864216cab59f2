package mailbox

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// Policy holds the deemed-read rules (docs/kep-rules.md, "Timing rules"):
// configurable per message type, defaults 24 hours for standart and
// eYazisma, the end of the fifth day after delivery for eTebligat.
type Policy struct {
	Standart      time.Duration
	EYazisma      time.Duration
	ETebligatDays int
	Location      *time.Location // calendar for day-based deadlines
}

// DefaultPolicy returns the default deemed-read rules.
func DefaultPolicy() Policy {
	loc, err := time.LoadLocation("Europe/Istanbul")
	if err != nil {
		loc = time.FixedZone("TRT", 3*60*60) // Turkey has kept UTC+3 all year since 2016
	}
	return Policy{Standart: 24 * time.Hour, EYazisma: 24 * time.Hour, ETebligatDays: 5, Location: loc}
}

// Deadline returns when a message of type iletiTip delivered at t is deemed
// read, and the rule that says so (named in evidence 61).
func (p Policy) Deadline(iletiTip string, t time.Time) (time.Time, string) {
	switch iletiTip {
	case evidence.IletiTipETebligat:
		// "the end of the fifth day after it reaches the address": the
		// deadline is the midnight that ends day N after the delivery day,
		// on the local calendar (7201 sayılı Tebligat Kanunu m. 7/a;
		// Elektronik Tebligat Yönetmeliği).
		l := t.In(p.Location)
		end := time.Date(l.Year(), l.Month(), l.Day()+p.ETebligatDays+1, 0, 0, 0, 0, p.Location)
		return end.UTC(), fmt.Sprintf("eTebligat: end of day %d after delivery (%s)", p.ETebligatDays, p.Location)
	case evidence.IletiTipEYazisma:
		return t.Add(p.EYazisma).UTC(), fmt.Sprintf("eYazisma: %s after delivery", p.EYazisma)
	}
	return t.Add(p.Standart).UTC(), fmt.Sprintf("standart: %s after delivery", p.Standart)
}

// Service runs the mailboxes of one provider.
type Service struct {
	DB       *store.DB
	Blobs    *blob.Store
	Issuer   *evidence.IssuerService
	Accounts *account.Service
	Policy   Policy
	Domain   string // the provider's domain: recipients here are local
	Provider string // the provider's name, for envelopes and notices
	// Signer signs the provider's envelopes (S/MIME).
	SignerKey   crypto.Signer
	SignerCert  *x509.Certificate
	SignerChain []*x509.Certificate
	// Bundle makes the evidence bundle of a leaf index (the node knows the
	// keys); used to render evidence items.
	Bundle func(ctx context.Context, seq int64) ([]byte, error)
	Now    func() time.Time
	Log    *slog.Logger
	Hub    *Hub
	// Metrics counts deliveries (nil counts nothing).
	Metrics *Metrics
	Queue   *queue.Queue // carries accepted messages to their transports
	// Delivered, when set, runs in the transaction that places each copy
	// in a mailbox (package notice queues its notices there, so that none
	// is lost nor made twice): the delivery, the recipient's account, the
	// time of delivery and the deemed-read deadline.
	Delivered func(ctx context.Context, tx *store.Tx, deliveryID, accountID int64, at, deemedAt time.Time) error

	wake     chan struct{}
	initOnce sync.Once
	folders  sync.Map // folderKey → *Folder (ID and AccountID only)
	fresh    freshCache
	served   sync.Map // retrievalKey → true: retrieval_served rows known to exist (retrieve.go)
}

// fresh holds what delivery needs of a message just accepted — the row,
// the sender, the original's bytes, the acceptance evidence — so that the
// delivery that follows at once reads none of it back. Bounded in bytes;
// delivery falls back to the store for what is not here.
type freshMessage struct {
	msg      *KEPMessage
	sender   *store.Account
	operator *store.Operator
	original []byte
	accepted []byte // the acceptance evidence document
}

type freshCache struct {
	mu    sync.Mutex
	m     map[int64]*freshMessage
	order []int64
	bytes int
}

const freshCacheBytes = 64 << 20

func (c *freshCache) put(f *freshMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int64]*freshMessage{}
	}
	n := len(f.original) + len(f.accepted)
	if n > freshCacheBytes/8 {
		return
	}
	for c.bytes+n > freshCacheBytes && len(c.order) > 0 {
		c.dropLocked(c.order[0])
	}
	c.m[f.msg.ID] = f
	c.order = append(c.order, f.msg.ID)
	c.bytes += n
}

func (c *freshCache) dropLocked(id int64) {
	if f, ok := c.m[id]; ok {
		c.bytes -= len(f.original) + len(f.accepted)
		delete(c.m, id)
	}
	for i, x := range c.order {
		if x == id {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

func (c *freshCache) get(id int64) *freshMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *freshCache) drop(id int64) {
	c.mu.Lock()
	c.dropLocked(id)
	c.mu.Unlock()
}

type folderKey struct {
	account int64
	name    string
}

// folder returns an account's folder for appending, creating the standard
// folders when the account has none yet. Folders that existed before are
// remembered (folders are never removed), which saves the hot paths two
// queries; folders made inside q's transaction are not, since it may still
// roll back.
func (s *Service) folder(ctx context.Context, q store.Querier, accountID int64, name string) (*Folder, error) {
	key := folderKey{accountID, name}
	if f, ok := s.folders.Load(key); ok {
		return f.(*Folder), nil
	}
	f, err := GetFolder(ctx, q, accountID, name)
	if err == nil {
		s.folders.Store(key, &Folder{ID: f.ID, AccountID: f.AccountID, Name: f.Name})
		return f, nil
	}
	if !errors.Is(err, ErrNoFolder) {
		return nil, err
	}
	if err := EnsureFolders(ctx, q, accountID, s.now()); err != nil {
		return nil, err
	}
	return GetFolder(ctx, q, accountID, name)
}

func (s *Service) init() {
	s.initOnce.Do(func() {
		s.wake = make(chan struct{}, 1)
		if s.Hub == nil {
			s.Hub = NewHub()
		}
		if s.Log == nil {
			s.Log = slog.Default()
		}
		if s.Policy.Location == nil {
			s.Policy = DefaultPolicy()
		}
	})
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Wake tells the delivery worker there is work.
func (s *Service) Wake() {
	s.init()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ErrNoAccess is returned when a principal may not act on an account.
var ErrNoAccess = errors.New("not allowed on this account")

// senderParty describes the sender of a message for evidence.
func senderParty(a *store.Account, from string) evidence.Party {
	if from == "" {
		from = a.Address
	}
	return evidence.Party{Address: from, Identity: a.OwnerID, Name: a.OwnerName}
}

// operatorParty describes the operator who acted on the account at addr:
// kep:Operator carries the account acted for as its Address and the
// operator's own identity.
func operatorParty(o *store.Operator, addr string) *evidence.Party {
	if o == nil {
		return nil
	}
	return &evidence.Party{Address: addr, Identity: "TCKN:" + o.TCKN, Name: o.Name}
}

// baseEvidence fills the fields every evidence about msg shares.
func (s *Service) baseEvidence(ctx context.Context, q store.Querier, msg *KEPMessage) (*evidence.Evidence, *store.Account, error) {
	if msg.Foreign() {
		return s.foreignBase(ctx, q, msg)
	}
	sender, err := store.GetAccount(ctx, q, msg.SenderAccount)
	if err != nil {
		return nil, nil, err
	}
	var op *store.Operator
	if msg.OperatorID != 0 {
		op, _ = store.GetOperator(ctx, q, msg.OperatorID)
	}
	return makeBase(msg, sender, op), sender, nil
}

func makeBase(msg *KEPMessage, sender *store.Account, op *store.Operator) *evidence.Evidence {
	e := &evidence.Evidence{
		SubmissionTime: msg.SubmittedAt,
		Sender:         senderParty(sender, msg.From),
		Message: evidence.Message{MessageID: msg.HeaderID, IletiID: msg.IletiID, IletiTip: msg.IletiTip,
			DigestAlgorithm: evidence.DigestSHA256, Digest: append([]byte(nil), msg.Digest[:]...), Size: msg.Size},
		RelatedEvidence: msg.EvidenceID,
	}
	if op != nil {
		e.Operator = operatorParty(op, sender.Address)
	}
	return e
}

// recipientParty describes a recipient for evidence: the address, and the
// identity when the account is ours.
func recipientParty(addr string, a *store.Account) evidence.Party {
	p := evidence.Party{Address: addr}
	if a != nil {
		p.Identity, p.Name = a.OwnerID, a.OwnerName
	}
	return p
}
