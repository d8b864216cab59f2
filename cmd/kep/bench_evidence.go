package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kephs/kep/config"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/provider"
)

func cmdBenchEvidence(ctx context.Context, args []string) error {
	f := newFlags("bench evidence", "[--duration 60s] [-c 256] [--dsn DSN]")
	duration := f.Duration("duration", 60*time.Second, "how long to issue evidence")
	count := f.Int("n", 0, "issue exactly this many evidences instead (e.g. 100000 for the storage figure)")
	c := f.Int("c", 256, "concurrent issuers")
	dsn := f.String("dsn", "", "database (default: SQLite in a temporary directory, fsync on every commit)")
	keep := f.Bool("keep", false, "keep the temporary directory")
	if err := f.parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kep-bench-evidence-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	cfg, err := provider.Init(filepath.Join(dir, "p"), provider.InitOptions{Provider: "hs01", Config: func(c *config.Config) {
		if *dsn != "" {
			c.Store.DSN = *dsn
		}
	}})
	if err != nil {
		return err
	}
	n, err := provider.Open(ctx, cfg, provider.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer n.Close()
	sizeBefore := dbBytes(n, cfg)
	sample := func() *evidence.Evidence {
		d := make([]byte, 32)
		rand.Read(d)
		now := time.Now().UTC()
		return &evidence.Evidence{Code: evidence.Delivered, EventTime: now, SubmissionTime: now,
			Sender:     evidence.Party{Address: "ayse.yilmaz@hs01.kep.tr", Identity: "TCKN:10000000146", Name: "Ayşe Yılmaz"},
			Recipients: []evidence.Party{{Address: "mehmet.ozturk@hs01.kep.tr", Identity: "TCKN:10000000078", Name: "Mehmet Öztürk"}},
			Message: evidence.Message{MessageID: "<" + evidence.NewID() + "@client>", IletiID: evidence.NewID(), IletiTip: evidence.IletiTipStandart,
				DigestAlgorithm: evidence.DigestSHA256, Digest: d, Size: 10240},
			RelatedEvidence: evidence.NewID()}
	}
	var issued, failed atomic.Int64
	deadline := time.Now().Add(*duration)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if *count > 0 {
					if issued.Add(1) > int64(*count) {
						issued.Add(-1)
						return
					}
				} else if time.Now().After(deadline) {
					return
				}
				rec := &evidence.Record{Evidence: sample(), Subject: "mehmet.ozturk@hs01.kep.tr"}
				if err := n.Issuer.Issue(ctx, []*evidence.Record{rec}, nil); err != nil {
					failed.Add(1)
					if *count > 0 {
						issued.Add(-1)
					}
					continue
				}
				if *count == 0 {
					issued.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	cp, err := n.Checkpoint(ctx)
	if err != nil {
		return err
	}
	total := issued.Load()
	fmt.Printf("kep bench evidence: %d evidences in %.1f s with %d issuers: %.0f/s (sign ECDSA P-256, append, commit with fsync)\n",
		total, secs, *c, float64(total)/secs)
	fmt.Printf("  log: %d batches, %.1f evidences per commit; checkpoint of size %d\n", n.Log.Batches, float64(n.Log.Appended)/float64(max(1, n.Log.Batches)), cp.Size)
	if failed.Load() > 0 {
		fmt.Printf("  %d failed\n", failed.Load())
	}
	if n.DB.Dialect == "sqlite" {
		after := dbBytes(n, cfg)
		fmt.Printf("  stored: %.0f bytes per evidence (database growth %d bytes over %d evidences: rows, indexes, log hashes)\n",
			float64(after-sizeBefore)/float64(total), after-sizeBefore, total)
	}
	return nil
}

// dbBytes is the size of the SQLite database after folding the WAL in.
func dbBytes(n *provider.Node, cfg *config.Config) int64 {
	n.DB.ExecContext(context.Background(), `PRAGMA wal_checkpoint(TRUNCATE)`)
	path := cfg.DSN()[len("sqlite:"):]
	var total int64
	for _, p := range []string{path, path + "-wal"} {
		if st, err := os.Stat(p); err == nil {
			total += st.Size()
		}
	}
	return total
}
