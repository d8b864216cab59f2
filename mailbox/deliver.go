package mailbox

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/store"
)

// RunDelivery delivers queued messages until ctx ends: woken by Accept, and
// every few seconds for retries. It keeps up to deliveryConcurrency messages
// in delivery at once, starting the next as soon as one is done, so that
// their evidence shares log commits.
func (s *Service) RunDelivery(ctx context.Context) {
	s.init()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	d := &dispatcher{s: s, busy: map[int64]bool{}, done: make(chan struct{}, deliveryConcurrency)}
	defer d.wg.Wait()
	for {
		started, err := d.dispatch(ctx)
		if err != nil && ctx.Err() == nil {
			s.Log.Error("delivery", "err", err)
		}
		if started > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-d.done:
		case <-t.C:
		}
	}
}

// dispatcher starts deliveries, one goroutine a message, never two for the
// same message.
type dispatcher struct {
	s    *Service
	mu   sync.Mutex
	busy map[int64]bool // messages in delivery
	// A message whose delivery ended after a query began must not be
	// started from that query's rows (they may predate the delivery's
	// commit): finished remembers when each delivery ended.
	gen      int64
	finished map[int64]int64
	wg       sync.WaitGroup
	done     chan struct{}
}

// dispatch starts the due deliveries it has room for and returns how many
// messages it started.
func (d *dispatcher) dispatch(ctx context.Context) (int, error) {
	d.mu.Lock()
	room := deliveryConcurrency - len(d.busy)
	if room < deliveryConcurrency/2 {
		// Wait for half the slots: one query starts many deliveries, rather
		// than one query a finished delivery.
		d.mu.Unlock()
		return 0, nil
	}
	d.gen++
	gen := d.gen
	if d.finished == nil || len(d.finished) > 100000 {
		d.finished = map[int64]int64{}
	}
	d.mu.Unlock()
	if room <= 0 {
		return 0, nil
	}
	now := d.s.now()
	ds, err := queryDeliveries(ctx, d.s.DB.Q(), `WHERE state = 'queued' AND next_at <= ? ORDER BY next_at, id LIMIT ?`, store.Millis(now), 4*deliveryConcurrency)
	if err != nil {
		return 0, err
	}
	byMsg, order := groupByMessage(ds)
	started := 0
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range order {
		if d.busy[id] || d.finished[id] >= gen || len(d.busy) >= deliveryConcurrency {
			continue
		}
		d.busy[id] = true
		started++
		d.wg.Add(1)
		go func(id int64, ds []*Delivery) {
			defer d.wg.Done()
			d.s.deliverOrRetry(ctx, id, ds, now)
			d.mu.Lock()
			delete(d.busy, id)
			d.finished[id] = d.gen + 1 // any query begun so far must not restart it
			d.mu.Unlock()
			select {
			case d.done <- struct{}{}:
			default:
			}
		}(id, byMsg[id])
	}
	return started, nil
}

func groupByMessage(ds []*Delivery) (map[int64][]*Delivery, []int64) {
	byMsg := map[int64][]*Delivery{}
	var order []int64
	for _, d := range ds {
		if byMsg[d.MessageID] == nil {
			order = append(order, d.MessageID)
		}
		byMsg[d.MessageID] = append(byMsg[d.MessageID], d)
	}
	return byMsg, order
}

// deliverOrRetry delivers one message and, when that fails, schedules a
// retry rather than spin on it.
func (s *Service) deliverOrRetry(ctx context.Context, id int64, ds []*Delivery, now time.Time) {
	if err := s.deliverMessage(ctx, id, ds); err != nil {
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, evidence.ErrAlreadyIssued) {
			return // delivered already: the store refused doing it twice
		}
		s.Log.Error("deliver message", "message", id, "err", err)
		s.Metrics.retried(len(ds))
		// Through the log's group commit, like every frequent write, so that
		// writers never queue on the database lock behind one another.
		_, _ = s.Issuer.Log.Append(ctx, nil, func(ctx context.Context, tx *store.Tx, _ int64) error {
			_, err := tx.Exec(ctx, `UPDATE deliveries SET attempts = attempts + 1, next_at = ?, reason = ? WHERE message_id = ? AND state = 'queued'`,
				store.Millis(now.Add(time.Minute)), truncate(err.Error(), 300), id)
			return err
		})
	}
}

// DeliverQueued delivers up to limit queued deliveries that are due, all at
// once, and returns how many it handled (tests and tools call it; the node
// runs RunDelivery).
func (s *Service) DeliverQueued(ctx context.Context, limit int) (int, error) {
	s.init()
	now := s.now()
	ds, err := queryDeliveries(ctx, s.DB.Q(), `WHERE state = 'queued' AND next_at <= ? ORDER BY next_at, id LIMIT ?`, store.Millis(now), limit)
	if err != nil {
		return 0, err
	}
	byMsg, order := groupByMessage(ds)
	var wg sync.WaitGroup
	sem := make(chan struct{}, deliveryConcurrency)
	for _, id := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func(id int64) {
			defer func() { <-sem; wg.Done() }()
			s.deliverOrRetry(ctx, id, byMsg[id], now)
		}(id)
	}
	wg.Wait()
	return len(ds), nil
}

// deliveryConcurrency bounds the messages delivered at once.
const deliveryConcurrency = 128

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// outcome is what happens to one recipient.
type outcome struct {
	d      *Delivery
	acct   *store.Account
	ok     bool
	reason evidence.Reason
}

// deliverMessage places one message into its local recipients' INBOXes in
// the provider's envelope, issuing 40 for each placed copy and 41, with the
// reason, for each that could not be placed — evidence, mailbox entries and
// delivery states in one transaction.
func (s *Service) deliverMessage(ctx context.Context, msgID int64, ds []*Delivery) error {
	q := s.DB.Q()
	var msg *KEPMessage
	var base *evidence.Evidence
	var sender *store.Account
	fresh := s.fresh.get(msgID)
	if fresh != nil {
		defer s.fresh.drop(msgID)
		msg, sender = fresh.msg, fresh.sender
		base = makeBase(msg, sender, fresh.operator)
	} else {
		var err error
		if msg, err = GetKEPMessage(ctx, q, msgID); err != nil {
			return err
		}
		if base, sender, err = s.baseEvidence(ctx, q, msg); err != nil {
			return err
		}
	}
	// The envelope is the same for every recipient: signed once, at
	// acceptance (older rows may still need it made here).
	envSig, envSize, envParams, err := s.signEnvelope(ctx, msg, fresh)
	if err != nil {
		return err
	}
	now := s.now()
	var outs []*outcome
	var recs []*evidence.Record
	for _, d := range ds {
		o := &outcome{d: d}
		if !strings.HasSuffix(strings.ToLower(d.Recipient), "@"+s.Domain) {
			// Relay to other providers is not part of this node yet: the
			// submission refuses such recipients, so this is a stale row.
			o.reason = evidence.ReasonUnknownRecipient()
			o.reason.Text = "Alıcının hizmet sağlayıcısına iletim yapılamıyor / the recipient's provider cannot be reached from this node."
		} else if a, err := store.GetAccountByAddress(ctx, q, strings.ToLower(d.Recipient)); errors.Is(err, store.ErrNotFound) {
			o.reason = evidence.ReasonUnknownRecipient()
		} else if err != nil {
			return err
		} else {
			o.acct = a
			switch {
			case account.Status(a.Status) != account.Active:
				o.reason = evidence.ReasonMailboxClosed()
			case a.UsedBytes+envSize > a.QuotaBytes:
				o.reason = evidence.ReasonMailboxFull()
			default:
				o.ok = true
			}
		}
		e := *base
		e.ID, e.EventTime = evidence.NewID(), now
		e.Recipients = []evidence.Party{recipientParty(d.Recipient, o.acct)}
		if o.ok {
			e.Code = evidence.Delivered
		} else {
			e.Code = evidence.NotDelivered
			e.Reasons = []evidence.Reason{o.reason}
		}
		outs = append(outs, o)
		recs = append(recs, &evidence.Record{Evidence: &e, AccountID: sender.ID, MessageID: msg.ID, Subject: d.Recipient})
	}
	var notify [][2]int64
	var unused []blob.Digest
	err = s.Issuer.Issue(ctx, recs, func(ctx context.Context, tx *store.Tx) error {
		notify, unused = notify[:0], unused[:0]
		delivered := false
		if msg.EnvelopeSig == nil {
			if _, err := tx.Exec(ctx, `UPDATE messages SET envelope_sig = ?, envelope_size = ?, envelope_params = ? WHERE id = ? AND envelope_sig IS NULL`, envSig, envSize, envParams, msg.ID); err != nil {
				return err
			}
		}
		for _, o := range outs {
			if !o.ok {
				if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'failed', attempts = attempts + 1, account_id = ?, reason = ? WHERE id = ? AND state = 'queued'`,
					nullID(accountID(o.acct)), o.reason.Code, o.d.ID); err != nil {
					return err
				}
				continue
			}
			// Charge the quota inside the transaction, on condition that it
			// still fits: other deliveries may have filled the mailbox since
			// it was read.
			var used int64
			err := tx.QueryRow(ctx, `UPDATE accounts SET used_bytes = used_bytes + ? WHERE id = ? AND used_bytes + ? <= quota_bytes RETURNING used_bytes`,
				envSize, o.acct.ID, envSize).Scan(&used)
			if errors.Is(store.MapErr(err), store.ErrNotFound) {
				return errQuotaRace
			}
			if err != nil {
				return err
			}
			deadline, rule := s.Policy.Deadline(msg.IletiTip, now)
			if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, account_id = ?, delivered_at = ?, deemed_at = ?, rule = ?, reason = '' WHERE id = ? AND state = 'queued'`,
				o.acct.ID, store.Millis(now), store.Millis(deadline), rule, o.d.ID); err != nil {
				return err
			}
			inbox, err := s.folder(ctx, tx, o.acct.ID, Inbox)
			if err != nil {
				return err
			}
			// The row holds the original (the envelope is rendered from it).
			d := msg.Digest
			delivered = true
			if _, err := Append(ctx, tx, inbox, New{Kind: KindKEP, MessageID: msg.ID, DeliveryID: o.d.ID, Ref: -1, Content: &d, Size: envSize, InternalDate: now, Charged: true}); err != nil {
				return err
			}
			a := *o.acct
			a.UsedBytes = used
			if err := s.quotaNotices(ctx, tx, &a, used-envSize, used, inbox, now); err != nil {
				return err
			}
			notify = append(notify, [2]int64{o.acct.ID, inbox.ID})
		}
		if !delivered { // nobody received it: the Sent copy may be the last holder
			free, err := Unused(ctx, tx, msg.Digest)
			if err != nil {
				return err
			}
			if free {
				unused = append(unused, msg.Digest)
			}
		}
		return nil
	})
	if errors.Is(err, errQuotaRace) {
		return nil // the next pass re-reads the quota and issues 41 if it is still full
	}
	if err != nil {
		return err
	}
	s.Metrics.delivered(outs)
	s.deleteBlobs(unused)
	for _, n := range notify {
		s.Hub.Notify(n[0], n[1])
	}
	return nil
}

var errQuotaRace = errors.New("quota changed during delivery")

func accountID(a *store.Account) int64 {
	if a == nil {
		return 0
	}
	return a.ID
}

func (s *Service) deleteBlobs(ds []blob.Digest) {
	for _, d := range ds {
		if err := s.Blobs.Delete(d); err != nil {
			s.Log.Error("delete content", "digest", d.String(), "err", err)
		}
	}
}

// quotaNotices puts a notice in the INBOX when usage crosses 80, 90 or 100 %
// of the quota (kep-domain.md, "Accounts": warn before it bites), once per
// crossing.
func (s *Service) quotaNotices(ctx context.Context, tx store.Querier, a *store.Account, before, after int64, inbox *Folder, now time.Time) error {
	if a.QuotaBytes <= 0 {
		return nil
	}
	for _, level := range []int64{100, 90, 80} {
		limit := a.QuotaBytes * level / 100
		if before < limit && after >= limit {
			res, err := tx.Exec(ctx, `INSERT INTO quota_notices (account_id, level, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, a.ID, level, store.Millis(now))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil
			}
			notice := renderNotice(s.Domain, s.Provider, a.Address, int(level), now)
			_, err = Append(ctx, tx, inbox, New{Kind: KindNotice, Ref: level, Size: int64(len(notice)), InternalDate: now})
			return err
		}
	}
	return nil
}

// forgetQuotaNotices clears the notices above the current usage, so that
// crossing a level again warns again.
func forgetQuotaNotices(ctx context.Context, q store.Querier, accountID int64) error {
	a, err := store.GetAccount(ctx, q, accountID)
	if err != nil || a.QuotaBytes <= 0 {
		return err
	}
	pct := a.UsedBytes * 100 / a.QuotaBytes
	_, err = q.Exec(ctx, `DELETE FROM quota_notices WHERE account_id = ? AND level > ?`, accountID, pct)
	return err
}
