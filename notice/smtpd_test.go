package notice_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/internal/testtool"
)

// smtpdScript is a real SMTP server (Python's aiosmtpd) that requires
// STARTTLS and AUTH, and writes each message it accepts to DIR/N.eml with
// its envelope in DIR/N.json.
const smtpdScript = `
import json, os, ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, certfile, keyfile, outdir, user, password, mode = sys.argv[1:8]

class Handler:
    def __init__(self):
        self.n = 0
    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(outdir, "%04d" % self.n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 OK"

def auth(server, session, envelope, mechanism, data):
    ok = data.login.decode() == user and data.password.decode() == password
    return AuthResult(success=ok)

ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(certfile, keyfile)
if mode == "tls":  # implicit TLS (port 465 style)
    # aiosmtpd does not count implicit TLS as encryption for AUTH.
    c = Controller(Handler(), hostname="127.0.0.1", port=int(port), ssl_context=ctx,
                   auth_required=True, auth_require_tls=False, authenticator=auth, decode_data=False)
else:  # STARTTLS required before anything else
    c = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=ctx, require_starttls=True,
                   auth_required=True, authenticator=auth, decode_data=False)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
`

// smtpd is a running aiosmtpd.
type smtpd struct {
	Addr      string
	Dir       string
	User      string
	Password  string
	TLSConfig *tls.Config // trusts the server's certificate
}

// startSMTPD starts the real SMTP server on a loopback port, requiring
// STARTTLS, or TLS from the first byte when mode is notice.TLSImplicit; it
// stops with the test.
func startSMTPD(t *testing.T, mode string) *smtpd {
	t.Helper()
	python := testtool.Require(t, testtool.AIOSMTPD)
	dir := t.TempDir()
	certPEM, keyPEM, pool := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	out := filepath.Join(dir, "mail")
	os.Mkdir(out, 0o700)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &smtpd{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: out, User: "bildirim", Password: "röle parolası",
		TLSConfig: &tls.Config{RootCAs: pool}}
	cmd := exec.Command(python, "-c", smtpdScript, fmt.Sprint(port), certFile, keyFile, out, s.User, s.Password, mode)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer // shown when the test fails
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("aiosmtpd's output:\n%s", stderr.String())
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("aiosmtpd did not start: %q %v", line, err)
	}
	return s
}

// received is one message the server accepted.
type received struct {
	MailFrom string   `json:"mail_from"`
	RcptTos  []string `json:"rcpt_tos"`
	Raw      []byte   `json:"-"`
}

// Messages returns what the server accepted so far, in order.
func (s *smtpd) Messages(t *testing.T) []received {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(s.Dir, "*.eml"))
	sort.Strings(names)
	var out []received
	for _, n := range names {
		var r received
		b, err := os.ReadFile(strings.TrimSuffix(n, ".eml") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.Raw, err = os.ReadFile(n); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), pool
}
