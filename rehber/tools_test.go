package rehber_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/rehber"
)

// TestOtherClients speaks the protocol with tools that know nothing of
// this code, as another vendor's provider would: openssl computes the pin
// the way docs/relay.md says, and curl asks both endpoints, pinning the
// server with --pinnedpubkey (RFC 7469 form) and presenting a client
// certificate.
func TestOtherClients(t *testing.T) {
	for _, tool := range []string{"curl", "openssl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	each(t, rehber.Limits{}, func(t *testing.T, w *world) {
		dir := t.TempDir()
		write := func(name string, b []byte) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		pemOf := func(name string, is *pki.Issued) (string, string) {
			k, err := pki.KeyPEM(is.Key)
			if err != nil {
				t.Fatal(err)
			}
			return write(name+".crt", pki.CertPEM(is.Cert)), write(name+".key", k)
		}
		hs01crt, hs01key := pemOf("hs01", w.nodes["hs01"].cert)
		strangerCrt, strangerKey := pemOf("stranger", w.issue("hs01.kep.tr"))
		hs02crt, _ := pemOf("hs02", w.nodes["hs02"].cert)

		// The pin recipe of docs/relay.md.
		out, err := exec.Command("bash", "-c", `openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`, "pin", hs02crt).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl: %v\n%s", err, out)
		}
		pin := strings.TrimSpace(string(out))
		if pin != directory.SPKIPin(w.nodes["hs02"].cert.Cert) {
			t.Fatalf("openssl pin %q, directory pin %q", pin, directory.SPKIPin(w.nodes["hs02"].cert.Cert))
		}

		tckn := w.tckn()
		w.person("hs02", tckn, "Deniz", "Aydın", "denizin parolası")
		w.org("hs02", account.Company, identity.ID{Scheme: identity.VKN, Value: w.vkn()}, "Çiçek Pazarı A.Ş.")
		curl := func(args ...string) (int, []byte) {
			t.Helper()
			var stdout, stderr bytes.Buffer
			cmd := exec.Command("curl", append([]string{"-sS", "-k", "-o", "-", "-w", "\n%{http_code}"}, args...)...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				return -1, stderr.Bytes()
			}
			out := stdout.Bytes()
			i := bytes.LastIndexByte(out, '\n')
			n, err := strconv.Atoi(string(out[i+1:]))
			if i < 0 || err != nil {
				t.Fatalf("curl output %q", out)
			}
			return n, out[:i]
		}
		peer := w.nodes["hs02"].peer.URL + "/rehber/v1/"
		pinned := "sha256//" + pin

		code, body := curl("--pinnedpubkey", pinned, "--cert", hs01crt, "--key", hs01key, "--data-urlencode", "tckn="+tckn, peer+"persons")
		var ans rehber.Answer
		if code != 200 || json.Unmarshal(body, &ans) != nil || len(ans.Entries) != 1 || ans.Entries[0].Address != "deniz.aydin@hs02.kep.tr" {
			t.Fatalf("peer persons: %d %s", code, body)
		}
		code, body = curl("--pinnedpubkey", pinned, "--cert", hs01crt, "--key", hs01key, peer+"organisations?"+url.Values{"name": {"CICEK PAZARI"}}.Encode())
		if code != 200 || !bytes.Contains(body, []byte("Çiçek Pazarı A.Ş.")) {
			t.Fatalf("peer organisations: %d %s", code, body)
		}
		code, body = curl("--pinnedpubkey", pinned, "--cert", strangerCrt, "--key", strangerKey, "--data-urlencode", "tckn="+tckn, peer+"persons")
		if code != 403 || !bytes.Contains(body, []byte(`"code":"unknown-provider"`)) {
			t.Fatalf("stranger: %d %s", code, body)
		}
		if code, _ := curl("--pinnedpubkey", pinned, "--data-urlencode", "tckn="+tckn, peer+"persons"); code != -1 {
			t.Fatalf("a client without a certificate got HTTP %d", code)
		}
		if code, msg := curl("--pinnedpubkey", "sha256//"+directory.SPKIPin(w.issue("x").Cert), "--cert", hs01crt, "--key", hs01key, "--data-urlencode", "tckn="+tckn, peer+"persons"); code != -1 {
			t.Fatalf("curl accepted a server with another pin: %d %s", code, msg)
		}

		// The user endpoint, with HTTP Basic.
		user := w.nodes["hs02"].public.URL + "/rehber/v1/persons"
		if code, body := curl("--data-urlencode", "tckn="+tckn, user); code != 401 || !bytes.Contains(body, []byte(`"code":"unauthenticated"`)) {
			t.Fatalf("no login: %d %s", code, body)
		}
		if code, body := curl("-u", "deniz.aydin@hs02.kep.tr:denizin parolası", "--data-urlencode", "tckn="+tckn, user); code != 200 || !bytes.Contains(body, []byte("deniz.aydin@hs02.kep.tr")) {
			t.Fatalf("with login: %d %s", code, body)
		}
	})
}
