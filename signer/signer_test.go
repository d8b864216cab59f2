package signer_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pkcs11"
	"github.com/kephs/kep/pkcs11/softhsm"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/signer"
)

const origin = "https://127.0.0.1:8443"

// syncBuffer is the terminal the agent writes to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAgent drives the agent with a key on SoftHSM2: the origin checks,
// a refusal on "n", and on "y" a signature the provider's checks accept
// (cms.Verify, then the trust store's CheckSigner bound to the TCKN).
func TestAgent(t *testing.T) {
	testtool.Require(t, testtool.SoftHSM2)
	testtool.Require(t, testtool.PKCS11Tool)
	dir, err := os.MkdirTemp("", "kep-signer-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	hsm, err := softhsm.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", hsm.Conf)
	if err := hsm.InitToken("kart", "so-1234", "1234"); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Test ESHS"}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tckn, _ := identity.CompleteTCKN("100000001")
	is, err := ca.IssueSigner(pki.SignerSubject(tckn, "Ayşe", "Yılmaz", "TCKN"), "", pki.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if err := hsm.ImportKey("kart", "1234", is.Key, is.Cert, "nes", []byte{9}); err != nil {
		t.Fatal(err)
	}
	s, key, err := client.TokenSigner(pkcs11.Config{Module: softhsm.Module, Token: "kart", Key: "nes", PIN: "1234"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	answers, answer := io.Pipe()
	term := &syncBuffer{}
	h, err := signer.New(signer.Options{Origin: origin, Signer: s, Confirm: signer.TerminalConfirm(answers, term)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	msg := client.Message{From: "ayse.yilmaz@hs01.kep.tr", To: []string{"mehmet.ozturk@hs01.kep.tr"}, Subject: "Kira \x1b[2Jsözleşmesi",
		Body: "Merhaba", Attachments: []client.Attachment{{Name: "sozlesme.txt", Data: []byte("madde 1")}}, Date: time.Now()}
	body, _ := json.Marshal(msg)
	type reply struct {
		OK     bool   `json:"ok"`
		Signer string `json:"signer"`
		Cert   string `json:"cert"`
		Signed string `json:"signed"`
		Error  string `json:"error"`
	}
	do := func(method, path, org, host string, hdr map[string]string, body []byte, ans string) (*http.Response, reply) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if org != "" {
			req.Header.Set("Origin", org)
		}
		if host != "" {
			req.Host = host
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if ans != "" {
			go answer.Write([]byte(ans + "\n"))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r reply
		json.NewDecoder(resp.Body).Decode(&r)
		return resp, r
	}

	cases := []struct {
		name, method, path, origin, host string
		hdr                              map[string]string
		want                             int
		acao                             bool
	}{
		{"status", "GET", "/v1/status", origin, "", nil, 200, true},
		{"status without Origin", "GET", "/v1/status", "", "", nil, 403, false},
		{"status from another origin", "GET", "/v1/status", "https://evil.example", "", nil, 403, false},
		{"origin with a different port", "GET", "/v1/status", "https://127.0.0.1:9443", "", nil, 403, false},
		{"origin over http", "GET", "/v1/status", "http://127.0.0.1:8443", "", nil, 403, false},
		{"DNS rebinding", "GET", "/v1/status", origin, "evil.example:18443", nil, 403, false},
		{"preflight", "OPTIONS", "/v1/sign", origin, "", map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Private-Network": "true"}, 204, true},
		{"preflight from another origin", "OPTIONS", "/v1/sign", "https://evil.example", "", map[string]string{"Access-Control-Request-Method": "POST"}, 403, false},
		{"sign from another origin", "POST", "/v1/sign", "https://evil.example", "", nil, 403, false},
		{"sign by GET", "GET", "/v1/sign", origin, "", nil, 405, true},
		{"unknown path", "GET", "/v2/sign", origin, "", nil, 404, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, r := do(c.method, c.path, c.origin, c.host, c.hdr, body, "")
			if resp.StatusCode != c.want {
				t.Fatalf("%d, want %d (%+v)", resp.StatusCode, c.want, r)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); (got == origin) != c.acao || (got != "" && got != origin) {
				t.Errorf("Access-Control-Allow-Origin %q", got)
			}
			if c.want >= 400 && r.Error == "" {
				t.Error("a refusal without an error message")
			}
			switch c.name {
			case "status":
				der, _ := base64.StdEncoding.DecodeString(r.Cert)
				if !r.OK || r.Signer != "Ayşe Yılmaz" || !bytes.Equal(der, is.Cert.Raw) {
					t.Errorf("status %+v", r)
				}
			case "preflight":
				if resp.Header.Get("Access-Control-Allow-Private-Network") != "true" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
					t.Errorf("preflight headers %v", resp.Header)
				}
			}
		})
	}
	if strings.Contains(term.String(), "Sign?") {
		t.Fatal("a refused request reached the user")
	}

	// "n": refused, nothing signed.
	resp, r := do("POST", "/v1/sign", origin, "", nil, body, "n")
	if resp.StatusCode != 403 || r.Error == "" || r.Signed != "" {
		t.Fatalf("after n: %d %+v", resp.StatusCode, r)
	}
	// "y": signed, and the signature is what the provider accepts.
	resp, r = do("POST", "/v1/sign", origin, "", nil, body, "y")
	if resp.StatusCode != 200 || r.Signed == "" {
		t.Fatalf("after y: %d %+v", resp.StatusCode, r)
	}
	raw, _ := base64.StdEncoding.DecodeString(r.Signed)
	sd, err := cms.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	ts := identity.NewTrustStore(ca.Cert)
	if err := ts.CheckSigner(sd.Signer, nil, time.Now(), identity.ID{Scheme: identity.TCKN, Value: tckn}); err != nil {
		t.Fatal(err)
	}
	shown := term.String()
	sum := sha256.Sum256(sd.Content)
	for _, want := range []string{"ayse.yilmaz@hs01.kep.tr", "mehmet.ozturk@hs01.kep.tr", "Kira ?[2Jsözleşmesi", "sozlesme.txt", hex.EncodeToString(sum[:]), "refused", "signing"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the terminal does not show %q:\n%s", want, shown)
		}
	}
	if strings.Contains(shown, "\x1b") {
		t.Error("an escape sequence from the message reached the terminal")
	}
	if strings.Count(shown, "Sign?") != 2 {
		t.Errorf("asked %d times, want 2:\n%s", strings.Count(shown, "Sign?"), shown)
	}
}
