package tsa

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pki"
)

// testPolicy is under the ITU-T/ISO example arc {joint-iso-itu-t example(999)}.
var testPolicy = asn1.ObjectIdentifier{2, 999, 3161, 1}

// world is a development PKI with a TSA served on a real loopback socket.
type world struct {
	t      testing.TB
	dir    string
	ca     *pki.CA
	tsa    *pki.Issued
	srv    *Server
	http   *httptest.Server
	roots  *x509.CertPool
	caPEM  string // file with the root
	tsaPEM string // file with the TSA certificate
}

func newCA(t testing.TB, name string) *pki.CA {
	t.Helper()
	ca, err := pki.NewRootCA(pkix.Name{Country: []string{"TR"}, CommonName: name}, pki.ECDSAP256, 20*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func newWorld(t testing.TB, kt pki.KeyType) *world {
	t.Helper()
	ca := newCA(t, "KEP Dev Root")
	is, err := ca.IssueTSA("KEP Dev TSA", kt)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(is, testPolicy, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startWorld(t, ca, is, srv)
}

func startWorld(t testing.TB, ca *pki.CA, is *pki.Issued, srv *Server) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), ca: ca, tsa: is, srv: srv, roots: x509.NewCertPool()}
	w.roots.AddCert(ca.Cert)
	w.http = httptest.NewServer(srv)
	t.Cleanup(w.http.Close)
	w.caPEM = w.write("ca.pem", pki.CertPEM(ca.Cert))
	w.tsaPEM = w.write("tsa.pem", pki.CertPEM(is.Cert))
	return w
}

func (w *world) client() *Client {
	c := NewClient(w.http.URL)
	c.Roots = w.roots
	return c
}

func (w *world) write(name string, data []byte) string {
	w.t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		w.t.Fatal(err)
	}
	return p
}

func needOpenSSL(t testing.TB) {
	t.Helper()
	testtool.Require(t, testtool.OpenSSL)
}

// openssl runs openssl in dir and returns its combined output and error.
func openssl(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustOpenSSL(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := openssl(t, dir, args...)
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// opensslVerifyOK runs `openssl ts -verify` and reports whether it said OK.
func opensslVerifyOK(t testing.TB, dir string, args ...string) (bool, string) {
	t.Helper()
	out, err := openssl(t, dir, append([]string{"ts", "-verify"}, args...)...)
	return err == nil && strings.Contains(out, "Verification: OK"), out
}

func sha256Of(b []byte) (crypto.Hash, []byte) {
	s := sha256.Sum256(b)
	return crypto.SHA256, s[:]
}
