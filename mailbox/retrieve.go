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

// MarkRead records that a KEP message was opened: the first time its
// recipient — or an operator with the read grant, recorded as such —
// retrieves the body, evidence 60 is issued, once per recipient, whichever
// client or path reads it (TS 102 640-2 RetrievalNonRetrievalByRecipient).
// Later calls, and calls for other kinds of messages, do nothing.
func (s *Service) MarkRead(ctx context.Context, p *account.Principal, m *Message) error {
	s.init()
	if m.Kind != KindKEP || m.DeliveryID == 0 {
		return nil
	}
	q := s.DB.Q()
	d, err := GetDelivery(ctx, q, m.DeliveryID)
	if err != nil {
		return err
	}
	if d.State != DeliveredTo {
		return nil // read or deemed read already
	}
	if p != nil && !p.Can(d.AccountID, account.GrantRead) {
		return ErrNoAccess
	}
	msg, err := GetKEPMessage(ctx, q, d.MessageID)
	if err != nil {
		return err
	}
	base, sender, err := s.baseEvidence(ctx, q, msg)
	if err != nil {
		return err
	}
	recip, err := store.GetAccount(ctx, q, d.AccountID)
	if err != nil {
		return err
	}
	e := *base
	e.ID, e.Code, e.EventTime = evidence.NewID(), evidence.Read, s.now()
	e.Recipients = []evidence.Party{recipientParty(d.Recipient, recip)}
	if p != nil && p.Operator != nil {
		// Who opened it for the recipient company (kep-domain.md: "evidence
		// records which operator acted"). kep:Operator stays the sender's.
		e.Properties = append(e.Properties, evidence.Property{Name: "readingOperator", Value: "TCKN:" + p.Operator.TCKN + " " + p.Operator.Name})
	}
	rec := &evidence.Record{Evidence: &e, AccountID: sender.ID, MessageID: msg.ID, Subject: d.Recipient}
	err = s.Issuer.Issue(ctx, []*evidence.Record{rec}, func(ctx context.Context, tx *store.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'read' WHERE id = ? AND state = 'delivered'`, d.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return evidence.ErrAlreadyIssued
		}
		return nil
	})
	if errors.Is(err, evidence.ErrAlreadyIssued) {
		return nil
	}
	return err
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
	n := 0
	for _, d := range ds {
		ok, err := s.deem(ctx, d, now)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

func (s *Service) deem(ctx context.Context, d *Delivery, now time.Time) (bool, error) {
	q := s.DB.Q()
	msg, err := GetKEPMessage(ctx, q, d.MessageID)
	if err != nil {
		return false, err
	}
	base, sender, err := s.baseEvidence(ctx, q, msg)
	if err != nil {
		return false, err
	}
	recip, _ := store.GetAccount(ctx, q, d.AccountID)
	e := *base
	e.ID, e.Code, e.EventTime = evidence.NewID(), evidence.DeemedRead, now
	e.Recipients = []evidence.Party{recipientParty(d.Recipient, recip)}
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
	e.Reasons = []evidence.Reason{reason}
	rec := &evidence.Record{Evidence: &e, AccountID: sender.ID, MessageID: msg.ID, Subject: d.Recipient}
	err = s.Issuer.Issue(ctx, []*evidence.Record{rec}, func(ctx context.Context, tx *store.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'deemed' WHERE id = ? AND state = 'delivered'`, d.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return evidence.ErrAlreadyIssued
		}
		return nil
	})
	if errors.Is(err, evidence.ErrAlreadyIssued) {
		return false, nil
	}
	return err == nil, err
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
		end := min(upTo, pos+1000)
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

// RemoveMessages deletes messages from a folder (IMAP EXPUNGE, the web's
// delete): the owner's right, or an operator's with the delete grant. The
// content leaves the content store once no folder holds it; the evidence
// and its digests remain, so `kep verify --original` still works for
// whoever kept a copy.
func (s *Service) RemoveMessages(ctx context.Context, p *account.Principal, f *Folder, uids []uint32) error {
	s.init()
	if p != nil && !p.Can(f.AccountID, account.GrantDelete) {
		return ErrNoAccess
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
	s.deleteBlobs(unused)
	s.Hub.Notify(f.AccountID, f.ID)
	return nil
}
