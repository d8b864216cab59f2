package queue_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

func TestBackoff(t *testing.T) {
	b := queue.Backoff{First: 30 * time.Second, Ceiling: time.Hour}
	for _, c := range []struct {
		attempts int
		want     time.Duration
	}{
		{0, 30 * time.Second},
		{1, 30 * time.Second},
		{2, time.Minute},
		{3, 2 * time.Minute},
		{7, 32 * time.Minute},
		{8, time.Hour}, // 64 min, over the ceiling
		{9, time.Hour},
		{1000, time.Hour}, // no overflow
	} {
		if got := b.Delay(c.attempts); got != c.want {
			t.Errorf("Delay(%d) = %s, want %s", c.attempts, got, c.want)
		}
	}
}

func TestDomainRouter(t *testing.T) {
	local, other := fakeTransport("local"), fakeTransport("other")
	r := queue.DomainRouter{Domain: "hs01.kep.tr", Local: local, Other: other}
	for _, c := range []struct {
		addr string
		want queue.Transport
	}{
		{"ayse.yilmaz@hs01.kep.tr", local},
		{"Ayse.Yilmaz@HS01.KEP.TR", local},
		{"ali@acme.hs01.kep.tr", local}, // institutional subdomain
		{"ali@hs02.kep.tr", other},
		{"ali@evilhs01.kep.tr", other},
		{"ali@hs01.kep.tr.example.com", other},
		{"no-at-sign", other},
	} {
		if got := r.Route(c.addr); got != c.want {
			t.Errorf("Route(%q) = %s, want %s", c.addr, got.Name(), c.want.Name())
		}
	}
}

type fakeTransport string

func (f fakeTransport) Name() string { return string(f) }
func (f fakeTransport) Deliver(context.Context, *queue.Job, []queue.Recipient) error {
	return nil
}

// accept records a message from a new sender to n new recipients, as the
// access point does, and returns its id. The node's own queue gets the
// hand-off; the tests' queues stand for other nodes or a restarted one.
func accept(t *testing.T, w *providertest.World, n int) (int64, []*providertest.Person) {
	t.Helper()
	return acceptTo(t, w, make([]string, n)...)
}

// acceptTo is accept with the given addresses; an empty one is a new local
// account.
func acceptTo(t *testing.T, w *providertest.World, addrs ...string) (int64, []*providertest.Person) {
	t.Helper()
	sender := w.Person("Ayşe", "Kuyruk")
	var to []*providertest.Person
	addrs = append([]string{}, addrs...)
	for i := range addrs {
		if addrs[i] == "" {
			p := w.Person("Mehmet", "Alıcı")
			to, addrs[i] = append(to, p), p.Account.Address
		}
	}
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: kuyruk\r\nMessage-ID: <%d@client>\r\nX-TR-REM-iletiTip: standart\r\nMIME-Version: 1.0\r\n",
		sender.Account.Address, strings.Join(addrs, ", "), time.Now().UnixNano())
	raw, err := cms.BuildSigned([]byte(hdr), []byte("Content-Type: text/plain\r\n\r\nkuyruk\r\n"), sender.Signer.Key, sender.Signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	bw, err := w.Node.Blobs.Create()
	if err != nil {
		t.Fatal(err)
	}
	bw.Write(raw)
	d, gen, err := bw.CommitDeferred()
	if err != nil {
		t.Fatal(err)
	}
	msg, _, err := w.Node.Mailbox.Accept(context.Background(), &mailbox.Submission{Sender: sender.Account, Original: d, Size: int64(len(raw)), BlobGen: gen,
		From: sender.Account.Address, Recipients: addrs, IletiTip: "standart", AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return msg.ID, to
}

// node returns a queue over w's database, as another node or the same
// node after a restart would run it, with the given local transport.
func node(w *providertest.World, owner string, local queue.Transport) *queue.Queue {
	return &queue.Queue{DB: w.Node.DB, Owner: owner, Now: w.Clock.Now, Policy: queue.DefaultPolicy(),
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Router: queue.DomainRouter{Domain: "hs01.kep.tr", Local: local, Other: w.Node.Mailbox.NoRoute()}}
}

// states returns the transport state of each recipient of a message and
// the evidence codes issued for it, e.g. "delivered delivered" and "10 40 40".
func states(t *testing.T, w *providertest.World, msgID int64) (string, string) {
	t.Helper()
	ds, err := mailbox.Deliveries(context.Background(), w.Q(), msgID)
	if err != nil {
		t.Fatal(err)
	}
	var ss []string
	for _, d := range ds {
		ss = append(ss, string(d.Transport))
	}
	sts, err := evidence.ByMessage(context.Background(), w.Q(), msgID)
	if err != nil {
		t.Fatal(err)
	}
	var cs []string
	for _, st := range sts {
		cs = append(cs, fmt.Sprint(int(st.Code)))
	}
	return strings.Join(ss, " "), strings.Join(cs, " ")
}

func items(t *testing.T, w *providertest.World) int {
	t.Helper()
	var n int
	if err := w.Q().QueryRow(context.Background(), `SELECT COUNT(*) FROM queue_items`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The database refuses transport states and item kinds that the Go
// constants do not name.
func TestStatesCheckedByDatabase(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		msgID, _ := accept(t, w, 1)
		ds, _ := mailbox.Deliveries(ctx, w.Q(), msgID)
		for _, s := range queue.States {
			if _, err := w.Q().Exec(ctx, `UPDATE deliveries SET transport_state = ? WHERE id = ?`, string(s), ds[0].ID); err != nil {
				t.Errorf("state %s refused: %v", s, err)
			}
		}
		if _, err := w.Q().Exec(ctx, `UPDATE deliveries SET transport_state = 'lost' WHERE id = ?`, ds[0].ID); err == nil {
			t.Error("the database accepted transport state 'lost'")
		}
		for i, k := range queue.Kinds {
			if _, err := w.Q().Exec(ctx, `INSERT INTO queue_items (kind, ref, created_at, next_at, deadline_at) VALUES (?, ?, 0, 0, 0)`, string(k), i); err != nil {
				t.Errorf("kind %s refused: %v", k, err)
			}
		}
		if _, err := w.Q().Exec(ctx, `INSERT INTO queue_items (kind, ref, created_at, next_at, deadline_at) VALUES ('fax', 1, 0, 0, 0)`); err == nil {
			t.Error("the database accepted item kind 'fax'")
		}
	})
}

// A node dies after accepting a message and before delivering it: the
// recipients wait, pending, until the horizon; then another node (or the
// same one restarted) sweeps them into an item and delivers each exactly
// once, even when the dead node's work surfaces afterwards.
func TestRestartAfterCrash(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		msgID, _ := accept(t, w, 2)
		// The node "crashed": its hand-off is lost with its memory.
		q2 := node(w, "node-2", w.Node.Mailbox.Local())
		if n, err := q2.RunDue(ctx, 10); err != nil || n != 0 {
			t.Fatalf("before the horizon another node took %d jobs (%v)", n, err)
		}
		if ts, _ := states(t, w, msgID); ts != "pending pending" {
			t.Fatalf("states %q", ts)
		}
		w.Clock.Advance(queue.DefaultPolicy().Lease + time.Second)
		if n, err := q2.RunDue(ctx, 10); err != nil || n != 1 {
			t.Fatalf("after the horizon: %d jobs (%v)", n, err)
		}
		ts, codes := states(t, w, msgID)
		if ts != "delivered delivered" || codes != "10 40 40" {
			t.Fatalf("after recovery: %q, evidence %q", ts, codes)
		}
		if items(t, w) != 0 {
			t.Fatal("the item outlived its work")
		}
		// The first node was not dead after all: its delivery finds the
		// work done and issues nothing.
		if _, err := w.Node.Mailbox.DeliverQueued(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if ts, codes := states(t, w, msgID); ts != "delivered delivered" || codes != "10 40 40" {
			t.Fatalf("after the late delivery: %q, evidence %q", ts, codes)
		}
	})
}

// On SQLite one process owns the database: at start it sweeps every
// pending recipient at once, without waiting for the horizon.
func TestRecoverAtStartSQLite(t *testing.T) {
	w := providertest.New(t, store.SQLite)
	ctx := context.Background()
	msgID, _ := accept(t, w, 1)
	q := node(w, "restarted", w.Node.Mailbox.Local())
	if err := q.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.RunDue(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if ts, codes := states(t, w, msgID); ts != "delivered" || codes != "10 40" {
		t.Fatalf("%q, evidence %q", ts, codes)
	}
}

// crashing cancels its context mid-delivery, as a process dies holding a
// claimed item.
type crashing struct{ cancel context.CancelFunc }

func (crashing) Name() string { return "crashing" }
func (c crashing) Deliver(ctx context.Context, _ *queue.Job, _ []queue.Recipient) error {
	c.cancel()
	return ctx.Err()
}

// flaky fails while fail is set, except after the deadline, and records
// every job and warning.
type flaky struct {
	mu    sync.Mutex
	fail  bool
	jobs  []queue.Job
	inner queue.Transport
}

func (*flaky) Name() string { return "flaky" }
func (f *flaky) Deliver(ctx context.Context, j *queue.Job, rs []queue.Recipient) error {
	f.mu.Lock()
	f.jobs = append(f.jobs, *j)
	fail := f.fail
	f.mu.Unlock()
	if fail && !j.Expired {
		return fmt.Errorf("the disk is on fire")
	}
	return f.inner.Deliver(ctx, j, rs)
}

func (f *flaky) Warn(ctx context.Context, tx *store.Tx, j *queue.Job, _ []queue.Recipient) error {
	f.mu.Lock()
	f.jobs = append(f.jobs, queue.Job{MessageID: -1}) // marks a warning
	f.mu.Unlock()
	return nil
}

// A node dies holding a claimed item: no one takes it before the lease
// ends; then another node delivers it.
func TestLeaseOutlivesItsHolder(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		msgID, _ := accept(t, w, 1)
		f := &flaky{fail: true, inner: w.Node.Mailbox.Local()}
		q1 := node(w, "node-1", f)
		w.Clock.Advance(queue.DefaultPolicy().Lease + time.Second)
		if _, err := q1.RunDue(ctx, 10); err != nil { // swept, claimed, failed: an item with a back-off
			t.Fatal(err)
		}
		if items(t, w) != 1 {
			t.Fatal("a failed attempt left no item")
		}
		w.Clock.Advance(time.Minute)
		cctx, cancel := context.WithCancel(ctx)
		q1c := node(w, "node-1", crashing{cancel})
		if _, err := q1c.RunDue(cctx, 10); err != nil && cctx.Err() == nil {
			t.Fatal(err)
		}
		q2 := node(w, "node-2", w.Node.Mailbox.Local())
		if n, _ := q2.RunDue(ctx, 10); n != 0 {
			t.Fatalf("node-2 took %d jobs under node-1's lease", n)
		}
		w.Clock.Advance(queue.DefaultPolicy().Lease)
		if n, err := q2.RunDue(ctx, 10); n != 1 || err != nil {
			t.Fatalf("node-2 took %d jobs after the lease (%v)", n, err)
		}
		if ts, codes := states(t, w, msgID); ts != "delivered" || codes != "10 40" {
			t.Fatalf("%q, evidence %q", ts, codes)
		}
	})
}

// Failed attempts back off exponentially up to the ceiling; the sender's
// transport warns once at the warning deadline; at the deadline the
// transport is told to settle for good.
func TestBackoffWarningDeadline(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		msgID, _ := accept(t, w, 1)
		accepted := w.Clock.Now()
		f := &flaky{fail: true, inner: w.Node.Mailbox.Local()}
		q := node(w, "node-1", f)
		w.Clock.Advance(queue.DefaultPolicy().Lease + time.Second)
		p := queue.DefaultPolicy()
		var gaps []time.Duration
		for i := 0; i < 60; i++ {
			if _, err := q.RunDue(ctx, 10); err != nil {
				t.Fatal(err)
			}
			var next int64
			if err := w.Q().QueryRow(ctx, `SELECT next_at FROM queue_items WHERE ref = ?`, msgID).Scan(&next); err != nil {
				break // settled: the item is gone
			}
			gap := store.FromMillis(next).Sub(w.Clock.Now())
			gaps = append(gaps, gap)
			w.Clock.Advance(gap)
		}
		want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
		for i, g := range want {
			if i >= len(gaps) || gaps[i] != g {
				t.Fatalf("gaps %v, want them to start %v", gaps, want)
			}
		}
		for _, g := range gaps {
			if g > p.Backoff.Ceiling {
				t.Fatalf("gap %s over the ceiling", g)
			}
		}
		var warnings, warnJobs, expired int
		for _, j := range f.jobs {
			switch {
			case j.MessageID == -1:
				warnings++
			case j.Expired:
				expired++
			case j.Warn:
				warnJobs++
			}
		}
		if warnings != 1 || warnJobs != 1 {
			t.Fatalf("%d warnings in %d attempts past the warning time, want 1 in 1", warnings, warnJobs)
		}
		if expired != 1 {
			t.Fatalf("%d attempts after the deadline, want 1 (it settles)", expired)
		}
		// The expired attempt went through to the local mailbox.
		if ts, codes := states(t, w, msgID); ts != "delivered" || codes != "10 40" {
			t.Fatalf("%q, evidence %q", ts, codes)
		}
		if got := w.Clock.Now().Sub(accepted); got < p.Default.Fail || got > p.Default.Fail+p.Lease+time.Second {
			t.Fatalf("settled %s after acceptance, want at the %s deadline", got, p.Default.Fail)
		}
		if items(t, w) != 0 {
			t.Fatal("the item outlived its work")
		}
	})
}

// Nodes claiming side by side never take the same item.
func TestClaimsAreDisjoint(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		const n = 12
		var ids []int64
		for i := 0; i < n; i++ {
			id, _ := accept(t, w, 1)
			ids = append(ids, id)
		}
		w.Clock.Advance(queue.DefaultPolicy().Lease + time.Second)
		db := w.Node.DB
		rec := []*recorder{{db: db}, {db: db}, {db: db}}
		var wg sync.WaitGroup
		for i, r := range rec {
			wg.Add(1)
			go func() {
				defer wg.Done()
				q := node(w, fmt.Sprintf("node-%d", i), r)
				for k := 0; k < 5; k++ {
					if _, err := q.RunDue(ctx, 3); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		seen := map[int64]int{}
		for _, r := range rec {
			for _, id := range r.ids {
				seen[id]++
			}
		}
		for _, id := range ids {
			if seen[id] != 1 {
				t.Errorf("message %d delivered by %d nodes", id, seen[id])
			}
		}
		if items(t, w) != 0 {
			t.Error("items outlived their work")
		}
	})
}

// recorder settles recipients as a transport would (without evidence), and
// records which messages it got.
type recorder struct {
	db  *store.DB
	mu  sync.Mutex
	ids []int64
}

func (*recorder) Name() string { return "recorder" }
func (r *recorder) Deliver(ctx context.Context, j *queue.Job, rs []queue.Recipient) error {
	r.mu.Lock()
	r.ids = append(r.ids, j.MessageID)
	r.mu.Unlock()
	return r.db.InTx(ctx, func(tx *store.Tx) error {
		for _, x := range rs {
			if _, err := tx.Exec(ctx, `UPDATE deliveries SET transport_state = ? WHERE id = ? AND `+queue.PendingOnly, string(queue.Delivered), x.DeliveryID); err != nil {
				return err
			}
		}
		return queue.Done(ctx, tx, j)
	})
}

// A recipient at a domain no transport reaches gets 41 saying so, and a
// message settled on its first attempt leaves no queue item behind.
func TestNoRoute(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		msgID, to := acceptTo(t, w, "", "ali.veli@hs02.kep.tr")
		if _, err := w.Node.Mailbox.DeliverQueued(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if ts, codes := states(t, w, msgID); ts != "delivered failed" || codes != "10 40 41" {
			t.Fatalf("%q, evidence %q (to %s)", ts, codes, to[0].Account.Address)
		}
		sts, _ := evidence.ByMessage(ctx, w.Q(), msgID)
		e, err := evidence.Parse(sts[2].Document)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(e.Reasons[0].Text, "cannot be reached") || e.Recipients[0].Address != "ali.veli@hs02.kep.tr" {
			t.Fatalf("41 for %+v: %+v", e.Recipients, e.Reasons)
		}
		if items(t, w) != 0 {
			t.Fatal("a message settled at once left a queue item")
		}
	})
}

// A local delivery that keeps failing (here: the original is gone before
// its envelope was made) is retried until the deadline, then settled with
// 41 saying the deadline passed.
func TestLocalDeadline(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		msgID, _ := accept(t, w, 1)
		msg, err := mailbox.GetKEPMessage(ctx, w.Q(), msgID)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Node.Blobs.Delete(msg.Digest); err != nil {
			t.Fatal(err)
		}
		mb := w.Node.Mailbox
		if _, err := mb.DeliverQueued(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if ts, codes := states(t, w, msgID); ts != "pending" || codes != "10" || items(t, w) != 1 {
			t.Fatalf("after a failed attempt: %q, evidence %q, %d items", ts, codes, items(t, w))
		}
		w.Clock.Advance(23 * time.Hour)
		if _, err := mb.DeliverQueued(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if ts, _ := states(t, w, msgID); ts != "pending" {
			t.Fatalf("settled before the deadline: %q", ts)
		}
		w.Clock.Advance(time.Hour)
		if _, err := mb.DeliverQueued(ctx, 10); err != nil {
			t.Fatal(err)
		}
		ts, codes := states(t, w, msgID)
		if ts != "failed" || codes != "10 41" || items(t, w) != 0 {
			t.Fatalf("after the deadline: %q, evidence %q, %d items", ts, codes, items(t, w))
		}
		sts, _ := evidence.ByMessage(ctx, w.Q(), msgID)
		e, _ := evidence.Parse(sts[1].Document)
		if e.Reasons[0].Code != evidence.ReasonKEPBase+"delivery-timeout" {
			t.Fatalf("41 reason %+v", e.Reasons)
		}
	})
}
