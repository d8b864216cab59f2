package node_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// TestPublicPagesMounted: the HTTPS listener serves the evidence report
// (with Basic auth) and the public pages, and the verification page
// trusts the node's own anchors (a bundle of its evidence is valid).
func TestPublicPagesMounted(t *testing.T) {
	w := providertest.New(t, store.SQLite)
	r := start(t, w)
	ctx := context.Background()
	ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
	A, M := ayse.Account.Address, mehmet.Account.Address
	msg := signed(t, A, ayse.Signer, M)
	if err := submit(t, r.Endpoints.Submission, A, ayse.Password, A, M, msg); err != nil && !strings.Contains(err.Error(), "Accepted") {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`Message-ID: <([^>]+)>`).FindSubmatch(msg)[1]
	if _, err := w.Node.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := w.Node.Accounts.Authenticate(ctx, A, ayse.Password, "")
	if err != nil {
		t.Fatal(err)
	}
	es, err := w.Node.Mailbox.ListEvidence(ctx, p, mailbox.EvidenceQuery{HeaderID: string(id)})
	if err != nil || len(es) == 0 {
		t.Fatalf("evidence of <%s>: %v %v", id, es, err)
	}
	bundle, err := w.Node.Bundle(ctx, es[len(es)-1].Seq)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	base := "https://" + r.Endpoints.HTTPS
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("bundle", "delil.zip")
	fw.Write(bundle)
	mw.Close()
	for _, tc := range []struct {
		name, method, path, user string
		body                     io.Reader
		ctype                    string
		status                   int
		want                     string
	}{
		{"report pdf", "GET", "/report/" + url.PathEscape(string(id)) + ".pdf", A, nil, "", 200, "%PDF-"},
		{"report without login", "GET", "/report/" + url.PathEscape(string(id)) + ".html", "", nil, "", 401, "Sign in"},
		{"report stylesheet", "GET", "/static/report.css", "", nil, "", 200, "@media print"},
		{"verification form", "GET", "/dogrula", "", nil, "", 200, "Delil paketi yükleyin"},
		{"verification", "POST", "/dogrula", "", &form, mw.FormDataContentType(), 200, "DELİL GEÇERLİ"},
		{"audit", "GET", "/denetim", "", nil, "", 200, "kep log consistency"},
		{"public stylesheet", "GET", "/static/public.css", "", nil, "", 200, ".verdict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, tc.body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			if tc.user != "" {
				req.SetBasicAuth(tc.user, ayse.Password)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("%d, want %d with %q:\n%.2000s", resp.StatusCode, tc.status, tc.want, b)
			}
		})
	}
}
