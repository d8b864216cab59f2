package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/rehber"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

// TestRehberCommand runs `kep rehber` against a provider's Rehberi served
// over HTTPS with the provider's own certificate, and against its store
// (--console), on each backend.
func TestRehberCommand(t *testing.T) {
	for _, d := range storetest.Backends(t) {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			cfg, err := provider.Init(dir, provider.InitOptions{Provider: "hs01", Config: func(c *config.Config) {
				c.Store.DSN = storetest.DSN(t, d)
			}})
			if err != nil {
				t.Fatal(err)
			}
			n, err := provider.OpenAdmin(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
			tckn := identity.GenerateTCKN(rng)
			person, err := n.Accounts.Create(ctx, account.SystemActor, account.CreateRequest{Kind: account.Person, Capability: account.ReceiveOnly,
				Owner: identity.ID{Scheme: identity.TCKN, Value: tckn}, GivenName: "Ayşe", Surname: "Yılmaz", Password: "ayşenin parolası",
				VerifiedBy: "test", Activate: true})
			if err != nil {
				t.Fatal(err)
			}
			vkn := identity.GenerateVKN(rng)
			if _, err := n.Accounts.Create(ctx, account.SystemActor, account.CreateRequest{Kind: account.Company, Capability: account.ReceiveOnly,
				Owner: identity.ID{Scheme: identity.VKN, Value: vkn}, OwnerName: "DENİZ LOJİSTİK A.Ş.", VerifiedBy: "test", Activate: true}); err != nil {
				t.Fatal(err)
			}
			own, err := pki.LoadIssued(cfg.Path(cfg.Keys.Cert), cfg.Path(cfg.Keys.Key))
			if err != nil {
				t.Fatal(err)
			}
			serve := func(is *pki.Issued) string {
				svc := &rehber.Service{DB: n.DB, Provider: "hs01"}
				mux := http.NewServeMux()
				mux.Handle("/rehber/v1/", http.StripPrefix("/rehber/v1", svc.Handler(rehber.BasicAuth(n.Accounts), nil)))
				srv := httptest.NewUnstartedServer(mux)
				srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{is.Cert.Raw}, PrivateKey: is.Key}}}
				srv.StartTLS()
				t.Cleanup(srv.Close)
				return srv.URL + "/rehber/v1/"
			}
			url := serve(own)
			ca, err := pki.NewRootCA(pkix.Name{CommonName: "Other"}, pki.ECDSAP256, time.Hour*24)
			if err != nil {
				t.Fatal(err)
			}
			other, err := ca.IssueProvider("hs01.kep.tr", []string{"127.0.0.1"}, pki.ECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			impostor := serve(other)
			conf := filepath.Join(dir, "kep.toml")
			tests := []struct {
				name    string
				args    []string
				want    string // in standard output
				wantErr string
			}{
				{"name over HTTPS", []string{"--url", url, "--name", "Deniz Lojistik"}, "DENİZ LOJİSTİK A.Ş.", ""},
				{"vkn over HTTPS, JSON", []string{"--url", url, "--vkn", vkn, "--json"}, `"id": "VKN:` + vkn, ""},
				{"tckn over HTTPS", []string{"--url", url, "--tckn", tckn, "--as", person.Address, "--password", "ayşenin parolası"}, person.Address, ""},
				{"unknown tckn", []string{"--url", url, "--tckn", identity.GenerateTCKN(rng), "--as", person.Address, "--password", "ayşenin parolası"}, "no KEP address found", ""},
				{"tckn, wrong password", []string{"--url", url, "--tckn", tckn, "--as", person.Address, "--password", "yanlış parola"}, "", "bad-credentials"},
				{"tckn without --as", []string{"--url", url, "--tckn", tckn}, "", "logged-in users only"},
				{"a server without the provider's certificate", []string{"--url", impostor, "--name", "Deniz"}, "", "does not present this provider's certificate"},
				{"name at the console", []string{"--console", "--name", "deniz"}, "DENİZ LOJİSTİK A.Ş.", ""},
				{"tckn at the console", []string{"--console", "--tckn", tckn, "--as", person.Address, "--password", "ayşenin parolası"}, person.Address, ""},
				{"tckn at the console, wrong password", []string{"--console", "--tckn", tckn, "--as", person.Address, "--password", "yanlış"}, "", "authentication failed"},
				{"two queries", []string{"--console", "--name", "deniz", "--vkn", vkn}, "", "exactly one"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var out, errb bytes.Buffer
					err := rehberMain(ctx, append([]string{"--config", conf}, tt.args...), &out, &errb)
					if tt.wantErr != "" {
						if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
							t.Fatalf("error %v, want %q", err, tt.wantErr)
						}
						if strings.Contains(err.Error(), tckn) {
							t.Errorf("the error shows the TCKN: %v", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("%v\n%s", err, errb.String())
					}
					if !strings.Contains(out.String(), tt.want) {
						t.Errorf("output %q lacks %q", out.String(), tt.want)
					}
				})
			}
			recs, err := store.ListAudit(ctx, n.DB.Q(), "TCKN:"+identity.Mask(tckn), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 || recs[0].Actor != "account:"+person.Address || recs[1].Remote != "cli" {
				t.Errorf("audit %+v", recs)
			}
		})
	}
}
