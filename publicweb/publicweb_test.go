package publicweb_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/publicweb"
	"github.com/kephs/kep/tlog"
)

// fixture is a provider with one accepted and delivered message, its
// evidence in a checkpoint, and the public pages served over HTTP.
type fixture struct {
	w        *providertest.World
	srv      *httptest.Server
	site     *publicweb.Site
	bundle   []byte // the acceptance evidence's bundle
	original []byte
	seq      int64
	doc      []byte
}

func site(w *providertest.World) *publicweb.Site {
	cas := x509.NewCertPool()
	ca, err := pki.LoadCertsPEM(w.Node.Config.Path("keys/provider-ca.crt"))
	if err != nil {
		w.T.Fatal(err)
	}
	cas.AddCert(ca[0])
	n := w.Node
	return &publicweb.Site{DB: n.DB, ProviderID: n.Config.Provider.ID, Domain: n.Config.Provider.Domain, Now: n.Now,
		Anchors: evidence.Anchors{ProviderCAs: cas, TSACAs: n.TSARoots, LogKeys: tlog.SplitKeys(n.LogKey)},
		Entries: func(ctx context.Context, start, end int64) ([][]byte, error) {
			return mailbox.LogEntries(ctx, n.DB.Q(), start, end)
		}}
}

// accepted submits a signed message and returns its original, the leaf
// index of its acceptance evidence and that evidence's bundle.
func accepted(t *testing.T, w *providertest.World) (original []byte, seq int64, bundle []byte) {
	t.Helper()
	ctx := context.Background()
	ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: =?utf-8?q?=C3=96deme_emri?=\r\nDate: %s\r\nMessage-ID: <%d@client>\r\nX-TR-REM-iletiTip: standart\r\nMIME-Version: 1.0\r\n",
		ayse.Account.Address, mehmet.Account.Address, time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
	raw, err := cms.BuildSigned([]byte(hdr), []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nÖdeme emri: 1.000 TL.\r\n"), ayse.Signer.Key, ayse.Signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	bw, err := w.Node.Blobs.Create()
	if err != nil {
		t.Fatal(err)
	}
	bw.Write(raw)
	d, gen, err := bw.CommitDeferred()
	if err != nil {
		t.Fatal(err)
	}
	msg, _, err := w.Node.Mailbox.Accept(ctx, &mailbox.Submission{Sender: ayse.Account, Original: d, Size: int64(len(raw)), BlobGen: gen,
		From: ayse.Account.Address, Recipients: []string{mehmet.Account.Address}, IletiID: "ileti-" + evidence.NewID(), IletiTip: "standart",
		AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Node.Mailbox.DeliverQueued(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Node.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := evidence.Get(ctx, w.Q(), msg.EvidenceID)
	if err != nil {
		t.Fatal(err)
	}
	if bundle, err = w.Node.Bundle(ctx, st.Seq); err != nil {
		t.Fatal(err)
	}
	return raw, st.Seq, bundle
}

func newFixture(t *testing.T) *fixture {
	w := providertest.New(t, "sqlite")
	f := &fixture{w: w, site: site(w)}
	f.original, f.seq, f.bundle = accepted(t, w)
	b, err := evidence.ParseBundle(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	f.doc = b.Evidence
	f.srv = httptest.NewServer(f.site.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

// upload posts a multipart form with the given files (field → content).
func upload(t *testing.T, url string, files map[string][]byte) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, field := range []string{"bundle", "original", "other"} {
		data, ok := files[field]
		if !ok {
			continue
		}
		fw, err := mw.CreateFormFile(field, field+".bin")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
	}
	mw.Close()
	resp, err := http.Post(url+"/dogrula", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkPage(t, resp, b)
	return resp.StatusCode, string(b)
}

// checkPage: every page carries the strict CSP and no inline script or style.
func checkPage(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	for _, bad := range []string{"<script", "style=", "<style", "javascript:"} {
		if bytes.Contains(body, []byte(bad)) {
			t.Errorf("the page has %q", bad)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkPage(t, resp, b)
	return resp.StatusCode, string(b)
}

// forged returns the bundle with its evidence changed after signing (a
// later event time), repacked as a well-formed bundle.
func forged(t *testing.T, bundle []byte) []byte {
	t.Helper()
	b, err := evidence.ParseBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b.Evidence, []byte("<EvidenceIdentifier>"))
	if i < 0 {
		t.Fatal("no EvidenceIdentifier in the evidence")
	}
	j := i + len("<EvidenceIdentifier>")
	c := b.Evidence[j]
	b.Evidence = bytes.Clone(b.Evidence)
	if c == 'a' {
		b.Evidence[j] = 'b'
	} else {
		b.Evidence[j] = 'a'
	}
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyUpload(t *testing.T) {
	f := newFixture(t)
	other := providertest.New(t, "sqlite") // another provider's CA and log, trusted by nobody here
	_, _, foreign := accepted(t, other)
	wrong := append(bytes.Clone(f.original), []byte("\r\nP.S.\r\n")...)
	for _, tc := range []struct {
		name   string
		files  map[string][]byte
		status int
		want   []string
	}{
		{"bundle", map[string][]byte{"bundle": f.bundle}, 200, []string{"DELİL GEÇERLİ", "VALID", "GEÇTİ / passed", "gönderici hizmet sağlayıcısınca kabul edildi", "Asıl ileti yüklenmedi"}},
		{"bundle and original", map[string][]byte{"bundle": f.bundle, "original": f.original}, 200, []string{"DELİL GEÇERLİ", "Yüklediğiniz ileti, delilin belirttiği iletinin ta kendisi"}},
		{"wrong original", map[string][]byte{"bundle": f.bundle, "original": wrong}, 422, []string{"DELİL GEÇERSİZ", "BAŞARISIZ / failed:</strong> Yüklediğiniz ileti", "the evidence states"}},
		{"forged evidence", map[string][]byte{"bundle": forged(t, f.bundle)}, 422, []string{"DELİL GEÇERSİZ", "BAŞARISIZ / failed:</strong> Delilin elektronik imzası geçerli"}},
		{"damaged bundle", map[string][]byte{"bundle": f.bundle[:len(f.bundle)/2]}, 422, []string{"DELİL GEÇERSİZ", "BAŞARISIZ / failed:</strong> Dosya eksiksiz bir delil paketi"}},
		{"another provider's bundle", map[string][]byte{"bundle": foreign}, 422, []string{"DELİL GEÇERSİZ", "BAŞARISIZ / failed:</strong> İmzalayan sertifika, güvenilir"}},
		{"not a bundle", map[string][]byte{"bundle": []byte("%PDF-1.4 not a zip")}, 422, []string{"Bu dosya bir delil paketi değil", "not an evidence bundle"}},
		{"no bundle", map[string][]byte{"original": f.original}, 400, []string{"Delil paketi seçilmedi", "No evidence bundle was chosen"}},
		{"empty bundle", map[string][]byte{"bundle": {}}, 400, []string{"Delil paketi seçilmedi"}},
		{"oversize", map[string][]byte{"bundle": f.bundle, "original": bytes.Repeat([]byte("x"), publicweb.DefaultMaxUpload)}, 413, []string{"Yükleme çok büyük", "too large", "32 MiB"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			status, body := upload(t, f.srv.URL, tc.files)
			if status != tc.status {
				t.Fatalf("status %d, want %d\n%s", status, tc.status, body)
			}
			for _, want := range tc.want {
				if !strings.Contains(body, want) {
					t.Errorf("the page lacks %q\n%s", want, body)
				}
			}
			if des, _ := os.ReadDir(tmp); len(des) != 0 {
				t.Errorf("the upload left %d files in TMPDIR", len(des))
			}
		})
	}
	t.Run("not a form", func(t *testing.T) {
		resp, err := http.Post(f.srv.URL+"/dogrula", "application/zip", bytes.NewReader(f.bundle))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), "The form could not be read") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
}

func TestLookup(t *testing.T) {
	f := newFixture(t)
	sum := sha256.Sum256(f.doc)
	d := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name, query string
		status      int
		want        string
	}{
		{"form", "", 200, "diske yazılmaz"},
		{"in the log", fmt.Sprintf("?d=%s&i=%d", d, f.seq), 200, "son kontrol noktası onu içeriyor"},
		{"another leaf", fmt.Sprintf("?d=%s&i=%d", d, f.seq+1), 404, "bu özete sahip değil"},
		{"another digest", fmt.Sprintf("?d=%s&i=%d", strings.Repeat("ab", 32), f.seq), 404, "does not have this digest"},
		{"beyond the checkpoint", fmt.Sprintf("?d=%s&i=%d", d, 1<<40), 200, "not in a checkpoint yet"},
		{"short digest", fmt.Sprintf("?d=%s&i=%d", d[:10], f.seq), 400, "The link is incomplete or damaged"},
		{"bad index", "?d=" + d + "&i=-1", 400, "bir kayıt sırası olmalı"},
		{"index only", "?i=3", 400, "QR kodu yeniden okutun"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(t, f.srv.URL+"/dogrula"+tc.query)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("%d, want %d with %q\n%s", status, tc.status, tc.want, body)
			}
			if strings.Contains(body, "Ayşe") || strings.Contains(body, "@hs01.kep.tr") {
				t.Error("the lookup page names a person")
			}
		})
	}
}

func TestAuditPage(t *testing.T) {
	f := newFixture(t)
	cp, err := tlog.LatestCheckpoint(context.Background(), f.w.Q())
	if err != nil {
		t.Fatal(err)
	}
	status, body := get(t, f.srv.URL+"/denetim")
	for _, want := range []string{fmt.Sprintf("<dd>%d</dd>", cp.Size), strings.SplitN(string(cp.Note), "\n", 2)[0], "kep log consistency", "/log/checkpoint", "/log/tile/", f.site.Anchors.LogKeys[0]} {
		if !strings.Contains(html.UnescapeString(body), want) {
			t.Errorf("/denetim lacks %q", want)
		}
	}
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	// An empty log says so.
	empty := httptest.NewServer(site(providertest.New(t, "sqlite")).Handler())
	defer empty.Close()
	if status, body := get(t, empty.URL+"/denetim"); status != 200 || !strings.Contains(body, "no checkpoint yet") {
		t.Errorf("empty log: %d %s", status, body)
	}
	if status, body := get(t, f.srv.URL+"/static/public.css"); status != 200 || !strings.Contains(body, ".verdict") {
		t.Errorf("stylesheet: %d", status)
	}
}

// TestBusy: while MaxVerifying uploads are being read, one more is
// refused with 503 and Retry-After, and accepted again once they end.
func TestBusy(t *testing.T) {
	f := newFixture(t)
	f.site.MaxVerifying = 1
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan int)
	go func() {
		resp, err := http.Post(f.srv.URL+"/dogrula", mw.FormDataContentType(), pr)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	fw, _ := mw.CreateFormFile("bundle", "delil.zip")
	fw.Write(f.bundle[:100]) // the first upload is under way, its slot taken
	var status int
	var body string
	for i := 0; i < 50; i++ {
		if status, body = upload(t, f.srv.URL, map[string][]byte{"bundle": f.bundle}); status == 503 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status != 503 || !strings.Contains(body, "send again in a few seconds") {
		t.Fatalf("while busy: %d", status)
	}
	fw.Write(f.bundle[100:])
	mw.Close()
	pw.Close()
	if got := <-done; got != 200 {
		t.Fatalf("the first upload: %d", got)
	}
	// The slot is given back when the first handler returns, just after
	// its reply reached the client.
	for i := 0; ; i++ {
		status, _ := upload(t, f.srv.URL, map[string][]byte{"bundle": f.bundle})
		if status == 200 {
			break
		}
		if i == 50 {
			t.Fatalf("after: %d", status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
