package testtool_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pki"
)

// The harness against a page that breaks accessibility rules on purpose,
// served over TLS by a certificate from a CA the browser is told to trust
// (as the demo CA is trusted for the demo providers): axe-core finds the
// serious and critical violations, the helpers read and fill the page, and a
// screenshot is a PNG.
func TestBrowser(t *testing.T) {
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Test Provider CA"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueProvider("hs01.kep.tr", []string{"localhost"}, pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Kötü sayfa</title></head><body>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<input id="ad" type="text">
<p id="out">Merhaba</p>
</body></html>`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw, ca.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	b := testtool.NewBrowser(t, testtool.BrowserOptions{Trust: []*x509.Certificate{ca.Cert}, Width: 390, Height: 844})
	b.Navigate(srv.URL)
	if got := b.Text("#out"); got != "Merhaba" {
		t.Fatalf("text %q", got)
	}
	b.Fill("#ad", "Ayşe Yılmaz")
	if got := testtool.Eval[string](b, `document.getElementById('ad').value`); got != "Ayşe Yılmaz" {
		t.Fatalf("filled %q", got)
	}

	found := map[string]bool{}
	for _, v := range b.Axe() {
		found[v.ID] = true
		if v.Impact != "serious" && v.Impact != "critical" || len(v.Nodes) == 0 {
			t.Errorf("reported %s", v)
		}
	}
	for _, want := range []string{"image-alt", "label", "html-has-lang"} {
		if !found[want] {
			t.Errorf("axe-core did not report %s; it reported %v", want, found)
		}
	}

	png := filepath.Join(t.TempDir(), "page.png")
	b.Screenshot(png)
	if data, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %v %q", err, data[:min(8, len(data))])
	}
	for _, l := range b.Console() {
		if strings.Contains(l, "ERR_CERT") {
			t.Errorf("certificate error: %s", l)
		}
	}
}
