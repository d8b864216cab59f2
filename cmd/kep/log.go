package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kephs/kep/audit"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

// logKeyFlag adds --log-key: the log's verifier key, or a file holding it.
// By default the key is derived from the configured signing key.
func logKeyFlag(f *flags) func(cfg *config.Config) (string, error) {
	v := f.String("log-key", "", "the log's verifier key, or a file holding it (default: derived from keys.log_key)")
	return func(cfg *config.Config) (string, error) {
		if *v == "" {
			_, vkey, err := tlog.LoadSigner(cfg.Path(cfg.Keys.LogKey))
			if err != nil {
				return "", fmt.Errorf("keys.log_key: %w (or give --log-key)", err)
			}
			return vkey, nil
		}
		if b, err := os.ReadFile(*v); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		return *v, nil
	}
}

// tsaRoots loads the configured time-stamping trust anchors.
func tsaRoots(cfg *config.Config) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, p := range cfg.Paths(cfg.TSA.TrustAnchors) {
		certs, err := pki.LoadCertsPEM(p)
		if err != nil {
			return nil, fmt.Errorf("tsa.trust_anchors: %w", err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

func cmdLogVerify(ctx context.Context, args []string) error {
	f := newFlags("log verify", "[--config FILE | --dir DIR] [--log-key KEY] [--against CHECKPOINT] [--originals full|sample|none]")
	load := configFlags(f)
	key := logKeyFlag(f)
	chunk := f.Int("chunk", 1000, "evidence rows read at a time")
	against := f.String("against", "", "a signed checkpoint saved by an outside auditor (GET /log/checkpoint): the log must still have it and agree with it")
	originals := f.String("originals", "sample", "originals checked against their digests in the content store: full (all), sample (--sample at random) or none")
	sample := f.Int("sample", 100, "how many originals --originals sample checks")
	if err := f.parse(args); err != nil {
		return err
	}
	if _, err := f.args(0, "no arguments"); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	vkey, err := key(cfg)
	if err != nil {
		return err
	}
	roots, err := tsaRoots(cfg)
	if err != nil {
		return err
	}
	var outside []byte
	if *against != "" {
		if outside, err = os.ReadFile(*against); err != nil {
			return fmt.Errorf("--against: %w", err)
		}
	}
	if *originals != "full" && *originals != "sample" && *originals != "none" {
		return fmt.Errorf("--originals %q: say full, sample or none", *originals)
	}
	db, err := store.Open(ctx, cfg.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	blobs, err := blob.Open(cfg.Path(cfg.Store.ContentDir))
	if err != nil {
		return err
	}
	interval := cfg.Log.CheckpointInterval.Duration
	if interval <= 0 {
		interval = 2 * time.Second // as the node does
	}
	byKind := map[string]int64{}
	sum, err := tlog.Audit(ctx, db, tlog.MergeAuditReaders(audit.EvidenceRows(db.Q()), func(ctx context.Context, start, end int64) ([]tlog.AuditEntry, error) {
		return mailbox.ForeignAuditEntries(ctx, db.Q(), start, end) // receipts of evidence returned by other providers
	}), tlog.AuditOptions{VerifierKey: vkey, TSARoots: roots, Chunk: *chunk,
		Against: outside, Interval: interval,
		Report: func(p tlog.Problem) { byKind[string(p.Kind)]++; fmt.Println(p) }})
	if err != nil {
		return err
	}
	var ss audit.Summary
	report := func(p audit.Problem) { byKind[p.Kind]++; fmt.Println(p) }
	if err := audit.Messages(ctx, db.Q(), &ss, report); err != nil {
		return fmt.Errorf("audit messages: %w", err)
	}
	if err := audit.Originals(ctx, db.Q(), blobs, *originals, *sample, &ss, report); err != nil {
		return fmt.Errorf("audit originals: %w", err)
	}
	// What was checked, per kind, so that "sound" is never said over
	// nothing.
	fmt.Printf("checked: %s\n", sum)
	fmt.Printf("checked: %d message rows and %d delivery rows against their evidence; %d of %d originals against their digests (--originals %s)\n",
		ss.Messages, ss.Deliveries, ss.Originals, ss.OriginalsOf, *originals)
	problems := int64(0)
	var kinds []string
	for k, n := range byKind {
		problems += n
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	switch {
	case problems > 0:
		fmt.Printf("problems by kind: %s\n", strings.Join(kinds, ", "))
		fmt.Printf("the log is NOT sound: %d problems\n", problems)
		return &exitError{code: 1, msg: fmt.Sprintf("%d problems found", problems)}
	case sum.Size == 0 && ss.Messages == 0:
		fmt.Println("the log is empty: nothing to check")
		return nil
	}
	fmt.Printf("the log is sound: %d entries, root %x\n", sum.Size, sum.Root[:])
	return nil
}

func cmdLogConsistency(ctx context.Context, args []string) error {
	f := newFlags("log consistency", "OLD NEW  (each a stored checkpoint's size, or a file holding a signed checkpoint)")
	load := configFlags(f)
	key := logKeyFlag(f)
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(2, "OLD and NEW")
	if err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	vkey, err := key(cfg)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	type point struct {
		size int64
		root tlog.Hash
	}
	open := func(arg string) (point, error) {
		var signed []byte
		if n, err := strconv.ParseInt(arg, 10, 64); err == nil {
			cp, err := tlog.GetCheckpoint(ctx, db.Q(), n)
			if errors.Is(err, store.ErrNotFound) {
				return point{}, fmt.Errorf("no checkpoint of size %d is stored", n)
			}
			if err != nil {
				return point{}, err
			}
			signed = cp.Note
		} else if signed, err = os.ReadFile(arg); err != nil {
			return point{}, err
		}
		_, size, root, err := tlog.OpenCheckpoint(signed, vkey)
		if err != nil {
			return point{}, fmt.Errorf("%s: %w", arg, err)
		}
		return point{size, root}, nil
	}
	old, err := open(pos[0])
	if err != nil {
		return err
	}
	cur, err := open(pos[1])
	if err != nil {
		return err
	}
	fail := func(format string, a ...any) error {
		return &exitError{code: 1, msg: fmt.Sprintf("the checkpoint of size %d does NOT extend the checkpoint of size %d: ", cur.size, old.size) + fmt.Sprintf(format, a...)}
	}
	switch {
	case cur.size < old.size:
		return fail("it is smaller")
	case cur.size == old.size:
		if cur.root != old.root {
			return fail("same size, different root hashes: the log forked")
		}
		fmt.Printf("the checkpoints are of the same tree (size %d, root %x)\n", cur.size, cur.root[:])
		return nil
	}
	proof, err := tlog.ProveConsistency(ctx, db.Q(), old.size, cur.size)
	if err != nil {
		return fail("no consistency proof from this store: %v", err)
	}
	if err := tlog.CheckConsistency(proof, cur.size, cur.root, old.size, old.root); err != nil {
		return fail("%v", err)
	}
	fmt.Printf("the checkpoint of size %d extends the checkpoint of size %d: consistency proof of %d hashes verified\n", cur.size, old.size, len(proof))
	return nil
}

func cmdLogCheckpoint(ctx context.Context, args []string) error {
	f := newFlags("log checkpoint", "[--config FILE | --dir DIR]")
	load := configFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if _, err := f.args(0, "no arguments"); err != nil {
		return err
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	cp, err := tlog.LatestCheckpoint(ctx, n.DB.Q())
	if errors.Is(err, store.ErrNotFound) {
		return errors.New("the log has no checkpoint yet")
	}
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(cp.Note)
	return err
}

func cmdLogRetimestamp(ctx context.Context, args []string) error {
	f := newFlags("log retimestamp", "[--config FILE | --dir DIR]")
	load := configFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if _, err := f.args(0, "no arguments"); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	n, err := provider.Open(ctx, cfg, provider.Options{})
	if err != nil {
		return err
	}
	defer n.Close()
	cp, at, err := n.Checkpointer.Retimestamp(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("checkpoint of size %d re-time-stamped at %s\n", cp.Size, at.UTC().Format(time.RFC3339Nano))
	return nil
}

func cmdLogProof(ctx context.Context, args []string) error {
	f := newFlags("log proof", "SEQ  (an evidence's leaf index)")
	load := configFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one SEQ")
	if err != nil {
		return err
	}
	seq, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || seq < 0 {
		return fmt.Errorf("SEQ %q is not a leaf index", pos[0])
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	cp, err := tlog.LatestCheckpoint(ctx, n.DB.Q())
	if errors.Is(err, store.ErrNotFound) {
		return errors.New("the log has no checkpoint yet")
	}
	if err != nil {
		return err
	}
	if seq >= cp.Size {
		return fmt.Errorf("evidence %d is not in the latest checkpoint (size %d) yet", seq, cp.Size)
	}
	proof, err := tlog.ProveInclusion(ctx, n.DB.Q(), seq, cp.Size)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(evidence.FormatProof(seq, cp.Size, proof))
	return err
}
