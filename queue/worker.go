package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/kephs/kep/store"
)

// Queue runs the transports over the pending work of one node.
type Queue struct {
	DB     *store.DB
	Router Router
	Policy Policy
	// Owner names this node in leases; nodes sharing a database need
	// distinct names. Default: host/pid.
	Owner string
	// Commit runs write in a transaction; the node passes the evidence
	// log's group commit so that frequent writes share commits. Nil: a
	// transaction of its own.
	Commit      func(ctx context.Context, write func(ctx context.Context, tx *store.Tx) error) error
	Now         func() time.Time
	Log         *slog.Logger
	Concurrency int // jobs in transport at once; 128 when zero

	initOnce sync.Once
	mu       sync.Mutex
	pending  []*Job
	busy     map[int64]bool // messages held in memory (pending or running)
	running  int
	wake     chan struct{}
	done     chan struct{}
}

func (q *Queue) init() {
	q.initOnce.Do(func() {
		q.busy = map[int64]bool{}
		q.wake = make(chan struct{}, 1)
		q.done = make(chan struct{}, 1)
		if q.Log == nil {
			q.Log = slog.Default()
		}
		if q.Concurrency <= 0 {
			q.Concurrency = 128
		}
		if q.Policy.Lease <= 0 {
			q.Policy = DefaultPolicy()
		}
		if q.Owner == "" {
			h, _ := os.Hostname()
			q.Owner = fmt.Sprintf("%s/%d", h, os.Getpid())
		}
	})
}

func (q *Queue) now() time.Time {
	if q.Now != nil {
		return q.Now().UTC()
	}
	return time.Now().UTC()
}

func (q *Queue) commit(ctx context.Context, write func(ctx context.Context, tx *store.Tx) error) error {
	if q.Commit != nil {
		return q.Commit(ctx, write)
	}
	return q.DB.InTx(ctx, func(tx *store.Tx) error { return write(ctx, tx) })
}

// Horizon is the deliveries.next_at of a recipient accepted at t: until
// then the accepting node holds it in memory; after it, a recipient still
// pending with no item is swept into one.
func (q *Queue) Horizon(t time.Time) time.Time {
	q.init()
	return t.Add(q.Policy.Lease)
}

// Handoff gives the queue a message just accepted (its deliveries rows
// committed, pending, with next_at at Horizon): it is delivered from
// memory, without reading anything back.
func (q *Queue) Handoff(j *Job) {
	q.init()
	q.mu.Lock()
	if !q.busy[j.MessageID] {
		q.busy[j.MessageID] = true
		q.pending = append(q.pending, j)
	}
	q.mu.Unlock()
	q.signal(q.wake)
}

func (q *Queue) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run works until ctx ends: jobs handed off are started at once, up to
// Concurrency at a time (their evidence shares log commits); every
// interval, orphaned recipients are swept into items and due items are
// claimed.
func (q *Queue) Run(ctx context.Context, interval time.Duration) {
	q.init()
	if err := q.Recover(ctx); err != nil && ctx.Err() == nil {
		q.Log.Error("queue: recover", "err", err)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	poll := true
	for {
		q.start(ctx, &wg)
		if poll {
			poll = false
			if _, err := q.poll(ctx); err != nil && ctx.Err() == nil {
				q.Log.Error("queue: poll", "err", err)
			}
			q.start(ctx, &wg)
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-q.done:
		case <-t.C:
			poll = true
		}
	}
}

// start starts pending jobs while there is room.
func (q *Queue) start(ctx context.Context, wg *sync.WaitGroup) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.pending) > 0 && q.running < q.Concurrency {
		j := q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
		q.running++
		wg.Add(1)
		go func() {
			defer wg.Done()
			again := q.run(ctx, j)
			q.mu.Lock()
			q.running--
			if again {
				q.pending = append(q.pending, j)
			} else {
				delete(q.busy, j.MessageID)
			}
			q.mu.Unlock()
			q.signal(q.done)
		}()
	}
}

// RunDue does, synchronously, what Run does over time: it delivers the jobs
// handed off, sweeps and claims up to limit due items and delivers them.
// It returns how many jobs it ran (tests and tools call it).
func (q *Queue) RunDue(ctx context.Context, limit int) (int, error) {
	q.init()
	var wg sync.WaitGroup
	n := 0
	drain := func() {
		for {
			q.mu.Lock()
			k := len(q.pending)
			q.mu.Unlock()
			if k == 0 {
				return
			}
			n += k
			q.start(ctx, &wg)
			wg.Wait()
		}
	}
	drain()
	_, err := q.poll(ctx, limit)
	drain()
	return n, err
}

// run delivers one job through the transports of its recipients; it
// reports true when the job should run again at once.
func (q *Queue) run(ctx context.Context, j *Job) (again bool) {
	type group struct {
		t  Transport
		rs []Recipient
	}
	var groups []*group
	for _, r := range j.Recipients {
		t := q.Router.Route(r.Address)
		var g *group
		for _, x := range groups {
			if x.t.Name() == t.Name() {
				g = x
			}
		}
		if g == nil {
			g = &group{t: t}
			groups = append(groups, g)
		}
		g.rs = append(g.rs, r)
	}
	var failed error
	var late []*group
	for _, g := range groups {
		err := g.t.Deliver(ctx, j, g.rs)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return false // the lease or the horizon brings it back
		}
		if errors.Is(err, ErrRetryNow) && j.tries < 3 {
			j.tries++
			again = true
			continue
		}
		failed = fmt.Errorf("%s: %w", g.t.Name(), err)
		late = append(late, g)
	}
	if again && failed == nil {
		return true
	}
	if failed == nil {
		return false
	}
	q.Log.Warn("queue: delivery failed; will retry", "message", j.MessageID, "err", failed)
	var warn func(ctx context.Context, tx *store.Tx) error
	if j.Warn {
		warn = func(ctx context.Context, tx *store.Tx) error {
			for _, g := range late {
				if w, ok := g.t.(Warner); ok {
					if err := w.Warn(ctx, tx, j, g.rs); err != nil {
						return err
					}
				}
			}
			return nil
		}
	}
	if err := q.reschedule(ctx, j, failed, warn); err != nil && ctx.Err() == nil {
		q.Log.Error("queue: reschedule", "message", j.MessageID, "err", err)
	}
	return false
}

// maxMillis is the latest time an item can be scheduled for.
const maxMillis = math.MaxInt64 / 2

// reschedule records a failed attempt: the item (made now if the job had
// none) falls due after the back-off, or at its warning or deadline if
// those come first; the pending recipients' next_at moves past the
// deadline, so that only the item schedules them.
func (q *Queue) reschedule(ctx context.Context, j *Job, cause error, warn func(ctx context.Context, tx *store.Tx) error) error {
	now := q.now()
	reason := cause.Error()
	if len(reason) > 300 {
		reason = reason[:300]
	}
	attempts := 1
	warnAt, deadline := j.AcceptedAt, j.AcceptedAt
	if j.Item != nil {
		attempts = j.Item.Attempts + 1
		warnAt, deadline = j.Item.WarnAt, j.Item.DeadlineAt
	} else {
		dl := q.Policy.DeadlineFor(j.IletiTip)
		deadline = j.AcceptedAt.Add(dl.Fail)
		warnAt = time.Time{}
		if dl.Warn > 0 {
			warnAt = j.AcceptedAt.Add(dl.Warn)
		}
	}
	if j.Warn {
		warnAt = time.Time{} // given now, with this transaction
	}
	next := now.Add(q.Policy.Backoff.Delay(attempts))
	if !warnAt.IsZero() && warnAt.Before(next) {
		next = warnAt
	}
	if deadline.Before(next) {
		next = deadline
	}
	if !next.After(now) {
		// Past the deadline and the transport still failed: the back-off
		// spaces the attempts to settle for good.
		next = now.Add(q.Policy.Backoff.Delay(attempts))
	}
	return q.commit(ctx, func(ctx context.Context, tx *store.Tx) error {
		if warn != nil {
			if err := warn(ctx, tx); err != nil {
				return err
			}
		}
		if j.Item != nil {
			if _, err := tx.Exec(ctx, `UPDATE queue_items SET attempts = attempts + 1, next_at = ?, warn_at = ?, lease_owner = NULL, reason = ? WHERE id = ?`,
				store.Millis(next), nullMillis(warnAt), reason, j.Item.ID); err != nil {
				return err
			}
		} else {
			if _, err := tx.Exec(ctx, `INSERT INTO queue_items (kind, ref, created_at, attempts, next_at, warn_at, deadline_at, reason) VALUES (?, ?, ?, 1, ?, ?, ?, ?)
				ON CONFLICT (kind, ref) DO UPDATE SET attempts = queue_items.attempts + 1, next_at = excluded.next_at, lease_owner = NULL, reason = excluded.reason`,
				string(KindMessage), j.MessageID, store.Millis(j.AcceptedAt), store.Millis(next), nullMillis(warnAt), store.Millis(deadline), reason); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE deliveries SET attempts = attempts + 1, reason = ?, next_at = ? WHERE message_id = ? AND `+PendingOnly,
			reason, store.Millis(deadline.Add(q.Policy.Lease)), j.MessageID)
		return err
	})
}

func nullMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return store.Millis(t)
}

// Recover makes work that a dead process held due again. On SQLite one
// process owns the database, so at start nothing is held by anyone:
// every lease ends and every pending recipient is swept at once. On
// PostgreSQL other nodes may be working: only this node's leases end,
// and the others' lapse on their own.
func (q *Queue) Recover(ctx context.Context) error {
	q.init()
	now := q.now()
	if q.DB.Dialect == store.SQLite {
		if _, err := q.DB.Q().Exec(ctx, `UPDATE queue_items SET next_at = ?, lease_owner = NULL WHERE lease_owner IS NOT NULL`, store.Millis(now)); err != nil {
			return err
		}
		_, err := q.sweep(ctx, time.UnixMilli(maxMillis), 1000000)
		return err
	}
	_, err := q.DB.Q().Exec(ctx, `UPDATE queue_items SET next_at = ?, lease_owner = NULL WHERE lease_owner = ?`, store.Millis(now), q.Owner)
	return err
}

// poll sweeps orphaned recipients into items and claims due items, as many
// as there is room for (or limit, when given), and queues their jobs.
func (q *Queue) poll(ctx context.Context, limit ...int) (int, error) {
	now := q.now()
	if _, err := q.sweep(ctx, now, 1000); err != nil {
		return 0, err
	}
	// No more than can start now: a claim held in a queue here would only
	// run out its lease.
	q.mu.Lock()
	room := q.Concurrency - q.running - len(q.pending)
	q.mu.Unlock()
	if len(limit) > 0 {
		room = limit[0]
	}
	if room <= 0 {
		return 0, nil
	}
	jobs, err := q.claim(ctx, now, room)
	q.mu.Lock()
	for _, j := range jobs {
		if !q.busy[j.MessageID] {
			q.busy[j.MessageID] = true
			q.pending = append(q.pending, j)
		}
	}
	q.mu.Unlock()
	return len(jobs), err
}

// sweep makes an item for each message whose pending recipients passed
// their horizon with no item: the node that accepted it died, or the
// item went missing. It skips the messages this node holds in memory.
func (q *Queue) sweep(ctx context.Context, before time.Time, limit int) (int, error) {
	// In the order of the partial index deliveries_pending, whose
	// condition the query repeats literally, so that a sweep reads only
	// the rows past their horizon, never the whole table.
	rows, err := q.DB.Q().Query(ctx, `SELECT d.message_id, m.submitted_at, m.ileti_tip FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE d.transport_state = '`+string(Pending)+`' AND d.next_at <= ? ORDER BY d.next_at, d.id LIMIT ?`, store.Millis(before), limit)
	if err != nil {
		return 0, err
	}
	type orphan struct {
		id  int64
		at  time.Time
		tip string
	}
	var found []orphan
	seen := map[int64]bool{}
	for rows.Next() {
		var o orphan
		var at int64
		if err := rows.Scan(&o.id, &at, &o.tip); err != nil {
			rows.Close()
			return 0, err
		}
		if !seen[o.id] {
			seen[o.id] = true
			o.at = store.FromMillis(at)
			found = append(found, o)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(found) == 0 {
		return 0, err
	}
	q.mu.Lock()
	keep := found[:0]
	for _, o := range found {
		if !q.busy[o.id] {
			keep = append(keep, o)
		}
	}
	q.mu.Unlock()
	if len(keep) == 0 {
		return 0, nil
	}
	now := q.now()
	err = q.commit(ctx, func(ctx context.Context, tx *store.Tx) error {
		for _, o := range keep {
			dl := q.Policy.DeadlineFor(o.tip)
			var warnAt time.Time
			if dl.Warn > 0 {
				warnAt = o.at.Add(dl.Warn)
			}
			deadline := o.at.Add(dl.Fail)
			if _, err := tx.Exec(ctx, `INSERT INTO queue_items (kind, ref, created_at, attempts, next_at, warn_at, deadline_at, reason) VALUES (?, ?, ?, 0, ?, ?, ?, '')
				ON CONFLICT (kind, ref) DO NOTHING`,
				string(KindMessage), o.id, store.Millis(o.at), store.Millis(now), nullMillis(warnAt), store.Millis(deadline)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE deliveries SET next_at = ? WHERE message_id = ? AND `+PendingOnly,
				store.Millis(deadline.Add(q.Policy.Lease)), o.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	q.Log.Info("queue: swept recipients left pending into items", "messages", len(keep))
	return len(keep), nil
}

// claim leases up to limit due message items to this node and loads their
// pending recipients. A claimed item's next_at is the end of its lease:
// should this node die, the item falls due again. On PostgreSQL, FOR
// UPDATE SKIP LOCKED lets nodes claim side by side, each skipping the rows
// another is claiming.
func (q *Queue) claim(ctx context.Context, now time.Time, limit int) ([]*Job, error) {
	lock := ""
	if q.DB.Dialect == store.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	rows, err := q.DB.Q().Query(ctx, `UPDATE queue_items SET lease_owner = ?, next_at = ?
		WHERE id IN (SELECT id FROM queue_items WHERE next_at <= ? AND kind = '`+string(KindMessage)+`' ORDER BY next_at, id LIMIT ?`+lock+`)
		RETURNING id, kind, ref, created_at, attempts, COALESCE(warn_at, 0), deadline_at, reason`,
		q.Owner, store.Millis(now.Add(q.Policy.Lease)), store.Millis(now), limit)
	if err != nil {
		return nil, err
	}
	var items []*Item
	for rows.Next() {
		var it Item
		var kind string
		var created, warn, deadline int64
		if err := rows.Scan(&it.ID, &kind, &it.Ref, &created, &it.Attempts, &warn, &deadline, &it.Reason); err != nil {
			rows.Close()
			return nil, err
		}
		it.Kind, it.CreatedAt, it.DeadlineAt = Kind(kind), store.FromMillis(created), store.FromMillis(deadline)
		if warn != 0 {
			it.WarnAt = store.FromMillis(warn)
		}
		items = append(items, &it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var jobs []*Job
	for _, it := range items {
		j := &Job{Item: it, MessageID: it.Ref, AcceptedAt: it.CreatedAt,
			Warn: !it.WarnAt.IsZero() && !it.WarnAt.After(now), Expired: !it.DeadlineAt.After(now)}
		rs, err := q.pendingRecipients(ctx, it.Ref)
		if err != nil {
			return jobs, err
		}
		if len(rs) == 0 { // settled by a job that had no item
			if err := Done(ctx, q.DB.Q(), j); err != nil {
				return jobs, err
			}
			continue
		}
		j.Recipients = rs
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func (q *Queue) pendingRecipients(ctx context.Context, messageID int64) ([]Recipient, error) {
	rows, err := q.DB.Q().Query(ctx, `SELECT id, recipient FROM deliveries WHERE message_id = ? AND `+PendingOnly+` ORDER BY id`, messageID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Recipient
	for rows.Next() {
		var r Recipient
		if err := rows.Scan(&r.DeliveryID, &r.Address); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
