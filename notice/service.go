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

// RunDue sends up to limit due notices and returns how many it sent.
func (s *Service) RunDue(ctx context.Context, limit int) (int, error) {
	items, err := s.claim(ctx, limit)
	if err != nil {
		return 0, err
	}
	sent := 0
	var errs []error
	for _, it := range items {
		ok, err := s.work(ctx, it)
		if ok {
			sent++
		}
		if err != nil {
			if ctx.Err() != nil {
				return sent, err
			}
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
	rows, err := s.DB.Q().Query(ctx, `UPDATE queue_items SET lease_owner = ?, next_at = ?
		WHERE id IN (SELECT id FROM queue_items WHERE next_at <= ? AND kind = '`+string(queue.KindNotice)+`' ORDER BY next_at, id LIMIT ?`+lock+`)
		RETURNING id, ref, attempts, deadline_at`,
		owner, store.Millis(now.Add(lease)), store.Millis(now), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []item
	for rows.Next() {
		var it item
		var dl int64
		if err := rows.Scan(&it.id, &it.ref, &it.attempts, &dl); err != nil {
			return nil, err
		}
		it.giveUp = store.FromMillis(dl)
		out = append(out, it)
	}
	return out, rows.Err()
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

// work sends one claimed notice, or drops it when it became moot, or
// schedules its retry; it reports whether it was sent.
func (s *Service) work(ctx context.Context, it item) (bool, error) {
	q, err := s.load(ctx, it.ref)
	if errors.Is(err, store.ErrNotFound) {
		return false, s.finish(ctx, it, "dropped", "the notice is gone")
	}
	if err != nil {
		return false, err
	}
	if q.kind == Deadline && q.state != "delivered" {
		s.Metrics.inc(q.channel, "dropped")
		// Opened (60) or deemed read (61) already: nothing to remind of.
		return false, s.finish(ctx, it, "dropped", "the message was read before the reminder")
	}
	// The destination as chosen now: a preference removed, a grant
	// revoked or an operator removed since the notice was queued stops it.
	targets, err := account.NoticeTargets(ctx, s.DB.Q(), q.accountID)
	if err != nil {
		return false, err
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
		return false, s.finish(ctx, it, "dropped", "the channel was turned off, or the operator lost its grant or role")
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
		return true, s.finish(ctx, it, "sent", "")
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
		return false, s.finish(ctx, it, "failed", reason)
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
	_, err = s.DB.Q().Exec(ctx, `UPDATE queue_items SET attempts = attempts + 1, next_at = ?, lease_owner = NULL, reason = ? WHERE id = ?`,
		store.Millis(next), reason, it.id)
	return false, err
}

// finish records a notice's outcome and ends its queue item, together.
func (s *Service) finish(ctx context.Context, it item, outcome, reason string) error {
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE notices SET outcome = ?, done_at = ?, reason = ? WHERE id = ?`, outcome, store.Millis(s.now()), reason, it.ref); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM queue_items WHERE id = ?`, it.id)
		return err
	})
}
