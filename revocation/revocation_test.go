package revocation_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
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

	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/revocation"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// world is a development CA with its revocation server, and a signer.
type world struct {
	ca     *pki.CA
	rs     *pki.RevocationServer
	clock  *clock
	signer *pki.Issued
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Test ESHS"}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	rs, err := pki.DevRevocationServer(ca, "127.0.0.1:0", c.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	is, err := ca.IssueSigner(pki.SignerSubject("10000000146", "Ayşe", "Yılmaz", "TCKN"), "", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return &world{ca: ca, rs: rs, clock: c, signer: is}
}

func TestDevCertificatesNameTheServer(t *testing.T) {
	w := newWorld(t)
	c := w.signer.Cert
	if len(c.OCSPServer) != 1 || c.OCSPServer[0] != w.rs.OCSPURL || len(c.CRLDistributionPoints) != 1 || c.CRLDistributionPoints[0] != w.rs.CRLURL {
		t.Fatalf("certificate names OCSP %v, CRL %v; want %s, %s", c.OCSPServer, c.CRLDistributionPoints, w.rs.OCSPURL, w.rs.CRLURL)
	}
	if !strings.HasPrefix(w.rs.OCSPURL, "http://127.0.0.1:") {
		t.Errorf("not on loopback: %s", w.rs.OCSPURL)
	}
}

func TestCheck(t *testing.T) {
	w := newWorld(t)
	cert, issuer := w.signer.Cert, w.ca.Cert
	onlyCRL := *cert
	onlyCRL.OCSPServer = nil
	deadOCSP := *cert
	deadOCSP.OCSPServer = []string{"http://127.0.0.1:1/ocsp"}
	none := *cert
	none.OCSPServer, none.CRLDistributionPoints = nil, nil
	otherCA, _ := pki.NewRootCA(pkix.Name{CommonName: "Other"}, pki.ECDSAP256, time.Hour)
	now := w.clock.Now()

	tests := []struct {
		name   string
		cert   *x509.Certificate
		issuer *x509.Certificate
		revoke bool
		kind   string
		err    error
	}{
		{"good by OCSP", cert, issuer, false, revocation.KindOCSP, nil},
		{"good by CRL", &onlyCRL, issuer, false, revocation.KindCRL, nil},
		{"OCSP unreachable, CRL answers", &deadOCSP, issuer, false, revocation.KindCRL, nil},
		{"no source", &none, issuer, false, "", revocation.ErrNoSource},
		{"signed by another CA", cert, otherCA.Cert, false, "", revocation.ErrUnavailable},
		{"revoked by OCSP", cert, issuer, true, revocation.KindOCSP, revocation.ErrRevoked},
		{"revoked by CRL", &onlyCRL, issuer, true, revocation.KindCRL, revocation.ErrRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.revoke {
				w.ca.Revoke(cert.SerialNumber, now.Add(-time.Minute), 1)
			}
			// A fresh checker: no cache between cases.
			res, err := revocation.New(revocation.Options{Now: w.clock.Now}).Check(context.Background(), tt.cert, tt.issuer, now)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("Check = %v, want %v", err, tt.err)
			}
			if tt.kind != "" && (res == nil || res.Data.Kind != tt.kind) {
				t.Fatalf("decided by %+v, want %s", res, tt.kind)
			}
			if res != nil {
				if _, err := revocation.StatusFromData(res.Data, cert.SerialNumber, issuer, now); err != nil {
					t.Errorf("the data does not verify again: %v", err)
				}
			}
		})
	}
}

// TestCache: responses are reused until their nextUpdate, then fetched again.
func TestCache(t *testing.T) {
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Test ESHS"}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	var hits atomic.Int64
	h := ca.RevocationHandler(c.Now, time.Minute)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); h.ServeHTTP(w, r) }))
	defer srv.Close()
	ca.OCSPURL = srv.URL + "/ocsp"
	is, err := ca.IssueSigner(pki.SignerSubject("10000000146", "Ayşe", "Yılmaz", ""), "", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ch := revocation.New(revocation.Options{Now: c.Now})
	check := func() error {
		_, err := ch.Check(context.Background(), is.Cert, ca.Cert, c.Now())
		return err
	}
	for range 5 {
		if err := check(); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("5 checks within nextUpdate fetched %d times, want 1", hits.Load())
	}
	// Revoked meanwhile: the cached response stands until its nextUpdate
	// (the CA's promise), then the revocation shows.
	ca.Revoke(is.Cert.SerialNumber, c.Now(), 0)
	c.Advance(30 * time.Second)
	if err := check(); err != nil || hits.Load() != 1 {
		t.Errorf("within nextUpdate: %v, %d fetches", err, hits.Load())
	}
	c.Advance(31 * time.Second)
	if err := check(); !errors.Is(err, revocation.ErrRevoked) || hits.Load() != 2 {
		t.Errorf("after nextUpdate: %v, %d fetches; want ErrRevoked after a second fetch", err, hits.Load())
	}
}

// TestStatusAsOf: the data speaks for an earlier time (a relayed message,
// judged as of the sending provider's acceptance), and a revocation after
// that time does not count against it.
func TestStatusAsOf(t *testing.T) {
	w := newWorld(t)
	now := w.clock.Now()
	w.ca.Revoke(w.signer.Cert.SerialNumber, now.Add(-time.Hour), 4)
	res, err := revocation.New(revocation.Options{Now: w.clock.Now}).Check(context.Background(), w.signer.Cert, w.ca.Cert, now)
	if !errors.Is(err, revocation.ErrRevoked) {
		t.Fatalf("Check = %v, want ErrRevoked", err)
	}
	before, err := revocation.StatusFromData(res.Data, w.signer.Cert.SerialNumber, w.ca.Cert, now.Add(-2*time.Hour))
	if err != nil || before.Status != revocation.Good {
		t.Errorf("as of two hours ago (before the revocation): %+v, %v; want good", before, err)
	}
	if _, err := revocation.StatusFromData(res.Data, w.signer.Cert.SerialNumber, w.ca.Cert, now.Add(time.Hour)); err == nil {
		t.Errorf("data past its nextUpdate accepted")
	}
	tampered := *res.Data
	tampered.DER = append([]byte(nil), res.Data.DER...)
	tampered.DER[len(tampered.DER)-3] ^= 1
	if _, err := revocation.StatusFromData(&tampered, w.signer.Cert.SerialNumber, w.ca.Cert, now); err == nil {
		t.Errorf("altered OCSP response accepted")
	}
}

// TestOpenSSL: the development CA's CRL and OCSP responder work with
// openssl's own client.
func TestOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	w := newWorld(t)
	dir := t.TempDir()
	caPEM, certPEM := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem")
	os.WriteFile(caPEM, pki.CertPEM(w.ca.Cert), 0o600)
	os.WriteFile(certPEM, pki.CertPEM(w.signer.Cert), 0o600)
	ocspStatus := func() string {
		out, err := exec.Command("openssl", "ocsp", "-issuer", caPEM, "-cert", certPEM, "-url", w.rs.OCSPURL, "-CAfile", caPEM, "-no_nonce").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl ocsp: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "Response verify OK") {
			t.Fatalf("openssl ocsp did not verify the response:\n%s", out)
		}
		return string(out)
	}
	if out := ocspStatus(); !strings.Contains(out, certPEM+": good") {
		t.Errorf("openssl ocsp, before revocation:\n%s", out)
	}
	w.ca.Revoke(w.signer.Cert.SerialNumber, w.clock.Now().Add(-time.Second), 1)
	if out := ocspStatus(); !strings.Contains(out, certPEM+": revoked") || !strings.Contains(out, "keyCompromise") {
		t.Errorf("openssl ocsp, after revocation:\n%s", out)
	}
	// The OCSP response the checker keeps (what a bundle carries) checks by
	// hand, as docs/certificates.md says.
	res, err := revocation.New(revocation.Options{}).Check(context.Background(), w.signer.Cert, w.ca.Cert, time.Now())
	if !errors.Is(err, revocation.ErrRevoked) {
		t.Fatalf("Check = %v", err)
	}
	respin := filepath.Join(dir, "revocation-1.der")
	os.WriteFile(respin, res.Data.DER, 0o600)
	out, err := exec.Command("openssl", "ocsp", "-respin", respin, "-issuer", caPEM, "-CAfile", caPEM, "-resp_text").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Response verify OK") || !strings.Contains(string(out), "Cert Status: revoked") {
		t.Errorf("openssl ocsp -respin: %v\n%s", err, out)
	}
	// The CRL: signed by the CA, listing the serial.
	resp, err := http.Get(w.rs.CRLURL)
	if err != nil {
		t.Fatal(err)
	}
	crlDER := filepath.Join(dir, "ca.crl")
	der, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(crlDER, der, 0o600)
	out, err = exec.Command("openssl", "crl", "-inform", "DER", "-in", crlDER, "-CAfile", caPEM, "-noout", "-text").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verify OK") || !strings.Contains(strings.ToUpper(string(out)), strings.ToUpper(w.signer.Cert.SerialNumber.Text(16))) {
		t.Errorf("openssl crl: %v\n%s", err, out)
	}
	out, err = exec.Command("openssl", "verify", "-crl_check", "-CAfile", caPEM, "-CRLfile", crlDER, certPEM).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "revoked") {
		t.Errorf("openssl verify -crl_check passed a revoked certificate: %v\n%s", err, out)
	}
}
