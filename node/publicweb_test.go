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
	"time"

	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/pki"
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
	session, _, err := w.Node.Accounts.NewSession(ctx, p, time.Hour)
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
		{"report in the web mail's session", "GET", "/report/" + url.PathEscape(string(id)) + ".html", "session", nil, "", 200, "<html"},
		{"browser signer", "GET", "/static/kepsign.js", "", nil, "", 200, "KEPSign"},
		{"browser signer's module", "GET", "/static/kepsign.wasm", "", nil, "", 200, "\x00asm"},
		{"Go's wasm support", "GET", "/static/wasm_exec.js", "", nil, "", 200, "Go"},
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
			switch tc.user {
			case "":
			case "session":
				req.AddCookie(&http.Cookie{Name: "__Host-kep_oturum", Value: session})
			default:
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

// TestReportAcrossProviders: in the demo world, ayşe at hs01 writes to
// elif at hs02. Her report at hs01 lists hs01's 10 beside the 20 and 40
// hs02 returned (issuer hs02, index in hs02's log, our receipt's index),
// and hs01's public page verifies hs02's bundle through the directory.
func TestReportAcrossProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo world")
	}
	ctx := context.Background()
	w, err := demo.Start(ctx, t.TempDir(), demo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ayse, _ := w.Info.Account("ayse")
	elif, _ := w.Info.Account("elif")
	signer, err := pki.LoadIssued(ayse.Certificate, ayse.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	hs01 := w.Info.Providers[0]
	msg := signed(t, ayse.Address, signer, elif.Address)
	if err := submit(t, hs01.Endpoints.Submission, ayse.Username, ayse.Password, ayse.Address, elif.Address, msg); err != nil && !strings.Contains(err.Error(), "Accepted") {
		t.Fatal(err)
	}
	id := string(regexp.MustCompile(`Message-ID: <([^>]+)>`).FindSubmatch(msg)[1])
	p, err := w.Nodes[0].Accounts.Authenticate(ctx, ayse.Username, ayse.Password, "")
	if err != nil {
		t.Fatal(err)
	}
	var es []*mailbox.EvidenceEntry
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		if es, err = w.Nodes[0].Mailbox.ListEvidence(ctx, p, mailbox.EvidenceQuery{HeaderID: id}); err != nil {
			t.Fatal(err)
		}
		if len(es) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hs02's evidence did not come back: %d evidence", len(es))
		}
	}
	if _, err := w.Nodes[0].Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequest("GET", "https://"+hs01.Endpoints.HTTPS+"/report/"+url.PathEscape(id)+".html", nil)
	req.SetBasicAuth(ayse.Username, ayse.Password)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{">10</span>", ">20</span>", ">40</span>", "(hs02.kep.tr)", "alıcı hizmet sağlayıcısınca kabul edildi", "bizim alındı kaydımız / our receipt"} {
		if resp.StatusCode != 200 || !strings.Contains(string(page), want) {
			t.Errorf("the report lacks %q (%d)", want, resp.StatusCode)
		}
	}
	// hs02's 40, as hs01 keeps it, on hs01's public page.
	var foreign []byte
	for _, e := range es {
		if e.Code == evidence.Delivered {
			if foreign, err = w.Nodes[0].Mailbox.EvidenceBundle(ctx, p, e.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("bundle", "delil.zip")
	fw.Write(foreign)
	mw.Close()
	resp, err = client.Post("https://"+hs01.Endpoints.HTTPS+"/dogrula", mw.FormDataContentType(), &form)
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "DELİL GEÇERLİ") || !strings.Contains(string(page), "provider directory (hs02)") {
		t.Fatalf("hs02's bundle at hs01's /dogrula: %d\n%s", resp.StatusCode, page)
	}
}
