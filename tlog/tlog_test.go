package tlog_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
	"github.com/kephs/kep/tlog"
)

type fakeStamper struct{}

// A test stamper: the real RFC 3161 path is tested in package tsa and in the
// evidence bundle tests.
func (fakeStamper) Stamp(_ context.Context, data []byte) ([]byte, time.Time, error) {
	s := sha256.Sum256(data)
	return s[:], time.Now(), nil
}

func entry(i int) [32]byte { return sha256.Sum256([]byte(fmt.Sprintf("evidence %d", i))) }

func TestAppendProveAndCheckpoint(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, err := tlog.Open(ctx, db, 64)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		const n = 300
		var wg sync.WaitGroup
		firsts := make([]int64, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				first, err := l.Append(ctx, [][32]byte{entry(i)}, func(ctx context.Context, tx *store.Tx, first int64) error {
					_, err := tx.Exec(ctx, `INSERT INTO evidence (seq, id, code, stage, event_time, format, xml) VALUES (?, ?, 10, 'submission', 0, 0, ?)`,
						first, fmt.Sprint("id-", i), []byte(fmt.Sprint("evidence ", i)))
					return err
				})
				if err != nil {
					t.Error(err)
				}
				firsts[i] = first
			}(i)
		}
		wg.Wait()
		if l.Size() != n {
			t.Fatalf("size %d, want %d", l.Size(), n)
		}
		if l.Batches >= n {
			t.Logf("no batching happened (%d batches)", l.Batches)
		}
		skey, vkey, _ := tlog.GenerateLogKey("hs01.kep.tr/log")
		signer, _ := note.NewSigner(skey)
		cper := &tlog.Checkpointer{DB: db, Origin: "hs01.kep.tr/log", Signer: signer, Stamper: fakeStamper{}}
		cp, err := cper.Catchup(ctx, l.Size())
		if err != nil {
			t.Fatal(err)
		}
		origin, size, root, err := tlog.OpenCheckpoint(cp.Note, vkey)
		if err != nil || origin != "hs01.kep.tr/log" || size != n || root != cp.Root {
			t.Fatalf("open checkpoint: %v %s %d", err, origin, size)
		}
		// The root equals the one computed from scratch.
		var leaves []sumtlog.Hash
		for i := 0; i < n; i++ {
			_ = i
		}
		for seq := int64(0); seq < n; seq++ {
			// find which i got seq
			for i, f := range firsts {
				if f == seq {
					e := entry(i)
					leaves = append(leaves, sumtlog.RecordHash(e[:]))
				}
			}
		}
		if got := rootOf(leaves); got != root {
			t.Fatal("checkpoint root differs from the root recomputed from the entries")
		}
		for i := 0; i < n; i += 37 {
			p, err := tlog.ProveInclusion(ctx, db.Q(), firsts[i], n)
			if err != nil {
				t.Fatal(err)
			}
			e := entry(i)
			if err := tlog.CheckInclusion(p, n, root, firsts[i], e[:]); err != nil {
				t.Fatalf("inclusion %d: %v", i, err)
			}
			if err := tlog.CheckInclusion(p, n, root, firsts[i], []byte("other")); err == nil {
				t.Fatal("inclusion of a wrong entry accepted")
			}
		}
		// Consistency with an older size.
		old, err := tlog.TreeHash(ctx, db.Q(), 100)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := tlog.ProveConsistency(ctx, db.Q(), 100, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckConsistency(tp, n, root, 100, old); err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckConsistency(tp, n, root, 100, sumtlog.Hash{1}); err == nil {
			t.Fatal("consistency with a wrong old root accepted")
		}
		// Hashes are append-only in the database.
		if _, err := db.Q().Exec(ctx, `UPDATE tlog_hashes SET hash = ? WHERE idx = 0`, make([]byte, 32)); !errors.Is(err, store.ErrAppendOnly) {
			t.Fatalf("update hash: %v", err)
		}
		if _, err := db.Q().Exec(ctx, `DELETE FROM checkpoints`); !errors.Is(err, store.ErrAppendOnly) {
			t.Fatalf("delete checkpoint: %v", err)
		}
		// A reopened log continues where it was.
		l.Close()
		l2, err := tlog.Open(ctx, db, 64)
		if err != nil {
			t.Fatal(err)
		}
		defer l2.Close()
		if l2.Size() != n {
			t.Fatalf("reopened size %d", l2.Size())
		}
		// Tiles served over HTTP match the tree.
		srv := httptest.NewServer(tlog.Handler(db, func(ctx context.Context, start, end int64) ([][]byte, error) {
			var out [][]byte
			for s := start; s < end; s++ {
				for i, f := range firsts {
					if f == s {
						e := entry(i)
						out = append(out, e[:])
					}
				}
			}
			return out, nil
		}))
		defer srv.Close()
		get := func(p string) []byte {
			resp, err := http.Get(srv.URL + "/" + p)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %s", p, resp.StatusCode, b)
			}
			return b
		}
		if string(get("checkpoint")) != string(cp.Note) {
			t.Fatal("checkpoint endpoint differs")
		}
		full := get(tlog.TilePath(0, 0, 0))
		if len(full) != 256*32 {
			t.Fatalf("full tile %d bytes", len(full))
		}
		part := get(tlog.TilePath(0, 1, n-256))
		if len(part) != (n-256)*32 {
			t.Fatalf("partial tile %d bytes", len(part))
		}
		for i := 0; i < 256; i++ {
			if [32]byte(full[i*32:(i+1)*32]) != leaves[i] {
				t.Fatalf("tile hash %d differs", i)
			}
		}
		eb := get(tlog.TilePath(-1, 0, 0))
		if len(eb) != 256*34 {
			t.Fatalf("entry bundle %d bytes", len(eb))
		}
		// A tile beyond the checkpoint is not served.
		resp, _ := http.Get(srv.URL + "/" + tlog.TilePath(0, 2, 0))
		if resp.StatusCode != 404 {
			t.Fatalf("tile beyond checkpoint: %d", resp.StatusCode)
		}
		resp.Body.Close()
	})
}

func rootOf(leaves []sumtlog.Hash) sumtlog.Hash {
	var stored []sumtlog.Hash
	r := sumtlog.HashReaderFunc(func(idx []int64) ([]sumtlog.Hash, error) {
		out := make([]sumtlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i, h := range leaves {
		hs, err := sumtlog.StoredHashesForRecordHash(int64(i), h, r)
		if err != nil {
			panic(err)
		}
		stored = append(stored, hs...)
	}
	root, _ := sumtlog.TreeHash(int64(len(leaves)), r)
	return root
}

func TestFailedRequestDoesNotSinkTheBatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, err := tlog.Open(ctx, db, 64)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, errs[i] = l.Append(ctx, [][32]byte{entry(i)}, func(ctx context.Context, tx *store.Tx, first int64) error {
					if _, err := tx.Exec(ctx, `INSERT INTO evidence (seq, id, code, stage, event_time, format, xml) VALUES (?, ?, 10, 'submission', 0, 0, ?)`, first, fmt.Sprint("id-", i), []byte{0}); err != nil {
						return err
					}
					if i%3 == 0 {
						return errors.New("refused")
					}
					return nil
				})
			}(i)
		}
		wg.Wait()
		okCount := 0
		for i, err := range errs {
			if (i%3 == 0) != (err != nil) {
				t.Fatalf("request %d: err %v", i, err)
			}
			if err == nil {
				okCount++
			}
		}
		if l.Size() != int64(okCount) {
			t.Fatalf("size %d want %d", l.Size(), okCount)
		}
		var rows int64
		db.Q().QueryRow(ctx, `SELECT COUNT(*) FROM evidence`).Scan(&rows)
		if rows != int64(okCount) {
			t.Fatalf("%d evidence rows, want %d: a failed request left rows behind", rows, okCount)
		}
	})
}

func TestTilePath(t *testing.T) {
	for _, c := range []struct {
		level int
		n     int64
		w     int
		want  string
	}{
		{0, 0, 0, "tile/0/000"},
		{1, 1234067, 0, "tile/1/x001/x234/067"},
		{-1, 5, 17, "tile/entries/005.p/17"},
	} {
		if got := tlog.TilePath(c.level, c.n, c.w); got != c.want {
			t.Errorf("TilePath(%d,%d,%d) = %s want %s", c.level, c.n, c.w, got, c.want)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	db := storetest.Open(b, store.SQLite)
	ctx := context.Background()
	l, err := tlog.Open(ctx, db, 512)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.SetParallelism(64)
	var n int64
	var mu sync.Mutex
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			if _, err := l.Append(ctx, [][32]byte{entry(int(i))}, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkProveInclusion measures proofs in logs of growing size: the
// time grows with log2 of the size (the number of hashes read).
func BenchmarkProveInclusion(b *testing.B) {
	for _, n := range []int64{1 << 10, 1 << 14, 1 << 17} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			db := storetest.Open(b, store.SQLite)
			ctx := context.Background()
			l, err := tlog.Open(ctx, db, 4096)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			const chunk = 4096
			for i := int64(0); i < n; i += chunk {
				es := make([][32]byte, chunk)
				for j := range es {
					es[j] = entry(int(i) + j)
				}
				if _, err := l.Append(ctx, es, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			var hashes int
			for i := 0; i < b.N; i++ {
				p, err := tlog.ProveInclusion(ctx, db.Q(), int64(i*7919)%n, n)
				if err != nil {
					b.Fatal(err)
				}
				hashes = len(p)
			}
			b.ReportMetric(float64(hashes), "hashes")
		})
	}
}

// AppendWhen: a request is neither written nor committed before its
// precondition holds, and the requests of others commit meanwhile; a
// request whose precondition fails is refused alone, with no row written.
func TestAppendWhenWaitsForPrecondition(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, err := tlog.Open(ctx, db, 64)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		insert := func(i int) tlog.WriteFunc {
			return func(ctx context.Context, tx *store.Tx, first int64) error {
				_, err := tx.Exec(ctx, `INSERT INTO evidence (seq, id, code, stage, event_time, format, xml) VALUES (?, ?, 10, 'submission', 0, 0, ?)`, first, fmt.Sprint("id-", i), []byte{0})
				return err
			}
		}
		count := func() (n int64) {
			db.Q().QueryRow(ctx, `SELECT COUNT(*) FROM evidence`).Scan(&n)
			return n
		}
		release := make(chan struct{})
		var written atomic.Bool
		done := make(chan error, 1)
		go func() {
			_, err := l.AppendWhen(ctx, [][32]byte{entry(0)}, tlog.Go(func() error { <-release; return nil }), func(ctx context.Context, tx *store.Tx, first int64) error {
				written.Store(true)
				return insert(0)(ctx, tx, first)
			})
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		// Another request is not held up by it.
		if _, err := l.Append(ctx, [][32]byte{entry(1)}, insert(1)); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 1 || written.Load() {
			t.Fatalf("%d rows (want 1), written %v, before the precondition held", n, written.Load())
		}
		select {
		case err := <-done:
			t.Fatalf("append returned before its precondition: %v", err)
		default:
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 2 {
			t.Fatalf("%d rows after the precondition held, want 2", n)
		}

		// Failing preconditions among many: only their requests are refused.
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := 2; i < 22; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				pre := tlog.Go(func() error {
					time.Sleep(time.Duration(i%5) * time.Millisecond)
					if i%4 == 0 {
						return errors.New("the original's sync failed")
					}
					return nil
				})
				_, errs[i-2] = l.AppendWhen(ctx, [][32]byte{entry(i)}, pre, insert(i))
			}(i)
		}
		wg.Wait()
		ok := int64(2)
		for k, err := range errs {
			i := k + 2
			if (i%4 == 0) != (err != nil) {
				t.Fatalf("request %d: err %v", i, err)
			}
			if err == nil {
				ok++
			}
		}
		if n := count(); n != ok || l.Size() != ok {
			t.Fatalf("%d rows and size %d, want %d", n, l.Size(), ok)
		}
	})
}

// Close answers a request still waiting for its precondition, with nothing
// written.
func TestCloseWithHeldRequest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, err := tlog.Open(ctx, db, 64)
		if err != nil {
			t.Fatal(err)
		}
		never := make(chan struct{})
		defer close(never)
		done := make(chan error, 1)
		go func() {
			_, err := l.AppendWhen(ctx, [][32]byte{entry(0)}, tlog.Go(func() error { <-never; return nil }), func(context.Context, *store.Tx, int64) error {
				return errors.New("written")
			})
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		l.Close()
		if err := <-done; !errors.Is(err, tlog.ErrClosed) {
			t.Fatalf("held request at Close: %v, want ErrClosed", err)
		}
	})
}
