package provider_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kephs/kep/config"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/store/storetest"
	"golang.org/x/mod/sumdb/note"
)

// A node with federation.directory knows the domains of the providers the
// directory lists (and their subdomains) while they are active, follows a
// refreshed directory, refuses to start with a forged one, and keeps the
// newest edition across a restart that meets an older file.
func TestNodeDirectory(t *testing.T) {
	for _, d := range storetest.Backends(t) {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			auth, err := directory.InitAuthority(filepath.Join(dir, "authority"), "Test-Authority")
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := auth.VerifierKey()
			dsn := storetest.DSN(t, d)
			cfg, err := provider.Init(filepath.Join(dir, "hs01"), provider.InitOptions{Provider: "hs01", Config: func(c *config.Config) {
				c.Store.DSN = dsn
				c.Federation.Directory = filepath.Join(dir, "authority", directory.PublishedFile)
				c.Federation.AuthorityKeys = []string{pub}
			}})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			for _, id := range []string{"hs01", "hs02"} {
				cert, err := pki.LoadCertsPEM(cfg.Path(cfg.Keys.Cert))
				if err != nil {
					t.Fatal(err)
				}
				_, vkey, _ := note.GenerateKey(nil, id+".kep.tr/log")
				if err := auth.AddProvider(directory.ProviderEntry{ID: id, Domains: []string{id + ".kep.tr"}, Relay: "127.0.0.1:1",
					TLSCerts: cert[:1], SigningCerts: cert[:1], LogKey: vkey}, now); err != nil {
					t.Fatal(err)
				}
			}
			v1, err := auth.Sign(now)
			if err != nil {
				t.Fatal(err)
			}
			n, err := provider.Open(ctx, cfg, provider.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			for dom, want := range map[string]bool{"hs01.kep.tr": true, "acme.hs01.kep.tr": true, "hs02.kep.tr": true,
				"x.hs02.kep.tr": true, "hs03.kep.tr": false, "gmail.com": false} {
				if got := n.KnownDomain(dom); got != want {
					t.Errorf("KnownDomain(%s) = %v, want %v", dom, got, want)
				}
			}
			// The authority removes hs02; after a refresh its domain is gone.
			if err := auth.RemoveProvider("hs02", now); err != nil {
				t.Fatal(err)
			}
			if _, err := auth.Sign(now.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if err := n.Directory.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			if n.KnownDomain("hs02.kep.tr") {
				t.Fatal("a removed provider's domain is still known")
			}
			n.Close()
			// A restart that meets the older edition keeps the newer one.
			if err := os.WriteFile(cfg.Federation.Directory, v1, 0o644); err != nil {
				t.Fatal(err)
			}
			n2, err := provider.Open(ctx, cfg, provider.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if n2.Directory.Current().Version != 2 || n2.KnownDomain("hs02.kep.tr") {
				t.Fatalf("rolled back to version %d", n2.Directory.Current().Version)
			}
			n2.Close()
			// A forged directory and no good copy: the node does not start.
			cfg.Federation.AuthorityKeys = []string{otherKey(t)}
			if n3, err := provider.Open(ctx, cfg, provider.Options{}); err == nil {
				n3.Close()
				t.Fatal("a node started with a directory its authority key does not verify")
			}
		})
	}
}

func otherKey(t *testing.T) string {
	_, v, err := note.GenerateKey(nil, "Other")
	if err != nil {
		t.Fatal(err)
	}
	return v
}
