package mailbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// Local returns the transport that places messages in this provider's
// mailboxes (the queue's first transport).
func (s *Service) Local() queue.Transport { return localTransport{s} }

// NoRoute returns the transport of recipients that no transport reaches:
// it issues non-delivery evidence (41) saying so. Until the relay exists,
// the router sends other providers' recipients here; the submission
// refuses them, so only older rows reach it.
func (s *Service) NoRoute() queue.Transport { return noRoute{s} }

type localTransport struct{ s *Service }

func (localTransport) Name() string { return "local" }

func (t localTransport) Deliver(ctx context.Context, job *queue.Job, rs []queue.Recipient) error {
	err := t.s.deliverMessage(ctx, job, rs, nil)
	if err != nil && job.Expired && ctx.Err() == nil && !errors.Is(err, queue.ErrRetryNow) && !errors.Is(err, evidence.ErrAlreadyIssued) {
		// Past the deadline the queue stops retrying: what could not be
		// placed gets non-delivery evidence with the last error's gist.
		t.s.Log.Error("deliver message: deadline passed, issuing non-delivery", "message", job.MessageID, "err", err)
		r := reasonDeadline()
		err = t.s.deliverMessage(ctx, job, rs, &r)
	}
	if errors.Is(err, evidence.ErrAlreadyIssued) {
		return nil // delivered already: the store refused doing it twice
	}
	if err != nil && ctx.Err() == nil {
		t.s.Metrics.retried(len(rs)) // the queue tries again after its back-off
	}
	return err
}

type noRoute struct{ s *Service }

func (noRoute) Name() string { return "no-route" }

func (t noRoute) Deliver(ctx context.Context, job *queue.Job, rs []queue.Recipient) error {
	r := evidence.ReasonUnknownRecipient()
	r.Text = "Alıcının hizmet sağlayıcısına iletim yapılamıyor / the recipient's provider cannot be reached from this node."
	err := t.s.deliverMessage(ctx, job, rs, &r)
	if errors.Is(err, evidence.ErrAlreadyIssued) {
		return nil
	}
	return err
}

// reasonDeadline is the reason of a non-delivery after the queue's
// deadline (queue.Policy): the copy could not be placed in time.
func reasonDeadline() evidence.Reason {
	return evidence.Reason{Code: evidence.ReasonKEPBase + "delivery-timeout",
		Text: "İleti süresi içinde alıcının posta kutusuna yerleştirilemedi / the message could not be placed in the recipient's mailbox before the deadline."}
}

// DeliverQueued delivers the messages just accepted and up to limit due
// queue items, all at once, and returns how many jobs it ran (tests and
// tools call it; the node runs the queue).
func (s *Service) DeliverQueued(ctx context.Context, limit int) (int, error) {
	s.init()
	return s.Queue.RunDue(ctx, limit)
}

// outcome is what happens to one recipient.
type outcome struct {
	d      queue.Recipient
	acct   *store.Account
	ok     bool
	reason evidence.Reason
}

// deliverMessage places one message into the INBOXes of rs, local
// recipients, in the provider's envelope, issuing 40 for each placed copy
// and 41, with the reason, for each that could not be placed — evidence,
// mailbox entries, read and transport states in one transaction. With
// refuse set it places nothing and issues 41 with that reason to all.
func (s *Service) deliverMessage(ctx context.Context, job *queue.Job, rs []queue.Recipient, refuse *evidence.Reason) error {
	q := s.DB.Q()
	var msg *KEPMessage
	var base *evidence.Evidence
	var sender *store.Account
	fresh := s.fresh.get(job.MessageID)
	if fresh != nil {
		defer s.fresh.drop(job.MessageID)
		msg, sender = fresh.msg, fresh.sender
		base = makeBase(msg, sender, fresh.operator)
	} else {
		var err error
		if msg, err = GetKEPMessage(ctx, q, job.MessageID); err != nil {
			return err
		}
		if base, sender, err = s.baseEvidence(ctx, q, msg); err != nil {
			return err
		}
	}
	// The envelope is the same for every recipient: signed once, at
	// acceptance (older rows may still need it made here).
	var envSig []byte
	var envSize int64
	var envParams string
	if refuse == nil {
		var err error
		if envSig, envSize, envParams, err = s.signEnvelope(ctx, msg, fresh); err != nil {
			return err
		}
	}
	now := s.now()
	outs, recs, err := s.outcomes(ctx, q, msg, base, sender, rs, refuse, envSize, now)
	if err != nil {
		return err
	}
	var notify [][2]int64
	var unused []blob.Digest
	err = s.Issuer.Issue(ctx, recs, func(ctx context.Context, tx *store.Tx) error {
		unused = unused[:0]
		if msg.EnvelopeSig == nil && envSig != nil {
			if _, err := tx.Exec(ctx, `UPDATE messages SET envelope_sig = ?, envelope_size = ?, envelope_params = ? WHERE id = ? AND envelope_sig IS NULL`, envSig, envSize, envParams, msg.ID); err != nil {
				return err
			}
		}
		var delivered bool
		var err error
		if notify, delivered, err = s.settle(ctx, tx, msg, outs, envSize, now); err != nil {
			return err
		}
		if err := queue.Done(ctx, tx, job); err != nil {
			return err
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
		return fmt.Errorf("%w: %w", queue.ErrRetryNow, err) // the next pass re-reads the quota and issues 41 if it is still full
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

// outcomes decides, outside any transaction, what becomes of each of rs
// (placed, or not and why), and builds its evidence, 40 or 41, on base.
// With refuse set every recipient gets 41 with that reason.
func (s *Service) outcomes(ctx context.Context, q store.Querier, msg *KEPMessage, base *evidence.Evidence, sender *store.Account, rs []queue.Recipient, refuse *evidence.Reason, envSize int64, now time.Time) ([]*outcome, []*evidence.Record, error) {
	outs := make([]*outcome, 0, len(rs))
	recs := make([]*evidence.Record, 0, len(rs))
	for _, d := range rs {
		o := &outcome{d: d}
		if refuse != nil {
			o.reason = *refuse
		} else if a, err := store.GetAccountByAddress(ctx, q, strings.ToLower(d.Address)); errors.Is(err, store.ErrNotFound) {
			o.reason = evidence.ReasonUnknownRecipient()
		} else if err != nil {
			return nil, nil, err
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
		e.Recipients = []evidence.Party{recipientParty(d.Address, o.acct)}
		if o.ok {
			e.Code = evidence.Delivered
		} else {
			e.Code = evidence.NotDelivered
			e.Reasons = []evidence.Reason{o.reason}
		}
		outs = append(outs, o)
		recs = append(recs, &evidence.Record{Evidence: &e, AccountID: sender.ID, MessageID: msg.ID, Subject: d.Address})
	}
	return outs, recs, nil
}

// settle writes in tx what outs say: each recipient's delivery and
// transport state, and for each placed copy the quota charged and the
// INBOX entry. A recipient with no deliveries row yet (DeliveryID 0: it
// joins its message's acceptance, see Accept) gets its row in its final
// state; an existing row moves only out of pending (queue.PendingOnly).
// It returns the folders to notify and whether any copy was placed.
func (s *Service) settle(ctx context.Context, tx *store.Tx, msg *KEPMessage, outs []*outcome, envSize int64, now time.Time) (notify [][2]int64, delivered bool, err error) {
	for _, o := range outs {
		if !o.ok {
			if o.d.DeliveryID == 0 {
				o.d.DeliveryID, err = store.InsertID(ctx, tx, `INSERT INTO deliveries (message_id, recipient, state, transport_state, attempts, next_at, account_id, reason) VALUES (?, ?, ?, ?, 1, ?, ?, ?)`,
					msg.ID, o.d.Address, string(Failed), string(queue.Failed), store.Millis(now), nullID(accountID(o.acct)), o.reason.Code)
			} else {
				_, err = tx.Exec(ctx, `UPDATE deliveries SET state = ?, transport_state = ?, attempts = attempts + 1, account_id = ?, reason = ? WHERE id = ? AND `+queue.PendingOnly,
					string(Failed), string(queue.Failed), nullID(accountID(o.acct)), o.reason.Code, o.d.DeliveryID)
			}
			if err != nil {
				return nil, false, err
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
			return nil, false, errQuotaRace
		}
		if err != nil {
			return nil, false, err
		}
		deadline, rule := s.Policy.Deadline(msg.IletiTip, now)
		if o.d.DeliveryID == 0 {
			o.d.DeliveryID, err = store.InsertID(ctx, tx, `INSERT INTO deliveries (message_id, recipient, state, transport_state, attempts, next_at, account_id, delivered_at, deemed_at, rule) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?)`,
				msg.ID, o.d.Address, string(DeliveredTo), string(queue.Delivered), store.Millis(now), o.acct.ID, store.Millis(now), store.Millis(deadline), rule)
		} else {
			_, err = tx.Exec(ctx, `UPDATE deliveries SET state = ?, transport_state = ?, attempts = attempts + 1, account_id = ?, delivered_at = ?, deemed_at = ?, rule = ?, reason = '' WHERE id = ? AND `+queue.PendingOnly,
				string(DeliveredTo), string(queue.Delivered), o.acct.ID, store.Millis(now), store.Millis(deadline), rule, o.d.DeliveryID)
		}
		if err != nil {
			return nil, false, err
		}
		inbox, err := s.folder(ctx, tx, o.acct.ID, Inbox)
		if err != nil {
			return nil, false, err
		}
		// The row holds the original (the envelope is rendered from it).
		d := msg.Digest
		delivered = true
		if _, err := Append(ctx, tx, inbox, New{Kind: KindKEP, MessageID: msg.ID, DeliveryID: o.d.DeliveryID, Ref: -1, Content: &d, Size: envSize, InternalDate: now, Charged: true}); err != nil {
			return nil, false, err
		}
		a := *o.acct
		a.UsedBytes = used
		if err := s.quotaNotices(ctx, tx, &a, used-envSize, used, inbox, now); err != nil {
			return nil, false, err
		}
		if s.Delivered != nil { // notices of the arrival (package notice)
			if err := s.Delivered(ctx, tx, o.d.DeliveryID, o.acct.ID, now, deadline); err != nil {
				return nil, false, err
			}
		}
		notify = append(notify, [2]int64{o.acct.ID, inbox.ID})
	}
	return notify, delivered, nil
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
// of the quota (docs/kep-rules.md, "Accounts": warn before it bites), once per
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
