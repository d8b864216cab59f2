package notice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// Service queues notices when messages are delivered and sends them.
type Service struct {
	DB    *store.DB
	SMS   Gateway // nil: no SMS notices are queued
	Email *Mailer // nil: no e-mail notices are queued
	// Lead is how long before a deemed-read or e-tebligat deadline the
	// reminder goes, at most halfway between delivery and the deadline
	// (so a 24 h standart period gets its reminder after 12 h). Zero
	// means 24 h; negative turns reminders off.
	Lead     time.Duration
	Location *time.Location // the calendar times are shown in
	Provider string         // the provider's name, signing the texts
	Backoff  queue.Backoff  // zero: queue.DefaultPolicy's
	Lease    time.Duration  // zero: two minutes
	Owner    string         // this node in queue_items.lease_owner; default host/pid
	Now      func() time.Time
	Log      *slog.Logger
	Metrics  *Metrics // nil counts nothing
	// Write runs a write in the evidence log's group commit
	// (tlog.Log.Write), where every frequent small write goes: the
	// claims and the outcomes of each round of sending. Nil: a
	// transaction of its own, which on SQLite takes the write lock from
	// under the log's sequencer and makes the messages waiting in it wait.
	Write func(ctx context.Context, write func(ctx context.Context, tx *store.Tx) error) error
}

func (s *Service) write(ctx context.Context, write func(ctx context.Context, tx *store.Tx) error) error {
	if s.Write != nil {
		return s.Write(ctx, write)
	}
	return s.DB.InTx(ctx, func(tx *store.Tx) error { return write(ctx, tx) })
}

// arrivalLife is how long an arrival notice is retried before it is given
// up: a day-old "new message" is no longer news.
const arrivalLife = 24 * time.Hour

// minReminderGap: no reminder within this time of the arrival notice,
// which names the deadline already.
const minReminderGap = 10 * time.Minute

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Service) lead() time.Duration {
	if s.Lead == 0 {
		return 24 * time.Hour
	}
	return s.Lead
}

// ReminderAt is when the reminder of a message delivered at and deemed read
// at deemed is due: Lead before the deadline, but not before halfway; zero
// when reminders are off or the arrival notice is close enough.
func (s *Service) ReminderAt(at, deemed time.Time) time.Time {
	if s.lead() < 0 {
		return time.Time{}
	}
	due := deemed.Add(-s.lead())
	if half := at.Add(deemed.Sub(at) / 2); due.Before(half) {
		due = half
	}
	if due.Sub(at) < minReminderGap {
		return time.Time{}
	}
	return due
}

func (s *Service) channels(t account.NoticeTarget) []Channel {
	var cs []Channel
	if t.SMS != "" && s.SMS != nil {
		cs = append(cs, SMS)
	}
	if t.Email != "" && s.Email != nil {
		cs = append(cs, Email)
	}
	return cs
}

// Enqueue records the notices of one copy placed in account accountID's
// mailbox, in tx, the transaction that placed it (mailbox.Service's
// Delivered hook): an arrival notice due now and, when due before the
// deadline, a reminder, for each principal and channel chosen. Running it
// twice for a delivery adds nothing.
func (s *Service) Enqueue(ctx context.Context, tx *store.Tx, deliveryID, accountID int64, at, deemed time.Time) error {
	if s.SMS == nil && s.Email == nil {
		return nil
	}
	targets, err := account.NoticeTargets(ctx, tx, accountID)
	if err != nil || len(targets) == 0 {
		return err
	}
	now := s.now()
	remind := s.ReminderAt(at, deemed)
	var rows []pending
	for _, t := range targets {
		for _, ch := range s.channels(t) {
			rows = append(rows, pending{Arrival, ch, t.OperatorID, at, at.Add(arrivalLife)})
			if !remind.IsZero() {
				rows = append(rows, pending{Deadline, ch, t.OperatorID, remind, deemed})
			}
		}
	}
	return s.insert(ctx, tx, deliveryID, accountID, rows, now)
}

// pending is a notice to queue: its kind, channel and principal, when it
// is due and when it is given up.
type pending struct {
	kind        Kind
	ch          Channel
	operatorID  int64
	due, giveUp time.Time
}

// insert queues rows for one delivery: one multi-row statement for the
// notices and one for their queue items (two statements a delivery, not
// two a notice: they run in the log's group commit). A notice queued
// already for the delivery (same kind, channel and principal) is left
// alone, and so is its queue item.
func (s *Service) insert(ctx context.Context, tx *store.Tx, deliveryID, accountID int64, rows []pending, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO notices (kind, channel, delivery_id, account_id, operator_id, due_at, created_at) VALUES `)
	args := make([]any, 0, 7*len(rows))
	for i, r := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?)")
		args = append(args, string(r.kind), string(r.ch), deliveryID, accountID, r.operatorID, store.Millis(r.due), store.Millis(now))
	}
	q.WriteString(` ON CONFLICT (delivery_id, kind, channel, operator_id) DO NOTHING RETURNING id, kind, channel, operator_id`)
	res, err := tx.Query(ctx, q.String(), args...)
	if err != nil {
		return err
	}
	type key struct {
		kind, ch string
		op       int64
	}
	ids := map[key]int64{}
	for res.Next() {
		var id int64
		var k key
		if err := res.Scan(&id, &k.kind, &k.ch, &k.op); err != nil {
			res.Close()
			return err
		}
		ids[k] = id
	}
	res.Close()
	if err := res.Err(); err != nil {
		return err
	}
	q.Reset()
	q.WriteString(`INSERT INTO queue_items (kind, ref, created_at, attempts, next_at, deadline_at, reason) VALUES `)
	args = args[:0]
	for _, r := range rows { // in the order of rows: the same statement text each time
		id, ok := ids[key{string(r.kind), string(r.ch), r.operatorID}]
		if !ok {
			continue // queued already
		}
		if len(args) > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?, ?, ?, 0, ?, ?, '')")
		args = append(args, string(queue.KindNotice), id, store.Millis(now), store.Millis(r.due), store.Millis(r.giveUp))
	}
	if len(args) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, q.String(), args...)
	return err
}

// Run sends due notices every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.RunDue(ctx, 64); err != nil && ctx.Err() == nil {
			s.log().Error("notice: sending", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type item struct {
	id       int64
	ref      int64
	attempts int
	giveUp   time.Time
}

// RunDue sends up to limit due notices and returns how many it sent. The
// outcomes of the round (sent, dropped, given up, or a retry's time) are
// recorded together at its end, in one write.
func (s *Service) RunDue(ctx context.Context, limit int) (int, error) {
	items, err := s.claim(ctx, limit)
	if err != nil || len(items) == 0 {
		return 0, err
	}
	sent := 0
	var errs []error
	var outcomes []outcome
	for _, it := range items {
		ok, o, err := s.work(ctx, it)
		if ok {
			sent++
		}
		if o != nil {
			outcomes = append(outcomes, *o)
		}
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	if len(outcomes) > 0 {
		// After ctx ended too: what was sent is recorded, or it would be
		// sent again once the lease runs out.
		if err := s.finish(context.WithoutCancel(ctx), outcomes); err != nil {
			errs = append(errs, err)
		}
	}
	return sent, errors.Join(errs...)
}

// claim leases due notice items to this node (as the queue claims
// messages: on PostgreSQL, FOR UPDATE SKIP LOCKED lets nodes claim side by
// side).
func (s *Service) claim(ctx context.Context, limit int) ([]item, error) {
	owner := s.Owner
	if owner == "" {
		h, _ := os.Hostname()
		owner = fmt.Sprintf("%s/%d", h, os.Getpid())
	}
	lease := s.Lease
	if lease == 0 {
		lease = 2 * time.Minute
	}
	lock := ""
	if s.DB.Dialect == store.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	now := s.now()
	// Most rounds find nothing due: a read says so without the write lock.
	var due int
	err := s.DB.Q().QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM queue_items WHERE next_at <= ? AND kind = '`+string(queue.KindNotice)+`' LIMIT 1) d`,
		store.Millis(now)).Scan(&due)
	if err != nil || due == 0 {
		return nil, err
	}
	var out []item
	err = s.write(ctx, func(ctx context.Context, tx *store.Tx) error {
		out = out[:0] // the write may run again
		rows, err := tx.Query(ctx, `UPDATE queue_items SET lease_owner = ?, next_at = ?
		WHERE id IN (SELECT id FROM queue_items WHERE next_at <= ? AND kind = '`+string(queue.KindNotice)+`' ORDER BY next_at, id LIMIT ?`+lock+`)
		RETURNING id, ref, attempts, deadline_at`,
			owner, store.Millis(now.Add(lease)), store.Millis(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var it item
			var dl int64
			if err := rows.Scan(&it.id, &it.ref, &it.attempts, &dl); err != nil {
				return err
			}
			it.giveUp = store.FromMillis(dl)
			out = append(out, it)
		}
		return rows.Err()
	})
	return out, err
}

// queued is a notice row with what its text needs.
type queued struct {
	kind       Kind
	channel    Channel
	accountID  int64
	operatorID int64
	state      string // the delivery's read state
	n          Notice
}

func (s *Service) load(ctx context.Context, id int64) (*queued, error) {
	q := &queued{}
	var kind, ch string
	var at, deemed int64
	err := s.DB.Q().QueryRow(ctx, `SELECT n.kind, n.channel, n.account_id, n.operator_id, d.state, COALESCE(d.delivered_at, 0), COALESCE(d.deemed_at, 0),
		a.address, m.from_addr, m.sender_name, m.ileti_tip
		FROM notices n JOIN deliveries d ON d.id = n.delivery_id JOIN messages m ON m.id = d.message_id JOIN accounts a ON a.id = n.account_id
		WHERE n.id = ?`, id).Scan(&kind, &ch, &q.accountID, &q.operatorID, &q.state, &at, &deemed,
		&q.n.Account, &q.n.Sender, &q.n.SenderName, &q.n.IletiTip)
	if err != nil {
		return nil, store.MapErr(err)
	}
	q.kind, q.channel = Kind(kind), Channel(ch)
	q.n.Kind, q.n.At, q.n.DeemedAt, q.n.Provider = q.kind, store.FromMillis(at), store.FromMillis(deemed), s.Provider
	return q, nil
}

// outcome is what became of a claimed notice, recorded at the end of its
// round (finish): sent, dropped or failed, which ends its queue item; or,
// with no outcome, a retry at next.
type outcome struct {
	it              item
	outcome, reason string
	next            time.Time
}

// done records a notice's outcome, which ends its queue item.
func done(it item, o, reason string) *outcome { return &outcome{it: it, outcome: o, reason: reason} }

// work sends one claimed notice, or drops it when it became moot, or
// schedules its retry; it reports whether it was sent, and the outcome to
// record (nil when nothing can be said yet, after an error reading it).
func (s *Service) work(ctx context.Context, it item) (bool, *outcome, error) {
	q, err := s.load(ctx, it.ref)
	if errors.Is(err, store.ErrNotFound) {
		return false, done(it, "dropped", "the notice is gone"), nil
	}
	if err != nil {
		return false, nil, err
	}
	if q.kind == Deadline && q.state != "delivered" {
		s.Metrics.inc(q.channel, "dropped")
		// Opened (60) or deemed read (61) already: nothing to remind of.
		return false, done(it, "dropped", "the message was read before the reminder"), nil
	}
	// The destination as chosen now: a preference removed, a grant
	// revoked or an operator removed since the notice was queued stops it.
	targets, err := account.NoticeTargets(ctx, s.DB.Q(), q.accountID)
	if err != nil {
		return false, nil, err
	}
	var to string
	for _, t := range targets {
		if t.OperatorID == q.operatorID {
			to = map[Channel]string{SMS: t.SMS, Email: t.Email}[q.channel]
		}
	}
	if to == "" {
		s.log().Info("notice: dropped: the channel was turned off or its grant revoked", "notice", it.ref, "channel", q.channel, "kind", q.kind)
		s.Metrics.inc(q.channel, "dropped")
		return false, done(it, "dropped", "the channel was turned off, or the operator lost its grant or role"), nil
	}
	masked := account.MaskEmail(to)
	switch q.channel {
	case SMS:
		masked = account.MaskPhone(to)
		if s.SMS == nil {
			err = errors.New("no SMS gateway is configured (notices.sms_file or notices.sms_url)")
		} else {
			err = s.SMS.SendSMS(ctx, to, q.n.SMSText(s.Location))
		}
	case Email:
		if s.Email == nil {
			err = errors.New("no e-mail relay is configured (notices.email_relay)")
		} else {
			subject, text := q.n.MailText(s.Location)
			err = s.Email.Send(ctx, to, subject, text)
		}
	default:
		err = fmt.Errorf("unknown channel %q", q.channel)
	}
	if err == nil {
		s.Metrics.inc(q.channel, "sent")
		s.log().Info("notice: sent", "notice", it.ref, "channel", q.channel, "kind", q.kind, "to", masked)
		return true, done(it, "sent", ""), nil
	}
	// An error may quote the destination (a relay's "550 <x@y>: no such
	// user"): logs and rows get it masked.
	reason := strings.ReplaceAll(err.Error(), to, masked)
	if len(reason) > 300 {
		reason = reason[:300]
	}
	now := s.now()
	if !now.Before(it.giveUp) {
		s.Metrics.inc(q.channel, "failed")
		s.log().Error("notice: given up", "notice", it.ref, "channel", q.channel, "kind", q.kind, "to", masked, "attempts", it.attempts+1, "err", reason)
		return false, done(it, "failed", reason), nil
	}
	bo := s.Backoff
	if bo.First == 0 {
		bo = queue.DefaultPolicy().Backoff
	}
	next := now.Add(bo.Delay(it.attempts + 1))
	if next.After(it.giveUp) {
		next = it.giveUp
	}
	s.Metrics.inc(q.channel, "retry")
	s.log().Warn("notice: sending failed, will retry", "notice", it.ref, "channel", q.channel, "kind", q.kind, "to", masked, "attempts", it.attempts+1, "next", next, "err", reason)
	return false, &outcome{it: it, reason: reason, next: next}, nil
}

// finish records a round's outcomes in one write: a notice's outcome and
// the end of its queue item together, or a retry's time on the item.
func (s *Service) finish(ctx context.Context, done []outcome) error {
	at := store.Millis(s.now())
	return s.write(ctx, func(ctx context.Context, tx *store.Tx) error {
		for _, o := range done {
			if o.outcome == "" {
				if _, err := tx.Exec(ctx, `UPDATE queue_items SET attempts = attempts + 1, next_at = ?, lease_owner = NULL, reason = ? WHERE id = ?`,
					store.Millis(o.next), o.reason, o.it.id); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE notices SET outcome = ?, done_at = ?, reason = ? WHERE id = ?`, o.outcome, at, o.reason, o.it.ref); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM queue_items WHERE id = ?`, o.it.id); err != nil {
				return err
			}
		}
		return nil
	})
}
