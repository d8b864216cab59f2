package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

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
