// Package tlog is in charge of the provider's evidence log: an append-only
// Merkle tree (RFC 6962 hashing, golang.org/x/mod/sumdb/tlog numbering) kept
// in the store, appended to in batches (group commit), and its checkpoints
// — C2SP tlog-checkpoint bodies in C2SP signed notes, each covered by an
// RFC 3161 time stamp — with inclusion and consistency proofs and the C2SP
// tlog-tiles view an outside auditor mirrors.
//
// An entry of the log is the SHA-256 digest of one signed evidence document
// (32 bytes); its leaf hash is SHA-256(0x00 ‖ entry) (RFC 6962 §2.1). The log
// therefore holds no personal data: entries can be published.
package tlog

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kephs/kep/store"
)

// Hash is a node of the tree.
type Hash = tlog.Hash

// EntryFor returns the log entry of a signed evidence document.
func EntryFor(document []byte) [32]byte { return sha256.Sum256(document) }

// LeafHash is the RFC 6962 leaf hash of an entry.
func LeafHash(entry []byte) Hash { return tlog.RecordHash(entry) }

// WriteFunc writes the rows that go with appended entries (the evidence
// itself), in the same transaction as their log hashes: first is the leaf
// index of the first entry of the request. An error discards the request's
// rows alone. A WriteFunc can run twice: when another request of its
// batch fails, the batch is rolled back and written again, and every
// WriteFunc in it runs again in the new transaction. It must give the same
// result each time (for example a conditional UPDATE).
type WriteFunc func(ctx context.Context, tx *store.Tx, first int64) error

// Log appends to and reads from the Merkle log in the store.
type Log struct {
	db        *store.DB
	batchSize int

	reqs chan *appendReq
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex // guards size and cache
	size  int64
	cache map[int64]Hash // stored hashes on the right edge of the tree
	now   func() time.Time

	// Stats, for benchmarks and metrics.
	Batches, Appended int64
}

type appendReq struct {
	ctx     context.Context
	entries [][32]byte
	write   WriteFunc
	pre     Precondition // nil, or what must hold before the rows are written
	first   int64
	err     chan error
}

// Open starts the log's sequencer over db. batchSize bounds the entries
// committed in one transaction.
func Open(ctx context.Context, db *store.DB, batchSize int) (*Log, error) {
	if batchSize <= 0 {
		batchSize = 512
	}
	l := &Log{db: db, batchSize: batchSize, reqs: make(chan *appendReq, 4*batchSize), stop: make(chan struct{}), done: make(chan struct{}),
		cache: map[int64]Hash{}, now: time.Now}
	size, err := l.dbSize(ctx, db.Q())
	if err != nil {
		return nil, err
	}
	l.size = size
	go l.sequencer()
	return l, nil
}

// Close stops the sequencer after the appends under way.
func (l *Log) Close() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func (l *Log) dbSize(ctx context.Context, q store.Querier) (int64, error) {
	var count int64
	err := q.QueryRow(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_hashes`).Scan(&count)
	if err != nil {
		return 0, fmt.Errorf("tlog: read size: %w", err)
	}
	return sizeForHashCount(count)
}

// sizeForHashCount inverts tlog.StoredHashCount: the number of leaves whose
// stored hashes number count.
func sizeForHashCount(count int64) (int64, error) {
	lo, hi := int64(0), count
	for lo < hi {
		mid := lo + (hi-lo)/2
		if tlog.StoredHashCount(mid) < count {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if tlog.StoredHashCount(lo) != count {
		return 0, fmt.Errorf("tlog: %d stored hashes is not a whole tree: the log is damaged", count)
	}
	return lo, nil
}

// Size returns the number of entries appended so far.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// ErrClosed is returned for appends after Close.
var ErrClosed = errors.New("tlog: the log is closed")

// Append adds entries to the log and runs write for the rows that go with
// them, all in one transaction shared with other appends under way (group
// commit). It returns the leaf index of the first entry once the
// Write runs write in the log's next group commit, as an append without
// entries: the way every frequent small write goes, so that writers never
// queue on the database lock behind one another (on SQLite a deferred
// write that races the log's writer fails at once with SQLITE_BUSY,
// whatever the busy timeout). Like any WriteFunc, write may run twice
// when a batch is retried: it must be idempotent.
func (l *Log) Write(ctx context.Context, write func(ctx context.Context, tx *store.Tx) error) error {
	_, err := l.Append(ctx, nil, func(ctx context.Context, tx *store.Tx, _ int64) error { return write(ctx, tx) })
	return err
}

// transaction is durable.
func (l *Log) Append(ctx context.Context, entries [][32]byte, write WriteFunc) (int64, error) {
	return l.AppendWhen(ctx, entries, nil, write)
}

// A Precondition is something outside the database that an append's rows
// must not be durable before, such as the sync of the file that holds the
// original a message row refers to (AppendWhen).
type Precondition interface {
	// Done is closed once the precondition is decided.
	Done() <-chan struct{}
	// Err, once Done is closed, is nil when the precondition holds.
	Err() error
}

// Go runs fn in a goroutine of its own and returns the precondition that
// fn returned nil: a sync started before an append, so that it runs while
// the caller prepares the rest.
func Go(fn func() error) Precondition {
	p := &goPre{done: make(chan struct{})}
	go func() {
		p.err = fn()
		close(p.done)
	}()
	return p
}

type goPre struct {
	done chan struct{}
	err  error
}

func (p *goPre) Done() <-chan struct{} { return p.done }
func (p *goPre) Err() error            { return p.err }

// AppendWhen is Append for rows that must not be durable before pre holds.
// The sequencer leaves the request waiting, and commits the batches of
// others meanwhile, until pre is decided; then the request joins the next
// batch, or fails alone, without any row written, with pre's error. Where
// the sequencer waited for the precondition in the middle of a batch,
// every message of the batch waited with it (issue 12's p99).
func (l *Log) AppendWhen(ctx context.Context, entries [][32]byte, pre Precondition, write WriteFunc) (int64, error) {
	r := &appendReq{ctx: ctx, entries: entries, write: write, pre: pre, err: make(chan error, 1)}
	select {
	case l.reqs <- r:
	case <-l.stop:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case err := <-r.err:
		return r.first, err
	case <-l.done:
		return 0, ErrClosed
	}
}

func (l *Log) sequencer() {
	defer close(l.done)
	// held are requests whose precondition is not decided yet, oldest
	// first: they join the first batch formed after it is.
	var held []*appendReq
	ready := func(r *appendReq) bool {
		if r.pre == nil {
			return true
		}
		select {
		case <-r.pre.Done():
			return true
		default:
			return false
		}
	}
	for {
		var batch []*appendReq
		n := 0
		add := func(r *appendReq) {
			if ready(r) {
				batch = append(batch, r)
				n += len(r.entries)
			} else {
				held = append(held, r)
			}
		}
		kept := held[:0]
		for _, r := range held {
			if n < l.batchSize && ready(r) {
				batch = append(batch, r)
				n += len(r.entries)
			} else {
				kept = append(kept, r)
			}
		}
		clear(held[len(kept):])
		held = kept
		if len(batch) == 0 {
			// Nothing to write: wait for a request, or for the oldest held
			// one's precondition (syncs end in the order they started).
			var oldest <-chan struct{}
			if len(held) > 0 {
				oldest = held[0].pre.Done()
			}
			select {
			case r := <-l.reqs:
				add(r)
			case <-oldest:
				continue
			case <-l.stop:
				// Answer what was queued or held before stopping; nothing
				// of it was written.
				for _, r := range held {
					r.err <- ErrClosed
				}
				for {
					select {
					case r := <-l.reqs:
						r.err <- ErrClosed
					default:
						return
					}
				}
			}
		}
	fill:
		for n < l.batchSize {
			select {
			case r := <-l.reqs:
				add(r)
			default:
				break fill
			}
		}
		if len(batch) > 0 {
			l.commit(batch)
		}
	}
}

// commit writes one batch in one transaction. Requests rarely fail, so
// the batch is first written straight through; when a request's write
// fails, that attempt is rolled back and the batch is written again with a
// savepoint around each request, so that the failing one is dropped alone.
func (l *Log) commit(batch []*appendReq) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if retry := l.attempt(batch, false); retry {
		l.attempt(batch, true)
	}
}

// errRetry aborts a straight-through attempt whose request failed.
var errRetry = errors.New("tlog: a request failed; retry with savepoints")

// attempt writes the batch; it reports true, having written and answered
// nothing, when a request failed without savepoints.
func (l *Log) attempt(batch []*appendReq, savepoints bool) (retry bool) {
	ctx := context.Background()
	results := make([]error, len(batch))
	firsts := make([]int64, len(batch))
	var newHashes []int64
	pending := map[int64]Hash{}
	err := l.db.InTx(ctx, func(tx *store.Tx) error {
		if l.db.Dialect == store.Postgres {
			// One sequencer at a time across nodes sharing the database.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(4242002)`); err != nil {
				return err
			}
		}
		size, err := l.dbSize(ctx, tx)
		if err != nil {
			return err
		}
		if size != l.size { // another node appended: forget the cached edge
			l.cache = map[int64]Hash{}
			l.size = size
		}
		reader := l.reader(ctx, tx, pending)
		next := size
		for i, r := range batch {
			if err := r.ctx.Err(); err != nil {
				results[i] = err
				continue
			}
			if r.pre != nil {
				// Decided before the request joined the batch.
				if err := r.pre.Err(); err != nil {
					results[i] = err
					continue
				}
			}
			sp := fmt.Sprintf("a%d", i)
			if savepoints {
				if _, err := tx.Exec(ctx, "SAVEPOINT "+sp); err != nil {
					return err
				}
			}
			if r.write != nil {
				if err := r.write(ctx, tx, next); err != nil {
					if !savepoints {
						return errRetry
					}
					if _, e := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+sp); e != nil {
						return e
					}
					results[i] = err
					continue
				}
			}
			if savepoints {
				if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT "+sp); err != nil {
					return err
				}
			}
			firsts[i] = next
			for _, e := range r.entries {
				hs, err := tlog.StoredHashesForRecordHash(next, tlog.RecordHash(e[:]), reader)
				if err != nil {
					return fmt.Errorf("tlog: hashes for %d: %w", next, err)
				}
				base := tlog.StoredHashIndex(0, next)
				for j, h := range hs {
					pending[base+int64(j)] = h
					newHashes = append(newHashes, base+int64(j))
				}
				next++
			}
		}
		return insertHashes(ctx, tx, newHashes, pending)
	})
	if errors.Is(err, errRetry) {
		l.cache = map[int64]Hash{}
		return true
	}
	if err != nil {
		l.cache = map[int64]Hash{}
		if s, e := l.dbSize(ctx, l.db.Q()); e == nil {
			l.size = s
		}
		for i, r := range batch {
			if results[i] == nil {
				results[i] = err
			}
			r.err <- results[i]
		}
		return false
	}
	l.Batches++
	for i, r := range batch {
		if results[i] != nil {
			r.err <- results[i]
			continue
		}
		r.first = firsts[i]
		l.size = r.first + int64(len(r.entries))
		l.Appended += int64(len(r.entries))
		r.err <- nil
	}
	for idx, h := range pending {
		l.cache[idx] = h
	}
	l.pruneCache()
	return false
}

// pruneCache keeps only the hashes the next append can need: the roots of
// the complete subtrees on the right edge of the tree.
func (l *Log) pruneCache() {
	if len(l.cache) < 4096 {
		return
	}
	keep := map[int64]Hash{}
	rec := tlog.HashReaderFunc(func(idx []int64) ([]Hash, error) {
		out := make([]Hash, len(idx))
		for i, x := range idx {
			h, ok := l.cache[x]
			if !ok {
				return nil, errors.New("miss")
			}
			keep[x], out[i] = h, h
		}
		return out, nil
	})
	if _, err := tlog.StoredHashesForRecordHash(l.size, Hash{}, rec); err != nil {
		l.cache = map[int64]Hash{}
		return
	}
	l.cache = keep
}

func insertHashes(ctx context.Context, tx *store.Tx, idx []int64, hs map[int64]Hash) error {
	const chunk = 200
	for len(idx) > 0 {
		n := min(chunk, len(idx))
		var b strings.Builder
		b.WriteString(`INSERT INTO tlog_hashes (idx, hash) VALUES `)
		args := make([]any, 0, 2*n)
		for i, x := range idx[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?)")
			h := hs[x]
			args = append(args, x, h[:])
		}
		if _, err := tx.Exec(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("tlog: store hashes: %w", err)
		}
		idx = idx[n:]
	}
	return nil
}

// reader reads stored hashes: first those of the batch being written, then
// the cached right edge, then the database.
func (l *Log) reader(ctx context.Context, q store.Querier, pending map[int64]Hash) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]Hash, error) {
		out := make([]Hash, len(idx))
		var miss []int64
		for i, x := range idx {
			if h, ok := pending[x]; ok {
				out[i] = h
			} else if h, ok := l.cache[x]; ok {
				out[i] = h
			} else {
				miss = append(miss, x)
			}
		}
		if len(miss) == 0 {
			return out, nil
		}
		got, err := readHashes(ctx, q, miss)
		if err != nil {
			return nil, err
		}
		for i, x := range idx {
			if h, ok := got[x]; ok {
				out[i] = h
				l.cache[x] = h
			}
		}
		return out, nil
	})
}

func readHashes(ctx context.Context, q store.Querier, idx []int64) (map[int64]Hash, error) {
	out := make(map[int64]Hash, len(idx))
	for len(idx) > 0 {
		n := min(500, len(idx))
		var b strings.Builder
		b.WriteString(`SELECT idx, hash FROM tlog_hashes WHERE idx IN (`)
		args := make([]any, n)
		for i, x := range idx[:n] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
			args[i] = x
		}
		b.WriteByte(')')
		rows, err := q.Query(ctx, b.String(), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var x int64
			var h []byte
			if err := rows.Scan(&x, &h); err != nil {
				rows.Close()
				return nil, err
			}
			if len(h) != tlog.HashSize {
				rows.Close()
				return nil, fmt.Errorf("tlog: stored hash %d has %d bytes", x, len(h))
			}
			out[x] = Hash(h)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		idx = idx[n:]
	}
	return out, nil
}

// HashReader reads stored hashes from the database; a missing one is an
// error naming it.
func HashReader(ctx context.Context, q store.Querier) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]Hash, error) {
		got, err := readHashes(ctx, q, idx)
		if err != nil {
			return nil, err
		}
		out := make([]Hash, len(idx))
		for i, x := range idx {
			h, ok := got[x]
			if !ok {
				level, n := tlog.SplitStoredHashIndex(x)
				return nil, fmt.Errorf("tlog: stored hash %d (level %d, node %d) is missing", x, level, n)
			}
			out[i] = h
		}
		return out, nil
	})
}

// TreeHash returns the root hash of the tree of the first n entries.
func TreeHash(ctx context.Context, q store.Querier, n int64) (Hash, error) {
	return tlog.TreeHash(n, HashReader(ctx, q))
}

// ProveInclusion returns the proof that leaf index i is in the tree of size n.
func ProveInclusion(ctx context.Context, q store.Querier, i, n int64) (tlog.RecordProof, error) {
	if i < 0 || i >= n {
		return nil, fmt.Errorf("tlog: leaf %d is not in a tree of size %d", i, n)
	}
	return tlog.ProveRecord(n, i, HashReader(ctx, q))
}

// ProveConsistency returns the proof that the tree of size n extends the
// tree of size m.
func ProveConsistency(ctx context.Context, q store.Querier, m, n int64) (tlog.TreeProof, error) {
	if m < 1 || m > n {
		return nil, fmt.Errorf("tlog: cannot prove size %d extends size %d", n, m)
	}
	return tlog.ProveTree(n, m, HashReader(ctx, q))
}

// CheckInclusion verifies an inclusion proof of entry at index i in a tree
// of size n with root.
func CheckInclusion(proof tlog.RecordProof, n int64, root Hash, i int64, entry []byte) error {
	return tlog.CheckRecord(proof, n, root, i, tlog.RecordHash(entry))
}

// CheckConsistency verifies that the tree (n, rootN) extends (m, rootM).
func CheckConsistency(proof tlog.TreeProof, n int64, rootN Hash, m int64, rootM Hash) error {
	return tlog.CheckTree(proof, n, rootN, m, rootM)
}
