package node_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// The autoconfig document as Thunderbird reads it.
type autoconfigDoc struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID       string       `xml:"id,attr"`
		Domains  []string     `xml:"domain"`
		Incoming []serverElem `xml:"incomingServer"`
		Outgoing []serverElem `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type serverElem struct {
	Type       string `xml:"type,attr"`
	Hostname   string `xml:"hostname"`
	Port       int    `xml:"port"`
	SocketType string `xml:"socketType"`
	Auth       string `xml:"authentication"`
	Username   string `xml:"username"`
}

func portOf(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// Thunderbird autoconfig and the provider CA download on the HTTPS
// listener name the node's real hostname and ports, and the CA served is
// the one that verifies the node's TLS certificate.
func TestClientSetup(t *testing.T) {
	w := providertest.New(t, store.SQLite)
	r := start(t, w)
	cfg := w.Node.Config
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := hc.Get("https://" + r.Endpoints.HTTPS + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	want := struct{ in, out []serverElem }{
		in: []serverElem{
			{"imap", cfg.SMTP.Hostname, portOf(t, r.Endpoints.IMAPS), "SSL", "password-cleartext", "%EMAILADDRESS%"},
			{"imap", cfg.SMTP.Hostname, portOf(t, r.Endpoints.IMAP), "STARTTLS", "password-cleartext", "%EMAILADDRESS%"}},
		out: []serverElem{
			{"smtp", cfg.SMTP.Hostname, portOf(t, r.Endpoints.Submissions), "SSL", "password-cleartext", "%EMAILADDRESS%"},
			{"smtp", cfg.SMTP.Hostname, portOf(t, r.Endpoints.Submission), "STARTTLS", "password-cleartext", "%EMAILADDRESS%"}},
	}
	for _, tc := range []struct {
		name, path string
		status     int
		domain     string // a second <domain> expected, for a subdomain
	}{
		{"well-known", "/.well-known/autoconfig/mail/config-v1.1.xml", 200, ""},
		{"emailaddress", "/mail/config-v1.1.xml?emailaddress=" + url.QueryEscape("ali.veli@"+cfg.Provider.Domain), 200, ""},
		{"subdomain", "/mail/config-v1.1.xml?emailaddress=" + url.QueryEscape("acme@sirket."+cfg.Provider.Domain), 200, "sirket." + cfg.Provider.Domain},
		{"foreign", "/mail/config-v1.1.xml?emailaddress=" + url.QueryEscape("someone@gmail.com"), 404, ""},
		{"not-an-address", "/mail/config-v1.1.xml?emailaddress=nobody", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status != 200 {
				if !strings.Contains(string(body), "not an address of this KEP provider") {
					t.Fatalf("refusal without its reason: %s", body)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
				t.Errorf("Content-Type %q", ct)
			}
			var doc autoconfigDoc
			if err := xml.Unmarshal(body, &doc); err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			domains := []string{cfg.Provider.Domain}
			if tc.domain != "" {
				domains = append(domains, tc.domain)
			}
			if doc.Version != "1.1" || doc.Provider.ID != cfg.Provider.Domain || strings.Join(doc.Provider.Domains, ",") != strings.Join(domains, ",") {
				t.Errorf("provider %+v", doc.Provider)
			}
			if !equalServers(doc.Provider.Incoming, want.in) || !equalServers(doc.Provider.Outgoing, want.out) {
				t.Errorf("servers:\n in  %+v\n out %+v\nwant\n in  %+v\n out %+v", doc.Provider.Incoming, doc.Provider.Outgoing, want.in, want.out)
			}
		})
	}

	// The CA: PEM at /ca.pem, DER at /ca.crt, the same certificate, the one
	// kep init wrote, and it verifies the IMAP server's certificate.
	resp, pemBody := get("/ca.pem")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-pem-file" {
		t.Fatalf("/ca.pem: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	onDisk, err := os.ReadFile(cfg.Path("keys/provider-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBody)
	diskBlk, _ := pem.Decode(onDisk)
	if blk == nil || diskBlk == nil || string(blk.Bytes) != string(diskBlk.Bytes) {
		t.Fatalf("/ca.pem is not keys/provider-ca.crt:\n%s", pemBody)
	}
	resp, der := get("/ca.crt")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-cert" || string(der) != string(blk.Bytes) {
		t.Fatalf("/ca.crt: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c, err := imapclient.DialTLS(r.Endpoints.IMAPS, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: cfg.SMTP.Hostname}})
	if err != nil {
		t.Fatalf("IMAPS with the downloaded CA and the autoconfig hostname: %v", err)
	}
	c.Close()
}

func equalServers(a, b []serverElem) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
