package node_test

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/node"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// codes lists the evidence codes a node holds about its messages, in order.
func codes(t *testing.T, q store.Querier) string {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT code FROM evidence ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		rows.Scan(&c)
		out = append(out, c)
	}
	return strings.Join(out, " ")
}

// Two whole nodes, as `kep serve` runs them, federated by one signed
// directory: a message submitted over SMTP at hs01 to a recipient at hs02
// is relayed over mutual TLS, accepted (20) and delivered (40) at hs02;
// hs02's evidence comes back to hs01, which then knows the recipient was
// delivered; a recipient at a domain
// no provider serves is refused at RCPT.
func TestFederatedNodes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	esign, err := pki.NewRootCA(pkix.Name{CommonName: "Test E-Signature CA"}, pki.ECDSAP256, 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pki.DevRevocationServer(esign, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	auth, err := directory.InitAuthority(filepath.Join(dir, "authority"), "Test-Authority")
	if err != nil {
		t.Fatal(err)
	}
	authKey, _ := auth.VerifierKey()
	cfgs := map[string]*config.Config{}
	for _, id := range []string{"hs01", "hs02"} {
		relayAddr, rehberAddr := freeAddr(t), freeAddr(t)
		cfg, err := provider.Init(filepath.Join(dir, id), provider.InitOptions{Provider: id, ESignCA: esign, Config: func(c *config.Config) {
			c.Store.DSN = "sqlite:" + filepath.Join(dir, id, "kep.db")
			c.SMTP.Submission, c.SMTP.Submissions = "127.0.0.1:0", "127.0.0.1:0"
			c.IMAP.Listen, c.IMAP.ListenTLS, c.HTTP.Listen, c.Metrics.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""
			c.Log.CheckpointInterval = config.Duration{Duration: 200 * time.Millisecond}
			c.Federation.Directory = filepath.Join(dir, "authority", directory.PublishedFile)
			c.Federation.AuthorityKeys = []string{authKey}
			c.Federation.RelayListen = relayAddr
			c.Federation.RehberListen = rehberAddr
		}})
		if err != nil {
			t.Fatal(err)
		}
		cert, err := pki.LoadCertsPEM(cfg.Path(cfg.Keys.Cert))
		if err != nil {
			t.Fatal(err)
		}
		_, logKey, err := loadLogKey(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := auth.AddProvider(directory.ProviderEntry{ID: id, Name: strings.ToUpper(id), Domains: []string{id + ".kep.tr"},
			Relay: relayAddr, Rehber: "https://" + rehberAddr + "/rehber/v1/", TLSCerts: cert[:1], SigningCerts: cert[:1], LogKey: logKey}, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		cfgs[id] = cfg
	}
	if _, err := auth.Sign(time.Now()); err != nil {
		t.Fatal(err)
	}
	// Each provider trusts the other's time-stamp authority, for the
	// evidence it returns.
	cfgs["hs01"].TSA.TrustAnchors = append(cfgs["hs01"].TSA.TrustAnchors, cfgs["hs02"].Path("keys/tsa-ca.crt"))
	cfgs["hs02"].TSA.TrustAnchors = append(cfgs["hs02"].TSA.TrustAnchors, cfgs["hs01"].Path("keys/tsa-ca.crt"))
	run := map[string]*node.Running{}
	for id, cfg := range cfgs {
		r, err := node.Open(ctx, cfg, provider.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		run[id] = r
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	person := func(n *provider.Node, given, surname string) (*store.Account, *pki.Issued) {
		tckn := identity.GenerateTCKN(rng)
		signer, err := esign.IssueSigner(pki.SignerSubject(tckn, given, surname, "TCKN"), "", pki.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		a, err := n.Accounts.Create(ctx, account.SystemActor, account.CreateRequest{Kind: account.Person,
			Owner: identity.ID{Scheme: identity.TCKN, Value: tckn}, GivenName: given, Surname: surname,
			Password: "password of " + given, Certificate: signer.Cert, Activate: true})
		if err != nil {
			t.Fatal(err)
		}
		return a, signer
	}
	ayse, ayseSigner := person(run["hs01"].Core, "Ayşe", "Yılmaz")
	mehmet, _ := person(run["hs02"].Core, "Mehmet", "Öztürk")

	// Unknown provider: refused at RCPT.
	if err := submit(t, run["hs01"].Endpoints.Submission, ayse.Address, "password of Ayşe", ayse.Address, "someone@hs07.kep.tr",
		signed(t, ayse.Address, ayseSigner, "someone@hs07.kep.tr")); err == nil || !strings.Contains(err.Error(), "hs07") {
		t.Fatalf("a recipient at no provider: %v", err)
	}
	if err := submit(t, run["hs01"].Endpoints.Submission, ayse.Address, "password of Ayşe", ayse.Address, mehmet.Address,
		signed(t, ayse.Address, ayseSigner, mehmet.Address)); err != nil {
		t.Fatalf("submit to hs02: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got1, got2 := codes(t, run["hs01"].Core.DB.Q()), codes(t, run["hs02"].Core.DB.Q())
		if strings.Contains(got1, "10") && strings.Contains(got2, "20") && strings.Contains(got2, "40") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no relay: hs01 evidence %q, hs02 evidence %q", got1, got2)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// hs02 sends its 20 and 40 back once checkpointed; hs01 stores them,
	// and its recipient is delivered.
	for {
		var state string
		var returned int
		q := run["hs01"].Core.DB.Q()
		if err := q.QueryRow(ctx, `SELECT transport_state FROM deliveries WHERE recipient = ?`, mehmet.Address).Scan(&state); err != nil {
			t.Fatal(err)
		}
		if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM foreign_evidence`).Scan(&returned); err != nil {
			t.Fatal(err)
		}
		if state == "delivered" && returned >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hs02's evidence did not come back: hs01's recipient is %q, %d returned evidence", state, returned)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if run["hs02"].Endpoints.Relay == "" || run["hs02"].Endpoints.Rehber == "" {
		t.Fatal("no relay or Rehberi endpoint reported")
	}
	// KEP Rehberi: ayşe, logged in at hs01, finds mehmet's address at hs02
	// by his TCKN; hs01 asks hs02 over the pinned provider channel.
	form := url.Values{"tckn": {mehmet.OwnerID[len("TCKN:"):]}}
	req, _ := http.NewRequest(http.MethodPost, "https://"+run["hs01"].Endpoints.HTTPS+"/rehber/v1/persons", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(ayse.Address, "password of Ayşe")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 20 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), mehmet.Address) || !strings.Contains(string(body), "hs02") {
		t.Fatalf("Rehberi lookup across providers: %s %s", resp.Status, body)
	}
}

// loadLogKey returns the provider's current log signer and verifier key.
func loadLogKey(cfg *config.Config) (any, string, error) {
	s, set, err := tlog.LoadSigner(cfg.Path(cfg.Keys.LogKey))
	if err != nil {
		return nil, "", err
	}
	return s, tlog.SplitKeys(set)[0], nil
}
