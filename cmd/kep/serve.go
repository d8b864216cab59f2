package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"

	"github.com/kephs/kep/node"
	"github.com/kephs/kep/provider"
)

func cmdServe(ctx context.Context, args []string) error {
	f := newFlags("serve", "--config FILE")
	load := configFlags(f)
	verbose := f.Bool("v", false, "log every accepted and rejected message")
	if err := f.parse(args); err != nil {
		return err
	}
	serverProcs()
	cfg, err := load()
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	r, err := node.Open(ctx, cfg, provider.Options{Logger: logger})
	if err != nil {
		return err
	}
	e := r.Endpoints
	fmt.Printf("kep: %s serving\n  SMTP submission  %s (STARTTLS), %s (TLS)\n", cfg.Provider.Domain, e.Submission, e.Submissions)
	fmt.Printf("  IMAP             %s (STARTTLS), %s (TLS)\n", e.IMAP, e.IMAPS)
	fmt.Printf("  HTTPS            https://%s/log/checkpoint\n", e.HTTPS)
	if e.Metrics != "" {
		fmt.Printf("  metrics          http://%s/metrics, /healthz\n", e.Metrics)
	}
	<-ctx.Done()
	return r.Close()
}

// serverProcs gives a provider's process two more Ps (GOMAXPROCS) than
// the CPUs it may use, unless GOMAXPROCS is set. Its file I/O — SQLite's
// reads, writes and the fsync of every group commit, the fdatasync of the
// content store's packs — are system calls that block a thread, and a
// goroutine coming back from one needs a free P to go on: with exactly one
// P per CPU it waited in the run queue, and the log's sequencer, which
// every message waits for, came back from each commit's fsync to the end
// of that queue. Measured with kep bench (10,000 messages, 32 sessions,
// alternating runs on 2 CPUs, docs/deployment.md): 4 Ps instead of 2 gave
// 1050–1200 delivered/s instead of 970–1090 and p99 53–59 ms instead of
// 58–71; 8 were no better than 4.
func serverProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 2)
	}
}
