package mailbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/store"
)

// Retrieval says how a recipient's retrieval of a KEP message was seen
// (docs/evidence.md, "What counts as a retrieval"). Evidence 60 names it
// in its reason, so that the proof stays honest about what happened.
type Retrieval string

const (
	// BodyFetch: the body was fetched without PEEK (IMAP BODY[], RFC822,
	// BINARY[]), or opened in the web or the API.
	BodyFetch Retrieval = "body-fetch"
	// SeenAfterDownload: \Seen was set (IMAP STORE) by a principal the
	// body had been served to before, by any fetch, PEEK included: what
	// Thunderbird, Apple Mail, Outlook and neomutt do.
	SeenAfterDownload Retrieval = "seen-after-download"
	// WebOpen: the message was opened in the web mail (Open).
	WebOpen Retrieval = "web"
)

// Reason codes of evidence 60 and 61.
const (
	ReasonRetrievalBodyFetch = evidence.ReasonKEPBase + "retrieval-body-fetch"
	ReasonRetrievalSeenFlag  = evidence.ReasonKEPBase + "retrieval-seen-after-download"
	ReasonRetrievalWeb       = evidence.ReasonKEPBase + "retrieval-web"
)

func (r Retrieval) reason() evidence.Reason {
	if r == WebOpen {
		return evidence.Reason{Code: ReasonRetrievalWeb, Text: "Alıcı iletiyi web postada açtı / the recipient opened the message in the web mail"}
	}
	if r == SeenAfterDownload {
		return evidence.Reason{Code: ReasonRetrievalSeenFlag,
			Text: "Alıcı iletiyi indirdikten sonra okundu olarak işaretledi / the recipient marked the message read after downloading it"}
	}
	return evidence.Reason{Code: ReasonRetrievalBodyFetch, Text: "Alıcı iletinin içeriğini açtı / the recipient opened the message's content"}
}

type retrievalKey struct {
	delivery  int64
	principal string
}

// servedKey names a principal in retrieval_served. It holds no personal
// data (an operator is named by row id, not TCKN).
func servedKey(p *account.Principal) string {
	switch p.Kind() {
	case account.Operator:
		return fmt.Sprintf("operator:%d", p.Operator.ID)
	case account.Holder:
		return fmt.Sprintf("account:%d", p.Account.ID)
	}
	return p.Name()
}

// Serve is called by a front-end before it sends a KEP message's body
// (not its header alone) to a principal. It checks the read grant and
// records, in the store, that the body was served to that principal, so
// that a later \Seen from the same principal is a retrieval even after a
// reconnect. With peek false the fetch itself is the retrieval: evidence
// 60 is issued (once per recipient) before the body leaves; an error means
// the body must not be sent.
func (s *Service) Serve(ctx context.Context, p *account.Principal, m *Message, peek bool) error {
	return s.serve(ctx, p, m, peek, BodyFetch)
}

// Open is Serve without PEEK for a front-end that names how the message
// was opened (WebOpen): the opening is the retrieval.
func (s *Service) Open(ctx context.Context, p *account.Principal, m *Message, how Retrieval) error {
	return s.serve(ctx, p, m, false, how)
}

func (s *Service) serve(ctx context.Context, p *account.Principal, m *Message, peek bool, how Retrieval) error {
	s.init()
	if m.Kind != KindKEP || m.DeliveryID == 0 {
		return nil
	}
	q := s.DB.Q()
	f, err := GetFolderByID(ctx, q, m.FolderID)
	if err != nil {
		return err
	}
	if p != nil && !p.Can(f.AccountID, account.GrantRead) {
		return refuse(NoPermission, "Reading messages needs the read grant")
	}
	if p != nil {
		if err := s.recordServed(ctx, m.DeliveryID, p); err != nil {
			return err
		}
	}
	if peek {
		return nil
	}
	return s.markRead(ctx, p, m.DeliveryID, how)
}

// recordServed notes that the body of a delivery was served to p, once.
func (s *Service) recordServed(ctx context.Context, deliveryID int64, p *account.Principal) error {
	key := retrievalKey{deliveryID, servedKey(p)}
	if _, ok := s.served.Load(key); ok {
		return nil
	}
	// Only an unread delivery needs it: after 60 or 61 nothing more can
	// count as its retrieval, and reading old mail writes nothing.
	d, err := GetDelivery(ctx, s.DB.Q(), deliveryID)
	if err != nil {
		return err
	}
	if d.State != DeliveredTo {
		s.served.Store(key, true)
		return nil
	}
	at := store.Millis(s.now())
	write := func(ctx context.Context, q store.Querier) error {
		_, err := q.Exec(ctx, `INSERT INTO retrieval_served (delivery_id, principal, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			deliveryID, key.principal, at)
		return err
	}
	// Through the log's group commit, like every frequent write, so that a
	// fetch never races the log's writer for SQLite's lock (idempotent: a
	// retried batch may run it twice).
	if s.Issuer != nil && s.Issuer.Log != nil {
		err = s.Issuer.Log.Write(ctx, func(ctx context.Context, tx *store.Tx) error { return write(ctx, tx) })
	} else {
		err = write(ctx, s.DB.Q())
	}
	if err != nil {
		return err
	}
	s.served.Store(key, true)
	return nil
}

// MarkRead records that a KEP message was opened (a body fetch without
// PEEK): see Serve, which front-ends call.
func (s *Service) MarkRead(ctx context.Context, p *account.Principal, m *Message) error {
	s.init()
	if m.Kind != KindKEP || m.DeliveryID == 0 {
		return nil
	}
	return s.markRead(ctx, p, m.DeliveryID, BodyFetch)
}

// retrieveOnSeen issues evidence 60 when p sets \Seen on m after its body
// was served to p; it reports whether that was a retrieval. A \Seen on a
// message never downloaded ("mark all as read") is not one.
func (s *Service) retrieveOnSeen(ctx context.Context, p *account.Principal, m *Message) (bool, error) {
	if m.Kind != KindKEP || m.DeliveryID == 0 || p == nil {
		return false, nil
	}
	var n int
	if err := s.DB.Q().QueryRow(ctx, `SELECT COUNT(*) FROM retrieval_served WHERE delivery_id = ? AND principal = ?`, m.DeliveryID, servedKey(p)).Scan(&n); err != nil {
		return false, store.MapErr(err)
	}
	if n == 0 {
		return false, nil
	}
	return true, s.markRead(ctx, p, m.DeliveryID, SeenAfterDownload)
}

// markRead issues evidence 60 for a delivery, once per recipient, whichever
// client or path reads it (TS 102 640-2 RetrievalNonRetrievalByRecipient).
// Later calls do nothing.
func (s *Service) markRead(ctx context.Context, p *account.Principal, deliveryID int64, how Retrieval) error {
	d, err := GetDelivery(ctx, s.DB.Q(), deliveryID)
	if err != nil {
		return err
	}
	if d.State != DeliveredTo {
		return nil // read or deemed read already
	}
	if p != nil && !p.Can(d.AccountID, account.GrantRead) {
		return ErrNoAccess
	}
	var props []evidence.Property
	if p != nil && p.Operator != nil {
		// Who opened it for the recipient company (docs/kep-rules.md: "evidence
		// records which operator acted"). kep:Operator stays the sender's.
		props = append(props, evidence.Property{Name: "readingOperator", Value: "TCKN:" + p.Operator.TCKN + " " + p.Operator.Name})
	}
	_, err = s.issueRetrieval(ctx, d, evidence.Read, s.now(), []evidence.Reason{how.reason()}, props, ReadBy)
	return err
}

// issueRetrieval is the one path of retrieval evidence: read (60) and
// deemed read (61). It issues the evidence for one delivery and moves the
// delivery from delivered to next in the same transaction; it reports
// false when the delivery had left the delivered state already (the
// evidence then is not issued). It refuses to sign when any part of the
// evidence cannot be read: the message, the sender or the recipient.
//
// The write function below may run more than once: the log retries a
// batch whose transaction failed (tlog.WriteFunc), each time in a new
// transaction after the failed one rolled back. It is written to give the
// same result each time: a conditional UPDATE that either moves the
// delivery or reports evidence.ErrAlreadyIssued.
func (s *Service) issueRetrieval(ctx context.Context, d *Delivery, code evidence.Code, at time.Time, reasons []evidence.Reason, props []evidence.Property, next DeliveryState) (bool, error) {
	q := s.DB.Q()
	msg, err := GetKEPMessage(ctx, q, d.MessageID)
	if err != nil {
		return false, fmt.Errorf("retrieval evidence for delivery %d: message: %w", d.ID, err)
	}
	base, sender, err := s.baseEvidence(ctx, q, msg)
	if err != nil {
		return false, fmt.Errorf("retrieval evidence for delivery %d: sender: %w", d.ID, err)
	}
	recip, err := store.GetAccount(ctx, q, d.AccountID)
	if err != nil {
		return false, fmt.Errorf("retrieval evidence for delivery %d: recipient account: %w", d.ID, err)
	}
	e := *base
	e.ID, e.Code, e.EventTime = evidence.NewID(), code, at
	e.Recipients = []evidence.Party{recipientParty(d.Recipient, recip)}
	e.Reasons = reasons
	e.Properties = append(append([]evidence.Property{}, e.Properties...), props...)
	rec := &evidence.Record{Evidence: &e, AccountID: sender.ID, MessageID: msg.ID, Subject: d.Recipient}
	err = s.Issuer.Issue(ctx, []*evidence.Record{rec}, retrievalWrite(d.ID, next))
	if errors.Is(err, evidence.ErrAlreadyIssued) {
		return false, nil
	}
	return err == nil, err
}

// retrievalWrite moves a delivery from delivered to next; see
// issueRetrieval on running more than once.
func retrievalWrite(deliveryID int64, next DeliveryState) func(ctx context.Context, tx *store.Tx) error {
	return func(ctx context.Context, tx *store.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE deliveries SET state = ? WHERE id = ? AND state = ?`, string(next), deliveryID, string(DeliveredTo))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return evidence.ErrAlreadyIssued
		}
		return nil
	}
}

// DeemRead issues evidence 61 for every delivered message whose deemed-read
// deadline has passed unopened, naming the rule that fired, and returns how
// many it issued. The deadlines are rows in the store, so they survive
// restarts; a message read before its deadline has 60 and never gets 61.
func (s *Service) DeemRead(ctx context.Context, limit int) (int, error) {
	s.init()
	now := s.now()
	ds, err := queryDeliveries(ctx, s.DB.Q(), `WHERE state = 'delivered' AND deemed_at <= ? ORDER BY deemed_at LIMIT ?`, store.Millis(now), limit)
	if err != nil {
		return 0, err
	}
	// One delivery whose evidence cannot be made (see issueRetrieval) is
	// logged and skipped, so that it does not hold up the others' 61.
	n := 0
	var errs []error
	for _, d := range ds {
		ok, err := s.deem(ctx, d, now)
		if err != nil {
			if ctx.Err() != nil {
				return n, err
			}
			s.Log.Error("deemed read: evidence not issued", "delivery", d.ID, "err", err)
			errs = append(errs, err)
			continue
		}
		if ok {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func (s *Service) deem(ctx context.Context, d *Delivery, now time.Time) (bool, error) {
	msg, err := GetKEPMessage(ctx, s.DB.Q(), d.MessageID)
	if err != nil {
		return false, err
	}
	// The reason names the rule that fired, as configured for the type.
	reason := evidence.ReasonDeemedReadStandart24h()
	switch msg.IletiTip {
	case evidence.IletiTipETebligat:
		reason = evidence.ReasonDeemedReadETebligat5Days()
	case evidence.IletiTipEYazisma:
		reason.Code = evidence.ReasonKEPBase + "deemed-read-eyazisma"
	}
	reason.Text = fmt.Sprintf("Alıcı iletiyi süresi içinde açmadığı için okunmuş sayılmıştır / deemed read: not opened in time (kural / rule: %s; teslim / delivered %s, süre sonu / deadline %s)",
		d.Rule, d.DeliveredAt.Format(time.RFC3339), d.DeemedAt.Format(time.RFC3339))
	return s.issueRetrieval(ctx, d, evidence.DeemedRead, now, []evidence.Reason{reason}, nil, Deemed)
}

// RunTimers fires deemed-read deadlines every interval until ctx ends.
func (s *Service) RunTimers(ctx context.Context, interval time.Duration) {
	s.init()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			n, err := s.DeemRead(ctx, 256)
			if err != nil {
				if ctx.Err() == nil {
					s.Log.Error("deemed read", "err", err)
				}
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Courier puts every evidence below leaf index upTo that belongs to an
// account into that account's Delil folder, once, and returns how many it
// placed. It runs after each checkpoint, so that every item's bundle can be
// made.
func (s *Service) Courier(ctx context.Context, upTo int64) (int, error) {
	s.init()
	placed := 0
	for {
		var pos int64
		err := s.DB.Q().QueryRow(ctx, `SELECT pos FROM cursors WHERE name = 'delil'`).Scan(&pos)
		if err != nil && !errors.Is(store.MapErr(err), store.ErrNotFound) {
			return placed, err
		}
		if pos >= upTo {
			return placed, nil
		}
		end := min(upTo, pos+courierStep)
		type item struct {
			seq, account int64
			at           int64
		}
		rows, err := s.DB.Q().Query(ctx, `SELECT seq, account_id, event_time FROM evidence WHERE seq >= ? AND seq < ? AND account_id IS NOT NULL ORDER BY seq`, pos, end)
		if err != nil {
			return placed, err
		}
		var items []item
		for rows.Next() {
			var it item
			if err := rows.Scan(&it.seq, &it.account, &it.at); err != nil {
				rows.Close()
				return placed, err
			}
			items = append(items, it)
		}
		rows.Close()
		touched := map[int64]int64{}
		// The rows go through the log's group commit (with no entries of
		// their own), sharing its transaction and fsync.
		_, err = s.Issuer.Log.Append(ctx, nil, func(ctx context.Context, tx *store.Tx, _ int64) error {
			var cur int64
			err := tx.QueryRow(ctx, `SELECT pos FROM cursors WHERE name = 'delil'`).Scan(&cur)
			if err != nil && !errors.Is(store.MapErr(err), store.ErrNotFound) {
				return err
			}
			if cur != pos {
				return errCourierMoved
			}
			// Each account's items go in with one UID allocation.
			type batch struct {
				seqs []int64
				at   []time.Time
			}
			byAccount := map[int64]*batch{}
			var accounts []int64
			for _, it := range items {
				b := byAccount[it.account]
				if b == nil {
					b = &batch{}
					byAccount[it.account] = b
					accounts = append(accounts, it.account)
				}
				b.seqs = append(b.seqs, it.seq)
				b.at = append(b.at, store.FromMillis(it.at))
			}
			for _, a := range accounts {
				f, err := s.folder(ctx, tx, a, Delil)
				if err != nil {
					return err
				}
				if err := AppendEvidence(ctx, tx, f, byAccount[a].seqs, byAccount[a].at); err != nil {
					return err
				}
				touched[a] = f.ID
			}
			// Evidence about messages from other providers goes back to them (relayreturn.go).
			if err := enqueueReturns(ctx, tx, pos, end, s.now()); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO cursors (name, pos) VALUES ('delil', ?) ON CONFLICT (name) DO UPDATE SET pos = ?`, end, end)
			return err
		})
		if errors.Is(err, errCourierMoved) {
			continue
		}
		if err != nil {
			return placed, err
		}
		placed += len(items)
		for a, f := range touched {
			s.Hub.Notify(a, f)
		}
	}
}

var errCourierMoved = errors.New("another courier moved the cursor")

// courierStep is how many leaves the courier places in one write. The
// write joins the log's group commit, where messages wait for their 250:
// a thousand folder rows in one write made that commit, and every message
// in it, wait 20–30 ms about every third of a second under load (kep
// bench's p99); 128 leaves spread the same rows over a few commits at a
// millisecond or two each.
const courierStep = 128

// RemoveMessages deletes messages from a folder (IMAP EXPUNGE, the web's
// delete): the owner's right, or an operator's with the delete grant. The
// content leaves the content store once no folder holds it; the evidence
// and its digests remain, so `kep verify --original` still works for
// whoever kept a copy.
func (s *Service) RemoveMessages(ctx context.Context, p *account.Principal, f *Folder, uids []uint32) error {
	s.init()
	if p != nil && !p.Can(f.AccountID, account.GrantDelete) {
		a, err := store.GetAccount(ctx, s.DB.Q(), f.AccountID)
		if err != nil {
			return err
		}
		return needGrant(p, a, account.GrantDelete, "Deleting messages")
	}
	var unused []blob.Digest
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		var err error
		unused, err = Remove(ctx, tx, f, uids)
		if err != nil {
			return err
		}
		return forgetQuotaNotices(ctx, tx, f.AccountID)
	})
	if err != nil {
		return err
	}
	s.dropBlobs(unused)
	s.Hub.Notify(f.AccountID, f.ID)
	return nil
}
