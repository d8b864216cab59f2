package provider

import (
	"bytes"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/evidence"
)

// TestKeyWatchWarnings walks a clock towards the end of each kind of key
// and checks that each threshold (30 days, 7 days, invalid) is logged once
// at its crossing, at warn level, then error, and that only the provider
// and TSA keys stop the issuer (issue 9.3).
func TestKeyWatchWarnings(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, key := range []string{KeyProvider, KeyTSA, KeyLog} {
		t.Run(key, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewKeyWatch(func() time.Time { return t0 }, slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
			end := t0.Add(40 * day)
			if key == KeyLog {
				w.SetNotAfter(key, "log key", end)
			} else {
				w.SetCert(key, key+" certificate", &x509.Certificate{NotBefore: t0.Add(-day), NotAfter: end.Add(day)},
					[]*x509.Certificate{{NotBefore: t0.Add(-2 * day), NotAfter: end}}) // the chain ends first
			}
			steps := []struct {
				at    time.Duration
				warns int // warn lines so far
				errs  int // error lines so far
				valid bool
			}{
				{0, 0, 0, true},
				{9 * day, 0, 0, true},
				{10*day + time.Second, 1, 0, true}, // 30 days left
				{11 * day, 1, 0, true},             // not again
				{20 * day, 1, 0, true},
				{33*day + time.Second, 2, 0, true}, // 7 days left
				{33*day + time.Hour, 2, 0, true},
				{40 * day, 2, 1, false}, // ended
				{40*day + time.Minute, 2, 1, false},
				{41 * day, 2, 1, false},
			}
			for _, s := range steps {
				now := t0.Add(s.at)
				for range 3 { // a check per tick, a Ready per evidence: one line per crossing
					w.Check(now)
					w.Ready(now)
				}
				warns, errs := strings.Count(buf.String(), "level=WARN"), strings.Count(buf.String(), "level=ERROR")
				if warns != s.warns || errs != s.errs {
					t.Fatalf("at +%s: %d warnings and %d errors, want %d and %d:\n%s", s.at, warns, errs, s.warns, s.errs, buf.String())
				}
				st := w.Status(now)
				if len(st) != 1 || st[0].Valid != s.valid && key != KeyTSA {
					t.Fatalf("at +%s: status %+v, want valid %v", s.at, st, s.valid)
				}
				err := w.Ready(now)
				var nr *evidence.NotReadyError
				switch {
				case key == KeyLog || s.valid || key == KeyTSA && now.Sub(end) <= time.Hour:
					// The log key alarms but does not stop the issuer; an
					// expired TSA certificate is an outage, tolerated.
					if err != nil {
						t.Fatalf("at +%s: Ready = %v, want nil", s.at, err)
					}
				case !errors.As(err, &nr) || !errors.Is(err, evidence.ErrNotReady) || nr.Key != key || !strings.Contains(nr.Reason, "expired at "+end.Format(time.RFC3339)):
					t.Fatalf("at +%s: Ready = %v, want a NotReadyError naming %s and its end", s.at, err, key)
				}
			}
		})
	}
}

// TestKeyWatchTSAOutage: failures within the tolerance leave the issuer
// ready and are logged once; past it the issuer stops, logged once at
// error level; a successful stamp ends the outage.
func TestKeyWatchTSAOutage(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	w := NewKeyWatch(func() time.Time { return t0 }, slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	fail := errors.New("connection refused")
	for _, s := range []struct {
		at          time.Duration
		failed      bool // a stamp fails at this time (else nothing happens)
		stamped     bool
		ready       bool
		warns, errs int
	}{
		{0, false, false, true, 0, 0},
		{time.Second, true, false, true, 1, 0},
		{2 * time.Second, true, false, true, 1, 0},
		{59 * time.Minute, true, false, true, 1, 0},
		{time.Hour + 2*time.Second, true, false, false, 1, 1},
		{2 * time.Hour, true, false, false, 1, 1},
		{3 * time.Hour, false, true, true, 1, 1},
		{4 * time.Hour, true, false, true, 2, 1}, // a new outage, a new warning
	} {
		now := t0.Add(s.at)
		if s.failed {
			w.StampFailed(now, fail)
		}
		if s.stamped {
			w.Stamped(now)
		}
		err := w.Ready(now)
		if (err == nil) != s.ready {
			t.Fatalf("at +%s: Ready = %v, want ready %v", s.at, err, s.ready)
		}
		if err != nil && !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("at +%s: %v does not name the cause", s.at, err)
		}
		warns, errs := strings.Count(buf.String(), "level=WARN"), strings.Count(buf.String(), "level=ERROR")
		if warns != s.warns || errs != s.errs {
			t.Fatalf("at +%s: %d warnings and %d errors, want %d and %d:\n%s", s.at, warns, errs, s.warns, s.errs, buf.String())
		}
	}
}

// TestKeyWatchNotYetValid: a provider certificate whose chain starts later
// than now stops the issuer, naming the start.
func TestKeyWatchNotYetValid(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	w := NewKeyWatch(func() time.Time { return t0 }, slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	w.SetCert(KeyProvider, "provider certificate", &x509.Certificate{NotBefore: t0.Add(-time.Hour), NotAfter: t0.AddDate(1, 0, 0)},
		[]*x509.Certificate{{NotBefore: t0.Add(time.Hour), NotAfter: t0.AddDate(2, 0, 0)}})
	for _, c := range []struct {
		at    time.Duration
		ready bool
	}{{0, false}, {time.Minute, false}, {time.Hour, true}} {
		err := w.Ready(t0.Add(c.at))
		if (err == nil) != c.ready || err != nil && !strings.Contains(err.Error(), "not valid before "+t0.Add(time.Hour).Format(time.RFC3339)) {
			t.Fatalf("at +%s: Ready = %v, want ready %v", c.at, err, c.ready)
		}
	}
	if n := strings.Count(buf.String(), "level=ERROR"); n != 1 {
		t.Fatalf("%d error lines, want 1:\n%s", n, buf.String())
	}
}
