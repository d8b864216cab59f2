package tlog

import (
	"context"
	"crypto/x509"
	"fmt"
	"math"
	"sort"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tsa"
)

// An audit recomputes the whole log from the evidence store and checks that
// everything the store holds about it still agrees: each evidence document
// with its leaf, each stored hash with the hashes below it, each checkpoint
// with the tree of its size, its note signature and its time stamps. The
// append-only triggers keep the application from changing any of it; the
// audit finds what was changed around them (raw SQL with the triggers
// dropped, a restored backup, a damaged disk) and names it.
//
// Checkpoints are followed as a chain (Link): one the next names and the
// store lacks is named, and so are later time stamps; leaves no checkpoint
// covers long after they were logged are named too, and a checkpoint an
// outside auditor saved (AuditOptions.Against) shows a latest checkpoint
// removed or a log rewritten, which the store alone cannot. (Issue 9.4.)
//
// It reads the evidence in chunks and keeps only the right frontier of the
// tree (one hash per level, O(log n)), so it runs over any size of log; the
// problems it finds are kept until the end, to tell a changed evidence from
// a changed hash with the help of the signed checkpoints.

// AuditEntry is one evidence row for Audit.
type AuditEntry struct {
	Seq      int64  // its leaf index, as the row files it
	ID       string // its evidence identifier, for reports
	Document []byte // the signed document, whose SHA-256 is the log entry; nil if it cannot be read
	// Time is the event time its document states, for the leaves left
	// uncovered by checkpoints; zero when it cannot be read.
	Time time.Time
	// Err says why the row cannot be read, or how its other columns
	// contradict its document (another code, id or event time).
	Err error
	// Kind is what the leaf stands for: LeafEvidence (an evidence we
	// signed) or LeafReceipt (evidence received from another provider,
	// Document being its ReceiptDocument).
	Kind LeafKind
}

// AuditReader returns the evidence rows with leaf indexes in [start, end),
// in order; a missing row is simply absent. (Package tlog cannot read the
// evidence table itself: package evidence, which owns it, imports tlog.)
type AuditReader func(ctx context.Context, start, end int64) ([]AuditEntry, error)

// ProblemKind classifies what an audit found.
type ProblemKind string

const (
	ProblemEvidenceChanged ProblemKind = "evidence-changed"   // a document no longer matches the log
	ProblemEvidenceMoved   ProblemKind = "evidence-moved"     // a row holds the document logged at another leaf
	ProblemEvidenceMissing ProblemKind = "evidence-missing"   // the log has an entry with no evidence row
	ProblemEvidenceRow     ProblemKind = "evidence-row"       // a row cannot be read, or its columns contradict its document
	ProblemEvidenceExtra   ProblemKind = "evidence-unlogged"  // an evidence row the log has no entry for
	ProblemHash            ProblemKind = "log-hash"           // a stored hash was changed, removed or added
	ProblemCheckpoint      ProblemKind = "checkpoint"         // a checkpoint's signature, columns or root
	ProblemTimestamp       ProblemKind = "timestamp"          // a checkpoint's time stamp, first or later
	ProblemMissing         ProblemKind = "checkpoint-missing" // a checkpoint or later time stamp the chain names is not stored
	ProblemUncovered       ProblemKind = "uncovered"          // leaves no checkpoint covers, long after they were logged
	ProblemAgainst         ProblemKind = "outside-checkpoint" // the log disagrees with a checkpoint an outside auditor saved
)

// Problem is one thing an audit found wrong.
type Problem struct {
	Kind   ProblemKind
	Seq    int64  // the evidence's leaf index, or -1
	ID     string // the evidence's identifier, when known
	Size   int64  // the checkpoint's size, or 0
	Detail string // the whole report, one line
}

func (p Problem) String() string { return p.Detail }

// AuditOptions configure Audit.
type AuditOptions struct {
	// VerifierKey is the log's note verifier key: checkpoints must be
	// signed with it.
	VerifierKey string
	// TSARoots are the trust anchors of the checkpoints' time stamps; nil
	// leaves time stamps unchecked.
	TSARoots *x509.CertPool
	// Chunk is how many evidence rows are read at a time (default 1000).
	Chunk int
	// Report, when not nil, is called with each problem.
	Report func(Problem)

	// Against is a signed checkpoint saved by an outside auditor (what
	// GET /log/checkpoint served), or nil: the log must have a stored
	// checkpoint of its size and its tree, recomputed from the evidence,
	// must have its root. It shows a latest checkpoint removed from the
	// store, or a log cut back or rewritten, which the store alone cannot.
	Against []byte
	// Interval is the node's checkpoint interval; 0 skips the check for
	// uncovered leaves. Leaves no checkpoint covers are reported when the
	// log went on for more than UncoveredIntervals intervals after them
	// (the node was running, and the checkpoint that covered them is
	// gone), or, when no checkpoint is stored at all, when they were
	// logged that long before Now.
	Interval time.Duration
	Now      func() time.Time
}

// UncoveredIntervals is how many checkpoint intervals a leaf may wait for
// its first checkpoint before the audit names it: the checkpointer makes
// one every interval, and a retry or a slow time-stamping authority may
// delay one or two.
const UncoveredIntervals = 5

// AuditSummary is what an audit went through.
type AuditSummary struct {
	Size        int64 // entries in the log when the audit started
	Evidence    int64 // evidence rows read
	Hashes      int64 // stored hashes compared
	Checkpoints int64 // checkpoints checked
	Stamps      int64 // time stamps verified (first and later ones)
	Links       int64 // links between checkpoints followed (Link)
	Covered     int64 // entries covered by a stored checkpoint
	Against     int64 // outside checkpoints compared
	Root        Hash  // the root of the tree recomputed from the evidence
	Problems    int64
}

func (s AuditSummary) String() string {
	return fmt.Sprintf("%d entries, %d evidence rows, %d stored hashes, %d checkpoints and %d time stamps checked, %d checkpoint links followed, %d entries covered by checkpoints, %d outside checkpoints compared; %d problems",
		s.Size, s.Evidence, s.Hashes, s.Checkpoints, s.Stamps, s.Links, s.Covered, s.Against, s.Problems)
}

// maxMismatches bounds the leaf mismatches kept for classification; past
// it they are reported as found, unclassified.
const maxMismatches = 1 << 20

// Audit checks the log in db against the evidence read returns (see the
// comment above AuditEntry). Problems go to o.Report; an error means the
// audit could not run to its end (the database failed), not that it found
// something.
func Audit(ctx context.Context, db *store.DB, read AuditReader, o AuditOptions) (AuditSummary, error) {
	a := &auditor{ctx: ctx, q: db.Q(), read: read, o: o, seen: map[int64]int64{}, missing: map[int64]bool{}}
	if a.o.Chunk <= 0 {
		a.o.Chunk = 1000
	}
	if a.o.Now == nil {
		a.o.Now = time.Now
	}
	if o.Against != nil {
		_, size, root, err := OpenCheckpoint(o.Against, o.VerifierKey)
		if err != nil {
			return a.sum, fmt.Errorf("tlog: audit: the outside checkpoint: %w", err)
		}
		a.against = &Checkpoint{Size: size, Root: root}
	}
	err := a.run()
	a.sum.Root = a.root()
	return a.sum, err
}

type frontierNode struct {
	hash  Hash
	dirty bool // the recomputed hash differs from the stored one (or it is missing)
}

// leafMismatch is an evidence whose document's leaf hash is not the stored
// one: either was changed. The first valid checkpoint that covers it tells
// which.
type leafMismatch struct {
	seq         int64
	id          string
	doc, stored Hash
	cpSize      int64 // 0 until a checkpoint covers it
	cpRoot      Hash
}

type auditor struct {
	ctx  context.Context
	q    store.Querier
	read AuditReader
	o    AuditOptions
	sum  AuditSummary

	stack   []frontierNode // roots of the complete subtrees, left to right
	n       int64          // leaves appended
	pending []*leafMismatch
	all     []*leafMismatch

	cps     []*Checkpoint // the current page of checkpoints
	stamps  map[int64][]stamp
	cpAfter int64 // the size of the last checkpoint read
	cpDone  bool

	seen      map[int64]int64 // the sizes of the checkpoints checked, with their number of later time stamps
	missing   map[int64]bool  // checkpoints reported missing
	against   *Checkpoint     // Options.Against, opened
	coveredTo int64           // leaves below it are covered by a checkpoint checked
	uncovered time.Time       // the time of leaf coveredTo
	last      time.Time       // the latest event time seen
}

type stamp struct {
	tst []byte
	at  time.Time
}

func (a *auditor) report(p Problem) {
	a.sum.Problems++
	if a.o.Report != nil {
		a.o.Report(p)
	}
}

// entryName names a leaf in reports by its kind.
func (a *auditor) entryName(seq int64, e *AuditEntry) string {
	if e.Kind == LeafReceipt {
		return fmt.Sprintf("receipt %d (of evidence %s from another provider)", seq, e.ID)
	}
	return a.evidenceName(seq, e.ID)
}

func (a *auditor) evidenceName(seq int64, id string) string {
	if id == "" {
		return fmt.Sprintf("evidence %d", seq)
	}
	return fmt.Sprintf("evidence %d (id %s)", seq, id)
}

func (a *auditor) run() error {
	// The size of the log: the number of entries whose stored hashes are
	// all there, by the highest index.
	var count int64
	if err := a.q.QueryRow(a.ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_hashes`).Scan(&count); err != nil {
		return fmt.Errorf("tlog: audit: %w", err)
	}
	size := sizeBelow(count)
	if tlog.StoredHashCount(size) != count {
		a.report(Problem{Kind: ProblemHash, Seq: -1, Detail: fmt.Sprintf("the log's stored hashes end in the middle of entry %d (%d hashes, a whole tree of %d entries has %d): hashes were added or removed at the end",
			size, count, size, tlog.StoredHashCount(size))})
	}
	a.sum.Size = size
	for start := int64(0); start < size; start += int64(a.o.Chunk) {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		end := min(size, start+int64(a.o.Chunk))
		if err := a.chunk(start, end); err != nil {
			return err
		}
	}
	a.classify()
	a.coverage(size)
	if a.against != nil && a.against.Size > size {
		a.sum.Against++
		a.report(Problem{Kind: ProblemAgainst, Seq: -1, Size: a.against.Size, Detail: fmt.Sprintf(
			"the outside checkpoint of size %d: the log has only %d entries (entries or their hashes were removed)", a.against.Size, size)})
	}
	return a.tail(size)
}

// coverage reports the leaves [coveredTo, size) that no checkpoint covers
// (see AuditOptions.Interval).
func (a *auditor) coverage(size int64) {
	a.sum.Covered = a.coveredTo
	if a.o.Interval <= 0 || a.coveredTo >= size || a.uncovered.IsZero() {
		return
	}
	limit := UncoveredIntervals * a.o.Interval
	what := fmt.Sprintf("evidence %d to %d (%d entries, the first logged at %s)", a.coveredTo, size-1, size-a.coveredTo, a.uncovered.UTC().Format(time.RFC3339))
	switch {
	case a.last.Sub(a.uncovered) > limit:
		a.report(Problem{Kind: ProblemUncovered, Seq: a.coveredTo, Detail: fmt.Sprintf(
			"%s: no checkpoint covers them, though the log went on for %s after the first (more than %d checkpoint intervals of %s): the checkpoint that covered them was removed, or the node stopped making checkpoints",
			what, a.last.Sub(a.uncovered).Round(time.Second), UncoveredIntervals, a.o.Interval)})
	case len(a.seen) == 0 && a.o.Now().Sub(a.uncovered) > limit:
		a.report(Problem{Kind: ProblemUncovered, Seq: a.coveredTo, Detail: fmt.Sprintf(
			"%s: the store holds no checkpoint at all, %s after the first was logged (more than %d checkpoint intervals of %s): the checkpoints were removed, or the node never made one",
			what, a.o.Now().Sub(a.uncovered).Round(time.Second), UncoveredIntervals, a.o.Interval)})
	}
}

// sizeBelow returns the largest size whose stored hashes number at most count.
func sizeBelow(count int64) int64 {
	lo, hi := int64(0), count
	for lo < hi {
		mid := hi - (hi-lo)/2
		if tlog.StoredHashCount(mid) <= count {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// chunk audits leaves [start, end).
func (a *auditor) chunk(start, end int64) error {
	rows, err := a.read(a.ctx, start, end)
	if err != nil {
		return fmt.Errorf("tlog: audit: read evidence %d to %d: %w", start, end, err)
	}
	stored, err := readHashRange(a.ctx, a.q, tlog.StoredHashIndex(0, start), tlog.StoredHashIndex(0, end))
	if err != nil {
		return fmt.Errorf("tlog: audit: %w", err)
	}
	next := 0
	for seq := start; seq < end; seq++ {
		var e *AuditEntry
		for next < len(rows) && rows[next].Seq < seq {
			next++ // out of order or repeated: the reader's rows are sorted, so none
		}
		if next < len(rows) && rows[next].Seq == seq {
			e = &rows[next]
			next++
			a.sum.Evidence++
		}
		a.leaf(seq, e, stored)
		if err := a.checkpoints(); err != nil {
			return err
		}
		if a.against != nil && a.against.Size == a.n {
			a.outside()
		}
	}
	return nil
}

// leaf appends leaf seq to the recomputed tree and compares every stored
// hash it completes.
func (a *auditor) leaf(seq int64, e *AuditEntry, stored map[int64]Hash) {
	if e != nil && !e.Time.IsZero() {
		if seq >= a.coveredTo && a.uncovered.IsZero() {
			a.uncovered = e.Time
		}
		if e.Time.After(a.last) {
			a.last = e.Time
		}
	}
	idx := tlog.StoredHashIndex(0, seq)
	sh, haveStored := stored[idx]
	a.sum.Hashes++
	node := frontierNode{}
	switch {
	case e == nil:
		a.report(Problem{Kind: ProblemEvidenceMissing, Seq: seq, Detail: fmt.Sprintf("evidence %d: missing from the store, though the log has its entry (removed)", seq)})
		node = frontierNode{hash: sh, dirty: !haveStored} // go on with what the log says
	case e.Document == nil:
		detail := "its stored document cannot be read"
		if e.Err != nil {
			detail += ": " + e.Err.Error()
		}
		a.report(Problem{Kind: ProblemEvidenceChanged, Seq: seq, ID: e.ID, Detail: fmt.Sprintf("%s: %s", a.entryName(seq, e), detail)})
		node = frontierNode{hash: sh, dirty: !haveStored}
	default:
		if e.Err != nil {
			a.report(Problem{Kind: ProblemEvidenceRow, Seq: seq, ID: e.ID, Detail: fmt.Sprintf("%s: %v", a.entryName(seq, e), e.Err)})
		}
		entry := EntryFor(e.Document)
		node.hash = LeafHash(entry[:])
		if haveStored && sh != node.hash {
			node.dirty = true
			m := &leafMismatch{seq: seq, id: e.ID, doc: node.hash, stored: sh}
			if len(a.all) < maxMismatches {
				a.all = append(a.all, m)
				a.pending = append(a.pending, m)
			} else {
				a.report(Problem{Kind: ProblemEvidenceChanged, Seq: seq, ID: e.ID, Detail: fmt.Sprintf("%s: its document does not match its log hash", a.entryName(seq, e))})
			}
		}
	}
	if !haveStored {
		node.dirty = true
		a.report(a.missingHash(idx))
	}
	// Complete the subtrees leaf seq closes (RFC 6962 §2.1: a node is the
	// hash of its two children), comparing each with its stored hash.
	for level := 0; (seq>>level)&1 == 1; level++ {
		left := a.stack[len(a.stack)-1]
		a.stack = a.stack[:len(a.stack)-1]
		h := tlog.NodeHash(left.hash, node.hash)
		idx := tlog.StoredHashIndex(level+1, seq>>(level+1))
		sh, ok := stored[idx]
		a.sum.Hashes++
		switch {
		case !ok:
			a.report(a.missingHash(idx))
			node = frontierNode{hash: h, dirty: true}
		case sh == h:
			node = frontierNode{hash: h}
		case left.dirty || node.dirty:
			node = frontierNode{hash: h, dirty: true} // explained below: a leaf or hash under it
		default:
			a.report(Problem{Kind: ProblemHash, Seq: -1, Detail: fmt.Sprintf("stored log hash %d (level %d, node %d) was changed: it is not the hash of its two children",
				idx, level+1, seq>>(level+1))})
			node = frontierNode{hash: h} // the recomputed one is right
		}
	}
	a.stack = append(a.stack, node)
	a.n = seq + 1
}

func (a *auditor) missingHash(idx int64) Problem {
	level, n := tlog.SplitStoredHashIndex(idx)
	return Problem{Kind: ProblemHash, Seq: -1, Detail: fmt.Sprintf("stored log hash %d (level %d, node %d) is missing (removed)", idx, level, n)}
}

// root is the root hash of the recomputed tree of a.n leaves: the complete
// subtrees folded from the right (RFC 6962 §2.1).
func (a *auditor) root() Hash {
	if len(a.stack) == 0 {
		return Hash{}
	}
	h := a.stack[len(a.stack)-1].hash
	for i := len(a.stack) - 2; i >= 0; i-- {
		h = tlog.NodeHash(a.stack[i].hash, h)
	}
	return h
}

// checkpoints checks every checkpoint of size a.n, reading the next page
// of checkpoints (and their later time stamps) when needed.
func (a *auditor) checkpoints() error {
	for {
		if len(a.cps) == 0 {
			if a.cpDone || a.cpAfter >= a.n {
				return nil
			}
			if err := a.nextCheckpoints(); err != nil {
				return err
			}
			continue
		}
		cp := a.cps[0]
		if cp.Size > a.n {
			return nil
		}
		a.cps = a.cps[1:]
		if cp.Size == a.n {
			a.checkpoint(cp)
		}
	}
}

func (a *auditor) nextCheckpoints() error {
	rows, err := a.q.Query(a.ctx, `SELECT `+cpCols+` WHERE size > ? AND size <= ? ORDER BY size LIMIT 256`, a.cpAfter, a.sum.Size)
	if err != nil {
		return fmt.Errorf("tlog: audit: read checkpoints: %w", err)
	}
	var page []*Checkpoint
	for rows.Next() {
		// As scanCheckpoint, but a damaged root is a finding, not an error.
		var cp Checkpoint
		var root []byte
		var created, tstTime int64
		if err := rows.Scan(&cp.Size, &root, &cp.Note, &created, &cp.TST, &tstTime); err != nil {
			rows.Close()
			return fmt.Errorf("tlog: audit: read checkpoints: %w", err)
		}
		copy(cp.Root[:], root)
		if len(root) != len(cp.Root) {
			cp.Root = Hash{0xff} // differs from the signed root: reported as such
		}
		cp.CreatedAt, cp.TSTTime = store.FromMillis(created), store.FromMillis(tstTime)
		page = append(page, &cp)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(page) == 0 {
		a.cpDone = true
		return nil
	}
	last := page[len(page)-1].Size
	a.stamps = map[int64][]stamp{}
	srows, err := a.q.Query(a.ctx, `SELECT size, tst, tst_time FROM checkpoint_stamps WHERE size > ? AND size <= ? ORDER BY size, id`, a.cpAfter, last)
	if err != nil {
		return fmt.Errorf("tlog: audit: read time stamps: %w", err)
	}
	for srows.Next() {
		var size, at int64
		var tst []byte
		if err := srows.Scan(&size, &tst, &at); err != nil {
			srows.Close()
			return err
		}
		a.stamps[size] = append(a.stamps[size], stamp{tst, store.FromMillis(at)})
	}
	srows.Close()
	if err := srows.Err(); err != nil {
		return err
	}
	a.cps, a.cpAfter = page, last
	return nil
}

// outside compares the tree of the outside checkpoint's size with it.
func (a *auditor) outside() {
	a.sum.Against++
	cp := a.against
	if a.root() != cp.Root {
		a.report(Problem{Kind: ProblemAgainst, Seq: -1, Size: cp.Size, Detail: fmt.Sprintf(
			"the outside checkpoint of size %d: the tree recomputed from the evidence has another root (the log was rewritten since the auditor saw it)", cp.Size)})
	}
	if _, ok := a.seen[cp.Size]; !ok {
		a.checkpointMissing(cp.Size, "an outside auditor saved it")
	}
}

// checkpointMissing reports a checkpoint removed from the store, once
// however many things show it.
func (a *auditor) checkpointMissing(size int64, why string) {
	if a.missing[size] {
		return
	}
	a.missing[size] = true
	a.report(Problem{Kind: ProblemMissing, Seq: -1, Size: size, Detail: fmt.Sprintf(
		"checkpoint of size %d: missing from the store (removed), though %s", size, why)})
}

// link follows the link of a checkpoint (see Link) to the one before it.
func (a *auditor) link(cp *Checkpoint) {
	l, ok, err := CheckpointLink(cp.Note)
	if err != nil || !ok {
		return // made before links existed (a malformed line cannot be signed by us)
	}
	a.sum.Links++
	if l.Size == 0 {
		return
	}
	stamps, ok := a.seen[l.Size]
	switch {
	case !ok:
		a.checkpointMissing(l.Size, fmt.Sprintf("the checkpoint of size %d names it as the one before it", cp.Size))
	case stamps < l.Stamps:
		a.report(Problem{Kind: ProblemMissing, Seq: -1, Size: l.Size, Detail: fmt.Sprintf(
			"checkpoint of size %d: %d of its later time stamps are missing (removed): the store has %d, the checkpoint of size %d says it had %d",
			l.Size, l.Stamps-stamps, stamps, cp.Size, l.Stamps)})
	}
}

// checkpoint checks one checkpoint against the recomputed tree of its size.
func (a *auditor) checkpoint(cp *Checkpoint) {
	a.sum.Checkpoints++
	a.seen[cp.Size] = int64(len(a.stamps[cp.Size]))
	name := fmt.Sprintf("checkpoint of size %d", cp.Size)
	bad := func(kind ProblemKind, format string, args ...any) {
		a.report(Problem{Kind: kind, Seq: -1, Size: cp.Size, Detail: name + ": " + fmt.Sprintf(format, args...)})
	}
	a.stamp(cp, cp.TST, cp.TSTTime, "its time stamp")
	for i, s := range a.stamps[cp.Size] {
		a.stamp(cp, s.tst, s.at, fmt.Sprintf("its later time stamp %d", i+1))
	}
	_, size, root, err := OpenCheckpoint(cp.Note, a.o.VerifierKey)
	if err != nil {
		bad(ProblemCheckpoint, "its note does not verify with the log key: %v", err)
		return
	}
	if size != cp.Size {
		bad(ProblemCheckpoint, "its signed note is of size %d", size)
		return
	}
	if root != cp.Root {
		bad(ProblemCheckpoint, "its root column differs from the root its signed note states")
	}
	a.link(cp)
	a.coveredTo, a.uncovered = cp.Size, time.Time{}
	// A trustworthy root: it tells, for the leaves it covers, whether the
	// document or the stored hash of a mismatch was changed.
	for _, m := range a.pending {
		m.cpSize, m.cpRoot = size, root
	}
	a.pending = a.pending[:0]
	if a.root() == root {
		return
	}
	// The evidence differs from what was signed. When the stored hashes
	// still lead to the signed root, the changed evidence is reported on
	// its own; otherwise the checkpoint agrees with nothing.
	if stored, err := TreeHash(a.ctx, a.q, size); err == nil && stored == root {
		return
	}
	bad(ProblemCheckpoint, "its signed root matches neither the tree recomputed from the evidence nor the stored log hashes")
}

// stamp verifies one time stamp over a checkpoint's note.
func (a *auditor) stamp(cp *Checkpoint, resp []byte, column time.Time, what string) {
	if a.o.TSARoots == nil {
		return
	}
	a.sum.Stamps++
	bad := func(format string, args ...any) {
		a.report(Problem{Kind: ProblemTimestamp, Seq: -1, Size: cp.Size, Detail: fmt.Sprintf("checkpoint of size %d: %s ", cp.Size, what) + fmt.Sprintf(format, args...)})
	}
	tok, err := tsa.ParseResponse(resp)
	if err != nil {
		bad("cannot be read: %v", err)
		return
	}
	if err := tok.VerifyData(cp.Note, a.o.TSARoots, nil); err != nil {
		bad("does not verify: %v", err)
		return
	}
	if !tok.Time.Truncate(time.Millisecond).Equal(column) {
		bad("says %s, the database %s", tok.Time.Format(time.RFC3339Nano), column.Format(time.RFC3339Nano))
	}
}

// classify reports each leaf mismatch as what it is: a row holding another
// leaf's document, a changed document, or a changed stored hash, telling
// the last two apart with the audit path to the first valid checkpoint
// that covers the leaf.
func (a *auditor) classify() {
	byStored := map[Hash]int64{}
	for _, m := range a.all {
		byStored[m.stored] = m.seq
	}
	sort.Slice(a.all, func(i, j int) bool { return a.all[i].seq < a.all[j].seq })
	for _, m := range a.all {
		ev := a.evidenceName(m.seq, m.id)
		p := Problem{Kind: ProblemEvidenceChanged, Seq: m.seq, ID: m.id}
		if j, ok := byStored[m.doc]; ok && j != m.seq {
			p.Kind, p.Detail = ProblemEvidenceMoved, fmt.Sprintf("%s: holds the document logged at leaf %d (rows were reordered or renumbered)", ev, j)
			a.report(p)
			continue
		}
		if m.cpSize == 0 {
			p.Detail = fmt.Sprintf("%s: its document does not match its log hash; no checkpoint covers it yet, so which of the two was changed cannot be told", ev)
			a.report(p)
			continue
		}
		proof, err := ProveInclusion(a.ctx, a.q, m.seq, m.cpSize)
		switch {
		case err == nil && tlog.CheckRecord(proof, m.cpSize, m.cpRoot, m.seq, m.stored) == nil:
			p.Detail = fmt.Sprintf("%s: its document does not match the log (changed after it was logged)", ev)
		case err == nil && tlog.CheckRecord(proof, m.cpSize, m.cpRoot, m.seq, m.doc) == nil:
			p.Kind, p.Detail = ProblemHash, fmt.Sprintf("stored log hash %d, the leaf of %s, was changed: the evidence matches the checkpoint of size %d, the stored hash does not",
				tlog.StoredHashIndex(0, m.seq), ev, m.cpSize)
		default:
			p.Detail = fmt.Sprintf("%s: its document does not match its log hash, and the stored hashes around it do not lead to the checkpoint of size %d either", ev, m.cpSize)
		}
		a.report(p)
	}
}

// tail looks past the audited size, for evidence rows and checkpoints the
// log does not account for. The node may be appending meanwhile: a row or
// checkpoint is reported only when it is beyond the log's size read after it.
func (a *auditor) tail(size int64) error {
	var count int64
	if err := a.q.QueryRow(a.ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_hashes`).Scan(&count); err != nil {
		return err
	}
	from := max(size, sizeBelow(count))
	rows, err := a.read(a.ctx, from, math.MaxInt64)
	if err != nil {
		return fmt.Errorf("tlog: audit: read evidence after %d: %w", from, err)
	}
	// Later time stamps over a checkpoint the store lacks: the checkpoint
	// was removed with the foreign key checks off.
	orows, err := a.q.Query(a.ctx, `SELECT size, COUNT(*) FROM checkpoint_stamps WHERE size NOT IN (SELECT size FROM checkpoints) GROUP BY size ORDER BY size`)
	if err != nil {
		return err
	}
	type orphan struct{ size, n int64 }
	var orphans []orphan
	for orows.Next() {
		var o orphan
		if err := orows.Scan(&o.size, &o.n); err != nil {
			orows.Close()
			return err
		}
		orphans = append(orphans, o)
	}
	orows.Close()
	if err := orows.Err(); err != nil {
		return err
	}
	for _, o := range orphans {
		a.checkpointMissing(o.size, fmt.Sprintf("%d later time stamps over it remain", o.n))
	}
	var cps []int64
	crows, err := a.q.Query(a.ctx, `SELECT size FROM checkpoints WHERE size > ? OR size < 1 ORDER BY size`, from)
	if err != nil {
		return err
	}
	for crows.Next() {
		var s int64
		if err := crows.Scan(&s); err != nil {
			crows.Close()
			return err
		}
		cps = append(cps, s)
	}
	crows.Close()
	if err := crows.Err(); err != nil {
		return err
	}
	if err := a.q.QueryRow(a.ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_hashes`).Scan(&count); err != nil {
		return err
	}
	now := sizeBelow(count)
	for _, e := range rows {
		if e.Seq >= now {
			a.report(Problem{Kind: ProblemEvidenceExtra, Seq: e.Seq, ID: e.ID, Detail: fmt.Sprintf("%s: not in the log (added behind its back)", a.evidenceName(e.Seq, e.ID))})
		}
	}
	for _, s := range cps {
		if s > now || s < 1 {
			a.report(Problem{Kind: ProblemCheckpoint, Seq: -1, Size: s, Detail: fmt.Sprintf("checkpoint of size %d: the log has %d entries", s, now)})
		}
	}
	return nil
}

// readHashRange reads the stored hashes with indexes in [lo, hi).
func readHashRange(ctx context.Context, q store.Querier, lo, hi int64) (map[int64]Hash, error) {
	rows, err := q.Query(ctx, `SELECT idx, hash FROM tlog_hashes WHERE idx >= ? AND idx < ?`, lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]Hash, hi-lo)
	for rows.Next() {
		var x int64
		var h []byte
		if err := rows.Scan(&x, &h); err != nil {
			return nil, err
		}
		if len(h) != tlog.HashSize {
			out[x] = Hash{} // a damaged row: compares unequal to any real hash
			continue
		}
		out[x] = Hash(h)
	}
	return out, rows.Err()
}
