package directory_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

type world struct {
	auth   *directory.Authority
	pub    string
	now    time.Time
	certs  map[string]*pki.Issued
	logKey map[string]string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	a, err := directory.InitAuthority(filepath.Join(dir, "authority"), "Test Authority")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := a.VerifierKey()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Provider CA"}, pki.ECDSAP256, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{auth: a, pub: pub, now: time.Now().UTC(), certs: map[string]*pki.Issued{}, logKey: map[string]string{}}
	for _, id := range []string{"hs01", "hs02"} {
		is, err := ca.IssueProvider(id+".kep.tr", []string{id + ".kep.tr", "127.0.0.1"}, pki.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		_, vkey, err := note.GenerateKey(nil, id+".kep.tr/log")
		if err != nil {
			t.Fatal(err)
		}
		w.certs[id], w.logKey[id] = is, vkey
		if err := a.AddProvider(directory.ProviderEntry{ID: id, Name: strings.ToUpper(id) + " KEP", Domains: []string{id + ".kep.tr"},
			Relay: "127.0.0.1:0", LogKey: vkey}, w.now); err == nil {
			t.Fatal("a provider without pins and certificates was accepted")
		}
		if err := a.AddProvider(directory.ProviderEntry{ID: id, Name: strings.ToUpper(id) + " KEP", Domains: []string{id + ".kep.tr"},
			Relay: "127.0.0.1:2525", TLSCerts: certs(is), SigningCerts: certs(is), LogKey: vkey}, w.now); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func certs(is *pki.Issued) []*x509.Certificate { return []*x509.Certificate{is.Cert} }

func (w *world) sign(t *testing.T) []byte {
	t.Helper()
	b, err := w.auth.Sign(w.now)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignOpenLookup(t *testing.T) {
	w := newWorld(t)
	signed := w.sign(t)
	d, err := directory.Open(signed, w.pub)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 1 || len(d.Providers) != 2 {
		t.Fatalf("version %d, %d providers", d.Version, len(d.Providers))
	}
	for dom, want := range map[string]string{
		"hs02.kep.tr": "hs02", "HS02.kep.tr.": "hs02", "acme.hs01.kep.tr": "hs01", "a.b.hs01.kep.tr": "hs01",
		"hs03.kep.tr": "", "gmail.com": "", "evilhs01.kep.tr": "", "kep.tr": "",
	} {
		got := ""
		if p := d.ProviderFor(dom); p != nil {
			got = p.ID
		}
		if got != want {
			t.Errorf("ProviderFor(%q) = %q, want %q", dom, got, want)
		}
	}
	p := d.Provider("hs02")
	if !p.PinMatches(w.certs["hs02"].Cert, w.now) || p.PinMatches(w.certs["hs01"].Cert, w.now) {
		t.Fatal("pins")
	}
	if p.PinMatches(w.certs["hs02"].Cert, w.certs["hs02"].Cert.NotAfter.Add(time.Hour)) {
		t.Fatal("a pin is used outside its window")
	}
	if got := p.SigningCertificates(directory.UseEvidence, w.now); len(got) != 1 || !got[0].Equal(w.certs["hs02"].Cert) {
		t.Fatalf("signing certificates: %v", got)
	}
	if got := p.LogVerifiers(w.now); len(got) != 1 || got[0] != w.logKey["hs02"] {
		t.Fatalf("log keys: %v", got)
	}
	// Another authority's key, or an altered text, is refused.
	_, otherPub, _ := note.GenerateKey(nil, "Other")
	if _, err := directory.Open(signed, otherPub); !errors.Is(err, directory.ErrSignature) {
		t.Fatalf("other authority: %v", err)
	}
	forged := []byte(strings.Replace(string(signed), "127.0.0.1:2525", "127.0.0.1:2526", 1))
	if _, err := directory.Open(forged, w.pub); !errors.Is(err, directory.ErrSignature) {
		t.Fatalf("forged: %v", err)
	}
}

// A removed provider stays listed with its removal time: its history
// verifies, it exchanges nothing after.
func TestRemovedProviderStays(t *testing.T) {
	w := newWorld(t)
	w.now = w.now.Add(time.Hour)
	if err := w.auth.RemoveProvider("hs02", w.now); err != nil {
		t.Fatal(err)
	}
	if err := w.auth.RemoveProvider("hs02", w.now); err == nil {
		t.Fatal("removed twice")
	}
	d, err := directory.Open(w.sign(t), w.pub)
	if err != nil {
		t.Fatal(err)
	}
	p := d.ProviderFor("hs02.kep.tr")
	if p == nil || p.Removed == nil {
		t.Fatal("the removed provider is gone from the directory")
	}
	if p.Active(w.now.Add(time.Minute)) || !p.Active(w.now.Add(-time.Minute)) {
		t.Fatal("Active around the removal")
	}
	if len(p.SigningCertificates(directory.UseEvidence, w.now.Add(-time.Minute))) != 1 {
		t.Fatal("its certificates are gone")
	}
	if err := w.auth.AddProvider(directory.ProviderEntry{ID: "hs02", Domains: []string{"x.kep.tr"}}, w.now); err == nil {
		t.Fatal("a removed provider's id was reused")
	}
}

// The keeper takes newer versions, refuses older ones and forgeries,
// keeps the last good copy, and remembers the newest version across
// restarts (from a file and over HTTPS).
func TestKeeperNoRollback(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t)
		v1 := w.sign(t)
		v2 := w.sign(t)
		path := filepath.Join(t.TempDir(), "directory.note")
		write := func(b []byte) {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write(v2)
		k := &directory.Keeper{Source: path, AuthorityKeys: []string{w.pub}, DB: db}
		if err := k.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if k.Current().Version != 2 {
			t.Fatalf("version %d", k.Current().Version)
		}
		write(v1)
		if err := k.Refresh(ctx); !errors.Is(err, directory.ErrRollback) {
			t.Fatalf("older version: %v", err)
		}
		write([]byte(strings.Replace(string(v2), "hs01", "hs09", 1)))
		if err := k.Refresh(ctx); !errors.Is(err, directory.ErrSignature) {
			t.Fatalf("forged: %v", err)
		}
		if k.Current().Version != 2 {
			t.Fatal("the last good copy was not kept")
		}
		// A restart facing the older version keeps the newer one from the store.
		write(v1)
		k2 := &directory.Keeper{Source: path, AuthorityKeys: []string{w.pub}, DB: db}
		if err := k2.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if k2.Current().Version != 2 {
			t.Fatalf("rolled back across a restart to %d", k2.Current().Version)
		}
		// A newer version arrives over HTTPS.
		v3 := w.sign(t)
		srv := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.Write(v3) }))
		defer srv.Close()
		k3 := &directory.Keeper{Source: srv.URL + "/directory.note", AuthorityKeys: []string{w.pub}, DB: db, HTTP: srv.Client()}
		if err := k3.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if k3.Current().Version != 3 {
			t.Fatalf("over HTTPS: version %d", k3.Current().Version)
		}
		// No source and no stored copy: Load fails with a reason.
		k4 := &directory.Keeper{Source: filepath.Join(t.TempDir(), "missing"), AuthorityKeys: []string{w.pub}}
		if err := k4.Load(ctx); err == nil {
			t.Fatal("loaded nothing without an error")
		}
	})
}
