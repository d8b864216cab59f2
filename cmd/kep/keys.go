package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/kephs/kep/provider"
)

// The provider's own keys (issue 9.3): their state, and their rotation
// (docs/deployment.md, "Key rotation").

func cmdKeysRotate(ctx context.Context, args []string) error {
	f := newFlags("keys rotate", "--which provider|log [--cert NEW.crt --key NEW.key] [--config FILE | --dir DIR]")
	load := configFlags(f)
	which := f.String("which", "", "the key to rotate: provider (evidence, envelope and TLS certificate) or log (checkpoint signing key)")
	cert := f.String("cert", "", "provider: the new certificate (leaf first, then its chain) from the provider's CA; default: issued by the development provider CA")
	key := f.String("key", "", "provider: the new certificate's private key")
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
	r, err := provider.Rotate(cfg, provider.RotateOptions{Which: *which, CertFile: *cert, KeyFile: *key})
	if err != nil {
		return err
	}
	fmt.Printf("rotated the %s key\n  new:      %s\n  due:      %s\n", r.Which, r.New, r.NotAfter.Format(time.DateOnly))
	for _, p := range r.Retired {
		fmt.Printf("  retired:  %s\n", p)
	}
	fmt.Println("Restart the node (kep serve) to sign with the new key. Then publish it:")
	switch r.Which {
	case provider.RotateLog:
		fmt.Println("  keys/log.pub now holds every log key (new first): give it to verifiers (kep verify --log-key)")
		fmt.Println("  and register the new key in the provider directory: kep authority add --log-key @keys/log-current.pub")
	case provider.RotateProvider:
		fmt.Println("  register the new certificate in the provider directory (kep authority), and give verifiers its CA.")
	}
	fmt.Println("Destroy the retired private key once the node runs on the new one.")
	return nil
}

func cmdKeysStatus(ctx context.Context, args []string) error {
	f := newFlags("keys status", "[--config FILE | --dir DIR]")
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
	w, err := provider.WatchKeys(cfg, time.Now, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		return err
	}
	bad := false
	for _, st := range w.Status(time.Now()) {
		state, due := "ok", "no end"
		if !st.Valid {
			state, bad = "NOT VALID", true
		}
		if !st.NotAfter.IsZero() {
			due = st.NotAfter.Format(time.RFC3339)
		}
		fmt.Printf("%-9s %-10s due %-20s %s\n", st.Key, state, due, st.Detail)
	}
	if bad {
		return &exitError{code: 1}
	}
	return nil
}
