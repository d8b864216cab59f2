package demo_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/pki"
)

func sendAs(t *testing.T, info *demo.Info, key, to string) *client.Result {
	t.Helper()
	a, o := info.Account(key)
	user, pass, crt, k, from := "", "", "", "", ""
	if a != nil {
		user, pass, crt, k, from = a.Username, a.Password, a.Certificate, a.PrivateKey, a.Address
	} else {
		user, pass, crt, k, from = o.Username, o.Password, o.Certificate, o.PrivateKey, o.Account
	}
	is, err := pki.LoadIssued(crt, k)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	cas, _ := pki.LoadCertsPEM(info.Providers[0].CA)
	roots.AddCert(cas[0])
	c, err := client.Dial(client.Submission{Addr: info.Providers[0].Endpoints.Submission, Username: user, Password: pass,
		TLS: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := &client.Message{From: from, To: []string{to}, Subject: "Demo", Body: "Merhaba"}
	raw, err := m.Sign(&client.Signer{Key: is.Key, Cert: is.Cert, Chain: is.Chain})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Send(from, m.Recipients(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestDemoWorld(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "world")
	ctx := context.Background()
	w, err := demo.Start(ctx, dir, demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := demo.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Every file demo.json names exists.
	for _, p := range []string{info.TSA.Certificate, info.Anchors.ESignCA, info.Anchors.TSACA, info.Providers[0].Config, info.Providers[0].Certificate, info.Providers[0].CA} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("demo.json names a missing file: %v", err)
		}
	}
	kinds := map[string]int{}
	for _, a := range info.Accounts {
		kinds[a.Kind+"/"+a.Capability]++
		for _, p := range []string{a.Certificate, a.PrivateKey, a.PKCS12} {
			if p != "" {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s: %v", a.Key, err)
				}
			}
		}
		if a.PKCS12 != "" {
			if _, err := pki.LoadPKCS12(a.PKCS12, a.PKCS12Password); err != nil {
				t.Errorf("%s: PKCS#12 does not open with its password: %v", a.Key, err)
			}
		}
	}
	if kinds["person/send-receive"] != 3 || kinds["person/receive-only"] != 1 || kinds["company/send-receive"] != 1 {
		t.Fatalf("sample accounts: %v", kinds)
	}
	if len(info.Operators) != 2 || info.Operators[0].Role != "main" || strings.Join(info.Operators[1].Grants, ",") != "read" {
		t.Fatalf("operators: %+v", info.Operators)
	}
	mehmet := info.Accounts[1].Address
	if r := sendAs(t, info, "ayse", mehmet); !r.Accepted || r.EvidenceID == "" {
		t.Fatalf("ayse: %+v", r)
	}
	if r := sendAs(t, info, "zeynep", mehmet); !r.Accepted {
		t.Fatalf("main operator: %+v", r)
	}
	if r := sendAs(t, info, "ece", mehmet); r.Accepted || !strings.Contains(r.Reply, "receive-only") {
		t.Fatalf("receive-only: %+v", r)
	}
	if r := sendAs(t, info, "emre", mehmet); r.Accepted || !strings.Contains(r.Reply, "no send grant") {
		t.Fatalf("read-only operator: %+v", r)
	}
	n := w.Nodes[0]
	size := n.Log.Size()
	w.Close()
	// Started again, the world keeps its state.
	w2, err := demo.Start(ctx, dir, demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if got := w2.Nodes[0].Log.Size(); got < size {
		t.Fatalf("log size %d after restart, was %d", got, size)
	}
	info2, _ := demo.Load(dir)
	if r := sendAs(t, info2, "ayse", mehmet); !r.Accepted {
		t.Fatalf("after restart: %+v", r)
	}
	// Evidence bundles verify against the anchors of demo.json.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := w2.Nodes[0].Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := evidence.GetSeq(ctx, w2.Nodes[0].DB.Q(), 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := w2.Nodes[0].Bundle(ctx, st.Seq)
		if err == nil {
			a := evidence.Anchors{ProviderCAs: x509.NewCertPool(), TSACAs: x509.NewCertPool(), LogKeys: []string{info2.Providers[0].LogKey}}
			pc, _ := pki.LoadCertsPEM(info2.Anchors.ProviderCAs[0])
			tc, _ := pki.LoadCertsPEM(info2.Anchors.TSACA)
			a.ProviderCAs.AddCert(pc[0])
			a.TSACAs.AddCert(tc[0])
			if rep := evidence.VerifyBundle(b, a, nil); !rep.Valid {
				t.Fatalf("bundle: %+v", rep.Checks)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Across providers: ayşe at hs01 writes to elif at hs02; hs02's
	// relay acceptance (20) and delivery (40) come back to hs01, and each
	// verifies with the one anchors directory of demo.json.
	elif, _ := info2.Account("elif")
	if elif == nil || elif.Provider != "hs02" || !strings.HasSuffix(elif.Address, "@hs02.kep.tr") {
		t.Fatalf("no person at hs02: %+v", elif)
	}
	if r := sendAs(t, info2, "ayse", elif.Address); !r.Accepted {
		t.Fatalf("to hs02: %+v", r)
	}
	anchors := anchorsDir(t, info2.Anchors.Dir)
	deadline = time.Now().Add(30 * time.Second)
	for {
		rows, err := w2.Nodes[0].DB.Q().Query(ctx, `SELECT code, bundle FROM foreign_evidence ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var code string
			var b []byte
			if err := rows.Scan(&code, &b); err != nil {
				t.Fatal(err)
			}
			if rep := evidence.VerifyBundle(b, anchors, nil); !rep.Valid {
				t.Fatalf("hs02's %s does not verify with %s: %+v", code, info2.Anchors.Dir, rep.Checks)
			}
			got = append(got, code)
		}
		rows.Close()
		if g := strings.Join(got, " "); strings.Contains(g, "20") && strings.Contains(g, "40") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hs02's evidence did not come back to hs01: %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// anchorsDir reads a directory as `kep verify --anchors` does: every
// certificate of provider-ca.pem and tsa-ca.pem, every line of log.pub.
func anchorsDir(t *testing.T, dir string) evidence.Anchors {
	t.Helper()
	a := evidence.Anchors{ProviderCAs: x509.NewCertPool(), TSACAs: x509.NewCertPool()}
	for name, pool := range map[string]*x509.CertPool{"provider-ca.pem": a.ProviderCAs, "tsa-ca.pem": a.TSACAs} {
		certs, err := pki.LoadCertsPEM(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			a.LogKeys = append(a.LogKeys, line)
		}
	}
	if len(a.LogKeys) != 2 {
		t.Fatalf("%s/log.pub holds %d keys, want both providers'", dir, len(a.LogKeys))
	}
	return a
}

// TestReplacedPorts: a fixed port taken when a world is created is
// replaced, and the replacement is recorded for good (docs/demo.md,
// "Ports"); a later start reports the endpoints that differ from the
// previous run's demo.json.
func TestReplacedPorts(t *testing.T) {
	if l, err := net.Listen("tcp", "127.0.0.1:10587"); err == nil {
		defer l.Close()
	} // else: held by someone already, which is the same case
	dir := filepath.Join(t.TempDir(), "world")
	ctx := context.Background()
	w, err := demo.Start(ctx, dir, demo.Options{Ports: true})
	if err != nil {
		t.Fatal(err)
	}
	sub := w.Info.Providers[0].Endpoints.Submission
	if !w.Created || len(w.Changed) != 0 {
		t.Errorf("a new world: Created %v, Changed %v", w.Created, w.Changed)
	}
	found := false
	for _, c := range w.Info.ReplacedPorts {
		if c.Was == "127.0.0.1:10587" && c.Now == sub && c.Service == "hs01 SMTP submission (STARTTLS)" {
			found = true
		}
		if c.Was == c.Now {
			t.Errorf("a replacement by the same port: %+v", c)
		}
	}
	if !found {
		t.Errorf("the taken port 10587 is not among the replaced ones: %+v (submission on %s)", w.Info.ReplacedPorts, sub)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The previous run's demo.json had IMAP elsewhere (as when a port was
	// edited in kep.toml between runs).
	path := filepath.Join(dir, "demo.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	imap := w.Info.Providers[0].Endpoints.IMAP
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), `"imap": "`+imap+`"`, `"imap": "127.0.0.1:1"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err = demo.Start(ctx, dir, demo.Options{Ports: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Created || len(w.Info.ReplacedPorts) == 0 {
		t.Errorf("a later start: Created %v, ReplacedPorts %v", w.Created, w.Info.ReplacedPorts)
	}
	want := demo.PortChange{Service: "hs01 IMAP (STARTTLS)", Was: "127.0.0.1:1", Now: imap}
	if len(w.Changed) != 1 || w.Changed[0] != want {
		t.Errorf("Changed = %+v, want [%+v]", w.Changed, want)
	}
}

// TestOldOrDamagedWorld: a directory whose demo.json a start cannot use is
// refused with what to do, never half-upgraded.
func TestOldOrDamagedWorld(t *testing.T) {
	for _, c := range []struct {
		name, json string
		want       []string
	}{
		{"one-provider world", `{"version": 1, "providers": [{"id": "hs01"}]}`, []string{"hs01 alone", "remove the directory", "rm -r"}},
		{"damaged", `{"version": `, []string{"damaged", "remove the directory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "demo.json"), []byte(c.json), 0o600); err != nil {
				t.Fatal(err)
			}
			w, err := demo.Start(context.Background(), dir, demo.Options{})
			if err == nil {
				w.Close()
				t.Fatal("started")
			}
			for _, s := range c.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%v: does not say %q", err, s)
				}
			}
		})
	}
}
