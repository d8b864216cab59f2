package static_test

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/web/static"
)

// kepsign.wasm and wasm_exec.js are what `go generate ./web/static/` makes
// from this tree and this Go release.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the signer for js/wasm")
	}
	out, err := exec.Command("go", "run", "../wasm/gen", "-check", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// The embedded FS holds the three files the pages load.
func TestFS(t *testing.T) {
	for _, name := range []string{"kepsign.js", "kepsign.wasm", "wasm_exec.js"} {
		if b, err := static.FS.ReadFile(name); err != nil || len(b) == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// page is the test page: a form that picks a key file and a password, and
// the message to sign in a data attribute, since the CSP allows no inline
// script.
var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign a KEP message</title>
<script src="/static/kepsign.js"></script>
<script src="/test/page.js" defer></script>
</head>
<body>
<main>
<h1>Sign a KEP message</h1>
<form id="f" data-message="{{.Message}}">
<p><label for="key">Key file</label> <input id="key" type="file" accept=".p12,.pfx,.pem"></p>
<p><label for="pw">Password</label> <input id="pw" type="password" autocomplete="off"></p>
<p><button id="sign" type="submit">Sign</button></p>
</form>
<p id="status" role="status"></p>
</main>
</body>
</html>
`))

type result struct {
	Signed string `json:"signed"`
	Error  string `json:"error"`
	Code   string `json:"code"`
}

// recorder keeps every request body the server saw, to show that neither
// the key file nor its password was sent.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.bodies = append(rec.bodies, append([]byte(r.URL.String()+"\n"), body...))
		rec.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	})
}

func (rec *recorder) sent(secret []byte) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, b := range rec.bodies {
		if bytes.Contains(b, secret) {
			return true
		}
	}
	return false
}

const p12Password = "Gizli-Parola-1"

// Signing in real Chromium with a PKCS#12 file made by the project's dev CA,
// under the web's CSP: the message posted back verifies with openssl and
// with package cms; a wrong password is refused with a reason; neither the
// key file nor the password reaches the server.
func TestSignInBrowser(t *testing.T) {
	openssl := testtool.Require(t, testtool.OpenSSL)

	ca, err := pki.NewRootCA(pkix.Name{Country: []string{"TR"}, CommonName: "Demo E-Signature CA (not qualified)"}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ayse, err := ca.IssueSigner(pki.SignerSubject("10000000146", "Ayşe", "Yılmaz", "TCKN"), "ayse.yilmaz@hs01.kep.tr", pki.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	p12, err := ayse.PKCS12(p12Password)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p12Path, caPath := filepath.Join(dir, "ayse.p12"), filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(p12Path, p12, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caPath, pki.CertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}

	msg := client.Message{
		From: "ayse.yilmaz@hs01.kep.tr", To: []string{"mehmet.ozturk@hs01.kep.tr"},
		Subject: "Ödeme emri", Body: "Merhaba Mehmet Bey,\nfatura ektedir.\n", IletiTip: "eYazisma",
		Attachments: []client.Attachment{{Name: "fatura.txt", ContentType: "text/plain; charset=utf-8", Data: []byte("Tutar: 1.250,00 TL\n")}},
		Date:        time.Now().Truncate(time.Second),
	}
	msgJSON, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}

	var origin atomic.Value  // the page's, once the server runs
	noAgent := closedPort(t) // a port where no kep signer listens
	agent := agentPeer(t, &origin)
	results := make(chan result, 1)
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static.FS)))
	mux.HandleFunc("GET /test/page.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join("testdata", "page.js"))
	})
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		// The CSP issue 14 asks of the web: no inline script, WebAssembly
		// allowed, the local signer's port the only other connection.
		w.Header().Set("Content-Security-Policy", fmt.Sprintf("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' http://127.0.0.1:18443 http://127.0.0.1:%d http://127.0.0.1:%d; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'", noAgent, agent))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page.Execute(w, struct{ Message string }{string(msgJSON)})
	})
	mux.HandleFunc("POST /test/result", func(w http.ResponseWriter, r *http.Request) {
		var res result
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		results <- res
	})
	rec := &recorder{}
	srv := httptest.NewUnstartedServer(rec.wrap(mux))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	origin.Store(srv.URL)
	b := testtool.NewBrowser(t, testtool.BrowserOptions{Trust: []*x509.Certificate{srv.Certificate()}, Lang: "en"})

	sign := func(password string) result {
		t.Helper()
		b.Navigate(srv.URL + "/page")
		b.WaitVisible("#sign")
		b.Upload("#key", p12Path)
		b.Fill("#pw", password)
		b.Click("#sign")
		select {
		case res := <-results:
			b.WaitFor(`document.getElementById('status').textContent.startsWith('signed') || document.getElementById('status').textContent.startsWith('refused')`)
			return res
		case <-time.After(45 * time.Second):
			t.Fatalf("no result from the page; status %q; console:\n%s", b.Text("#status"), strings.Join(b.Console(), "\n"))
		}
		return result{}
	}

	t.Run("signs", func(t *testing.T) {
		res := sign(p12Password)
		if res.Error != "" {
			t.Fatalf("refused: %s (%s)", res.Error, res.Code)
		}
		signed, err := base64.StdEncoding.DecodeString(res.Signed)
		if err != nil {
			t.Fatal(err)
		}
		// The provider's own verification.
		s, err := cms.Verify(signed)
		if err != nil {
			t.Fatal(err)
		}
		attachment := base64.StdEncoding.EncodeToString(msg.Attachments[0].Data)
		if !s.Signer.Equal(ayse.Cert) || !bytes.Contains(s.Content, []byte(attachment)) {
			t.Fatalf("signer %s, content %q", s.Signer.Subject, s.Content)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		if _, err := s.Signer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: s.Intermediates(), CurrentTime: s.SigningTime,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
			t.Fatalf("chain to the dev CA: %v", err)
		}
		for _, want := range []string{"From: ayse.yilmaz@hs01.kep.tr", "X-TR-REM-iletiTip: eYazisma", "Subject: =?utf-8?q?=C3=96deme_emri?="} {
			if !bytes.Contains(signed, []byte(want)) {
				t.Errorf("signed message lacks %q", want)
			}
		}
		// openssl, against the dev CA.
		eml := filepath.Join(dir, "signed.eml")
		if err := os.WriteFile(eml, signed, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"smime", "-verify", "-CAfile", caPath, "-in", eml},
			{"cms", "-verify", "-CAfile", caPath, "-in", eml},
		} {
			out, err := exec.Command(openssl, append(args, "-out", filepath.Join(dir, "content"))...).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			content, _ := os.ReadFile(filepath.Join(dir, "content"))
			if !bytes.Contains(toLF(content), []byte("Merhaba Mehmet Bey,\nfatura ektedir.")) {
				t.Fatalf("openssl %s: content %q", args[0], content)
			}
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		res := sign("yanlis-parola")
		if res.Signed != "" || res.Code != "wrong-password" || !strings.Contains(res.Error, "password does not open") {
			t.Fatalf("got %+v, want a wrong-password refusal", res)
		}
		if got := b.Text("#status"); !strings.Contains(got, "Type the password") {
			t.Fatalf("status %q", got)
		}
	})

	t.Run("key stays in the browser", func(t *testing.T) {
		for name, secret := range map[string][]byte{"password": []byte(p12Password), "PKCS#12 file": p12[len(p12)/2 : len(p12)/2+64],
			"PKCS#12 file (base64)": []byte(base64.StdEncoding.EncodeToString(p12)[64:128])} {
			if rec.sent(secret) {
				t.Errorf("the %s reached the server", name)
			}
		}
	})

	t.Run("agent not running", func(t *testing.T) {
		port := noAgent
		if testtool.Eval[bool](b, fmt.Sprintf("KEPSign.agentAvailable(%d)", port)) {
			t.Fatal("agentAvailable on a closed port")
		}
		got := testtool.Eval[string](b, fmt.Sprintf(`KEPSign.withAgent(JSON.parse(document.getElementById('f').dataset.message), %d).then(() => 'signed', e => e.code + ': ' + e.message)`, port))
		if !strings.HasPrefix(got, "agent-unreachable: ") || !strings.Contains(got, "kep signer") {
			t.Fatalf("withAgent: %q", got)
		}
	})

	// kepsign.js's side of the agent's wire contract (docs/signing-in-the-
	// browser.md), against agentPeer; kep signer's own tests drive the agent.
	t.Run("agent contract", func(t *testing.T) {
		call := func(subject string) string {
			return testtool.Eval[string](b, fmt.Sprintf(`(async () => {
				if (!await KEPSign.agentAvailable(%d)) return 'unavailable';
				const msg = JSON.parse(document.getElementById('f').dataset.message);
				msg.Subject = %q;
				return KEPSign.withAgent(msg, %d).then(s => 'signed ' + new TextDecoder().decode(Uint8Array.from(atob(s), c => c.charCodeAt(0))), e => e.code + ': ' + e.message);
			})()`, agent, subject, agent))
		}
		if got := call("Ödeme emri"); got != "signed imzalı: Ödeme emri" {
			t.Errorf("signed: %q", got)
		}
		if got := call("ret"); got != "agent-refused: Kullanıcı imzayı onaylamadı." {
			t.Errorf("refused: %q", got)
		}
	})

	t.Run("accessibility", func(t *testing.T) {
		b.Navigate(srv.URL + "/page")
		b.WaitVisible("#sign")
		b.CheckAccessible()
	})
}

func toLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// agentPeer listens on loopback as kep signer does, by the wire contract
// alone: CORS for the page's origin only, GET /v1/status, and POST /v1/sign
// with the message JSON, answered {"signed"} or, for the subject "ret"
// (the user declined), 403 {"error"}. It returns the port.
func agentPeer(t *testing.T, pageOrigin *atomic.Value) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin, _ := pageOrigin.Load().(string)
		if origin == "" || r.Header.Get("Origin") != origin {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]string{"error": "yalnızca " + origin})
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Vary", "Origin")
		switch {
		case r.Method == http.MethodOptions:
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodGet && r.URL.Path == "/v1/status":
			json.NewEncoder(w).Encode(map[string]string{"status": "ready"})
		case r.Method == http.MethodPost && r.URL.Path == "/v1/sign" && r.Header.Get("Content-Type") == "application/json":
			var m client.Message
			if err := json.NewDecoder(r.Body).Decode(&m); err != nil || m.From == "" {
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf("bad message: %v", err)})
				return
			}
			w.Header().Set("Content-Type", "application/json")
			if m.Subject == "ret" {
				w.WriteHeader(http.StatusForbidden)
				json.NewEncoder(w).Encode(map[string]string{"error": "Kullanıcı imzayı onaylamadı."})
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"signed": base64.StdEncoding.EncodeToString([]byte("imzalı: " + m.Subject))})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
