package provider_test

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kephs/kep/config"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
	"github.com/kephs/kep/tlog"
	"github.com/kephs/kep/tsa"
)

// issue issues one acceptance evidence on n and returns its record.
func issue(t *testing.T, n *provider.Node) (*evidence.Record, error) {
	t.Helper()
	now := n.Now()
	e := &evidence.Evidence{Code: evidence.Accepted, SubmissionTime: now,
		SenderAuthentication: evidence.Authentication{Method: evidence.AuthSMTPCMS, Time: now},
		Sender:               evidence.Party{Address: "ayse.yilmaz@hs01.kep.tr"},
		Recipients:           []evidence.Party{{Address: "mehmet.ozturk@hs01.kep.tr"}},
		Message: evidence.Message{MessageID: "<1@client>", IletiID: evidence.NewID(), IletiTip: evidence.IletiTipStandart,
			DigestAlgorithm: evidence.DigestSHA256, Digest: make([]byte, 32), Size: 100}}
	rec := &evidence.Record{Evidence: e}
	return rec, n.Issuer.Issue(context.Background(), []*evidence.Record{rec}, nil)
}

func mustIssue(t *testing.T, n *provider.Node) *evidence.Record {
	t.Helper()
	rec, err := issue(t, n)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func count(t *testing.T, q store.Querier, table string) int {
	t.Helper()
	var c int
	if err := q.QueryRow(context.Background(), `SELECT COUNT(*) FROM `+table).Scan(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTSAOutage runs a node against an RFC 3161 TSA over HTTP that goes
// down: within tsa.outage_tolerance evidence is issued and the checkpoint
// waits; past it the issuer refuses (evidence.ErrNotReady, which the access
// point answers with 451); when the TSA is back the waiting evidence is
// checkpointed and stamped, and issuing resumes (issue 9.3).
func TestTSAOutage(t *testing.T) {
	for _, d := range storetest.Backends(t) {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			clock := providertest.NewClock(time.Now().UTC().Truncate(time.Millisecond))
			var down atomic.Bool
			var tsaSrv atomic.Pointer[tsa.Server]
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if down.Load() {
					http.Error(w, "maintenance", http.StatusServiceUnavailable)
					return
				}
				tsaSrv.Load().ServeHTTP(w, r)
			}))
			defer hs.Close()
			dir := t.TempDir()
			cfg, err := provider.Init(dir, provider.InitOptions{Provider: "hs01", Config: func(c *config.Config) {
				c.Store.DSN = storetest.DSN(t, d)
				c.TSA.URL = hs.URL
				c.TSA.OutageTolerance = config.Duration{Duration: time.Hour}
			}})
			if err != nil {
				t.Fatal(err)
			}
			is, err := pki.LoadIssued(cfg.Path("keys/tsa.crt"), cfg.Path("keys/tsa.key"))
			if err != nil {
				t.Fatal(err)
			}
			srv, err := tsa.NewServer(is, provider.DevTSAPolicy, clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			tsaSrv.Store(srv)
			n, err := provider.Open(ctx, cfg, provider.Options{Now: clock.Now, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()

			mustIssue(t, n)
			if _, err := n.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			down.Store(true)
			outage := clock.Now()
			mustIssue(t, n) // within the tolerance: accepted
			var se *provider.StampError
			if _, err := n.Checkpoint(ctx); !errors.As(err, &se) {
				t.Fatalf("checkpoint with the TSA down: %v, want a StampError", err)
			}
			clock.Advance(30 * time.Minute)
			mustIssue(t, n)
			n.Checkpoint(ctx)
			if cp, _ := tlog.LatestCheckpoint(ctx, n.DB.Q()); cp.Size != 1 {
				t.Fatalf("a checkpoint of %d was made with the TSA down", cp.Size)
			}
			clock.Advance(31 * time.Minute) // past the tolerance
			n.Checkpoint(ctx)
			before := count(t, n.DB.Q(), "evidence")
			_, err = issue(t, n)
			var nr *evidence.NotReadyError
			if !errors.As(err, &nr) || !errors.Is(err, evidence.ErrNotReady) || nr.Key != provider.KeyTSA || !strings.Contains(nr.Reason, "503") {
				t.Fatalf("issue past the tolerance: %v, want a NotReadyError of the tsa naming the cause", err)
			}
			if got := count(t, n.DB.Q(), "evidence"); got != before {
				t.Fatalf("%d evidences after a refused issue, want %d", got, before)
			}
			down.Store(false)
			clock.Advance(time.Minute)
			cp, err := n.Checkpoint(ctx)
			if err != nil || cp == nil || cp.Size != 3 {
				t.Fatalf("checkpoint with the TSA back: %+v, %v; want one covering the 3 evidences", cp, err)
			}
			if !cp.TSTTime.After(outage.Add(time.Hour)) {
				t.Fatalf("stamped at %s: want after the outage", cp.TSTTime)
			}
			mustIssue(t, n) // issuing resumes
		})
	}
}

// TestRotation rotates the log key and the provider certificate of a node
// with evidence, reopens it, and checks that the old evidence's bundles
// still verify against the key set, that new evidence is signed by the new
// certificate and checkpointed with the new log key, and that a verifier
// with the old key alone refuses the new bundle.
func TestRotation(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		n := w.Node
		cfg := n.Config
		old := mustIssue(t, n)
		if _, err := n.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		oldBundle, err := n.Bundle(ctx, old.Seq)
		if err != nil {
			t.Fatal(err)
		}
		oldKey, oldCert := n.LogKey, n.Cert.Cert
		n.Close()
		for _, which := range []string{provider.RotateLog, provider.RotateProvider} {
			if _, err := provider.Rotate(cfg, provider.RotateOptions{Which: which, Now: w.Clock.Now}); err != nil {
				t.Fatal(err)
			}
		}
		cfg, err = config.Load(cfg.Dir + "/kep.toml")
		if err != nil {
			t.Fatal(err)
		}
		n, err = provider.Open(ctx, cfg, provider.Options{Now: w.Clock.Now, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		set := tlog.SplitKeys(n.LogKey)
		if len(set) != 2 || set[1] != oldKey {
			t.Fatalf("key set after rotation %q, want the new key then %q", set, oldKey)
		}
		if n.Cert.Cert.Equal(oldCert) {
			t.Fatal("the provider certificate did not change")
		}
		w.Clock.Advance(time.Second)
		next := mustIssue(t, n)
		if _, err := n.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		newBundle, err := n.Bundle(ctx, next.Seq)
		if err != nil {
			t.Fatal(err)
		}
		oldAgain, err := n.Bundle(ctx, old.Seq) // assembled after the rotation
		if err != nil {
			t.Fatal(err)
		}
		pool := func(f string) *x509.CertPool {
			certs, err := pki.LoadCertsPEM(cfg.Path(f))
			if err != nil {
				t.Fatal(err)
			}
			p := x509.NewCertPool()
			for _, c := range certs {
				p.AddCert(c)
			}
			return p
		}
		pub, err := os.ReadFile(cfg.Path("keys/log.pub"))
		if err != nil {
			t.Fatal(err)
		}
		anchors := evidence.Anchors{ProviderCAs: pool("keys/provider-ca.crt"), TSACAs: pool("keys/tsa-ca.crt"), LogKeys: tlog.SplitKeys(string(pub))}
		for _, c := range []struct {
			name    string
			bundle  []byte
			logKey  string
			keys    []string
			valid   bool
			signer  *x509.Certificate
			failing string
		}{
			{"old bundle, key set", oldBundle, oldKey, anchors.LogKeys, true, oldCert, ""},
			{"old evidence re-bundled", oldAgain, oldKey, anchors.LogKeys, true, oldCert, ""},
			{"new bundle, key set", newBundle, set[0], anchors.LogKeys, true, n.Cert.Cert, ""},
			{"new bundle, old key only", newBundle, set[0], []string{oldKey}, false, n.Cert.Cert, evidence.CheckLogKey},
		} {
			a := anchors
			a.LogKeys = c.keys
			rep := evidence.VerifyBundle(c.bundle, a, nil)
			if rep.Valid != c.valid {
				t.Fatalf("%s: valid %v, want %v: %+v", c.name, rep.Valid, c.valid, rep.Checks)
			}
			for _, ch := range rep.Checks {
				if !ch.OK && ch.Name != c.failing && ch.Name != evidence.CheckCheckpoint && ch.Name != evidence.CheckInclusion {
					t.Errorf("%s: check %s failed: %s", c.name, ch.Name, ch.Detail)
				}
			}
			b, err := evidence.ParseBundle(c.bundle)
			if err != nil {
				t.Fatal(err)
			}
			if b.LogKey != c.logKey || !b.Certificates[0].Equal(c.signer) {
				t.Errorf("%s: log key %q and signer %q, want %q and %q", c.name, b.LogKey, b.Certificates[0].SerialNumber, c.logKey, c.signer.SerialNumber)
			}
		}
		// Every checkpoint opens with the key set, whichever key signed it.
		cps, err := tlog.ListCheckpoints(ctx, n.DB.Q())
		if err != nil {
			t.Fatal(err)
		}
		for _, cp := range cps {
			if _, _, _, err := tlog.OpenCheckpoint(cp.Note, n.LogKey); err != nil {
				t.Errorf("checkpoint %d: %v", cp.Size, err)
			}
		}
	})
}
