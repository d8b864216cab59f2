package report_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/report"
	"github.com/kephs/kep/store"
)

const subject = "Ödeme emri — İhtarname"

// world is a provider with a message from Ayşe to İsmail that was
// accepted (10), delivered (40) and read (60), all in a checkpoint.
type world struct {
	*providertest.World
	ayse, ismail, outsider *providertest.Person
	headerID               string
	msg                    *mailbox.KEPMessage
}

func newWorld(t *testing.T, pw *providertest.World) *world {
	w := &world{World: pw}
	ctx := context.Background()
	w.ayse = w.Person("Çiğdem Ayşe", "Öztürk")
	w.ismail = w.Person("İsmail Çağlar", "Güneş")
	w.outsider = w.Person("Işıl", "Doğan")
	w.headerID = fmt.Sprintf("%d.rapor@client", time.Now().UnixNano())
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\nX-TR-REM-iletiTip: eTebligat\r\nMIME-Version: 1.0\r\n",
		w.ayse.Account.Address, w.ismail.Account.Address, mime.QEncoding.Encode("utf-8", subject), time.Now().Format(time.RFC1123Z), w.headerID)
	raw, err := cms.BuildSigned([]byte(hdr), []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nÖdeme emri: 1.000 TL.\r\n"), w.ayse.Signer.Key, w.ayse.Signer.Cert, nil)
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
	mb := w.Node.Mailbox
	w.msg, _, err = mb.Accept(ctx, &mailbox.Submission{Sender: w.ayse.Account, Original: d, Size: int64(len(raw)), BlobGen: gen,
		From: w.ayse.Account.Address, Recipients: []string{w.ismail.Account.Address}, IletiID: "ileti-" + evidence.NewID(), IletiTip: "eTebligat", HeaderID: "<" + w.headerID + ">",
		AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.DeliverQueued(ctx, 10); err != nil {
		t.Fatal(err)
	}
	w.Clock.Advance(90 * time.Minute)
	inbox, err := mailbox.GetFolder(ctx, w.Q(), w.ismail.Account.ID, mailbox.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := mailbox.ListMessages(ctx, w.Q(), inbox.ID)
	if err != nil || len(ms) != 1 {
		t.Fatalf("İsmail's inbox: %d messages, %v", len(ms), err)
	}
	if err := mb.MarkRead(ctx, w.principal(t, w.ismail), ms[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Node.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) principal(t *testing.T, p *providertest.Person) *account.Principal {
	t.Helper()
	pr, err := w.Node.Accounts.Authenticate(context.Background(), p.Account.Address, p.Password, "")
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func codes(r *report.Report) string {
	var cs []string
	for _, it := range r.Evidence {
		cs = append(cs, fmt.Sprint(int(it.Code)))
	}
	return strings.Join(cs, " ")
}

func TestBuild(t *testing.T) {
	providertest.Each(t, func(t *testing.T, pw *providertest.World) { testBuild(t, newWorld(t, pw)) })
}

func testBuild(t *testing.T, w *world) {
	ctx := context.Background()
	opts := report.Options{BaseURL: "https://kep.hs01.example", Now: w.Clock.Now}
	for _, tc := range []struct {
		name    string
		who     *providertest.Person
		id      string
		codes   string // "" means not found
		subject string
	}{
		{"sender", w.ayse, w.headerID, "10 40 60", subject},
		{"sender, Message-ID with brackets", w.ayse, "<" + w.headerID + ">", "10 40 60", subject},
		{"recipient sees what concerns them", w.ismail, w.headerID, "40 60", subject},
		{"outsider", w.outsider, w.headerID, "", ""},
		{"unknown message", w.ayse, "nothing@client", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := report.Build(ctx, w.Node.Mailbox, w.principal(t, tc.who), tc.id, opts)
			if tc.codes == "" {
				if !errors.Is(err, report.ErrNotFound) {
					t.Fatalf("want ErrNotFound, got %v (%+v)", err, r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := codes(r); got != tc.codes {
				t.Fatalf("codes %q, want %q", got, tc.codes)
			}
			if r.Subject != tc.subject || r.IletiTip != "eTebligat" || r.HeaderID != w.headerID {
				t.Errorf("message facts: subject %q, iletiTip %q, id %q", r.Subject, r.IletiTip, r.HeaderID)
			}
			if r.Sender.Address != w.ayse.Account.Address || len(r.Recipients) != 1 || r.Recipients[0].Address != w.ismail.Account.Address {
				t.Errorf("parties: %+v → %+v", r.Sender, r.Recipients)
			}
			if r.OriginalDigest != hex.EncodeToString(w.msg.Digest[:]) || r.DigestAlgorithm != "SHA-256" {
				t.Errorf("original digest %s %s, want %x", r.DigestAlgorithm, r.OriginalDigest, w.msg.Digest)
			}
			for _, it := range r.Evidence {
				st, err := evidence.Get(ctx, w.Q(), it.ID)
				if err != nil {
					t.Fatal(err)
				}
				if sum := sha256.Sum256(st.Document); it.EvidenceDigest != hex.EncodeToString(sum[:]) || it.LogIndex != st.Seq {
					t.Errorf("%d: digest %s index %d, want %x %d", it.Code, it.EvidenceDigest, it.LogIndex, sum, st.Seq)
				}
				if it.OriginalDigest != r.OriginalDigest || it.Foreign || it.Checkpoint == nil || it.Checkpoint.Size <= it.LogIndex || it.Checkpoint.Stamped.IsZero() {
					t.Errorf("%d: %+v, checkpoint %+v", it.Code, it, it.Checkpoint)
				}
				if it.Time.Local.Location().String() != "Europe/Istanbul" || !it.Time.UTC.Equal(st.EventTime) || it.Time.UTC.Location() != time.UTC {
					t.Errorf("%d: time %v / %v, want %v", it.Code, it.Time.Local, it.Time.UTC, st.EventTime)
				}
				if it.Code == evidence.Read && !strings.Contains(it.Reason, "Alıcı iletinin içeriğini açtı") {
					t.Errorf("60's reason: %q", it.Reason)
				}
			}
			first := r.Evidence[0]
			d, _ := hex.DecodeString(first.EvidenceDigest)
			if want := report.VerifyURL(opts.BaseURL, [32]byte(d), first.LogIndex); r.QR != want || first.VerifyURL != want {
				t.Errorf("QR %q, want %q", r.QR, want)
			}
			checkQRPayload(t, r.QR, tc.who, w)
		})
	}
}

// checkQRPayload: the QR code carries the page, a digest and an index,
// and nothing that names a person.
func checkQRPayload(t *testing.T, qr string, who *providertest.Person, w *world) {
	t.Helper()
	u, err := url.Parse(qr)
	if err != nil || u.Path != "/dogrula" || len(u.Query()) != 2 || len(u.Query().Get("d")) != 64 || u.Query().Get("i") == "" {
		t.Fatalf("QR payload %q", qr)
	}
	for _, p := range []*providertest.Person{w.ayse, w.ismail, who} {
		for _, secret := range []string{p.TCKN, p.Account.Address, "Çiğdem", "cigdem", "Ayşe", "Ayse", "Öztürk", "ozturk", "İsmail", "ismail", "Güneş", "gunes"} {
			if strings.Contains(strings.ToLower(qr), strings.ToLower(secret)) {
				t.Errorf("the QR payload %q contains %q", qr, secret)
			}
		}
	}
}

// TestPDF reads the PDF back with poppler's pdftotext: names, reasons and
// the code meanings keep their Turkish letters (ğüşıöçİ: the sender's name
// has Ç ğ ş Ö ü, the subject İ Ö, 60's reason ı ç ğ).
func TestPDF(t *testing.T) {
	pdftotext := testtool.Require(t, testtool.PDFToText)
	w := newWorld(t, providertest.New(t, store.SQLite))
	r, err := report.Build(context.Background(), w.Node.Mailbox, w.principal(t, w.ayse), w.headerID, report.Options{BaseURL: "https://kep.hs01.example", Now: w.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := r.WritePDF(&a); err != nil {
		t.Fatal(err)
	}
	if err := r.WritePDF(&b); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("the same report gave two different PDFs (%v)", err)
	}
	dir := t.TempDir()
	if d := os.Getenv("KEP_REPORT_DUMP"); d != "" { // look at it: KEP_REPORT_DUMP=/tmp/x go test -run TestPDF ./report/
		dir = d
		var page bytes.Buffer
		r.WriteHTML(&page, "")
		os.WriteFile(filepath.Join(dir, "rapor.html"), page.Bytes(), 0o644)
	}
	pdf := filepath.Join(dir, "rapor.pdf")
	if err := os.WriteFile(pdf, a.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pdftotext, "-enc", "UTF-8", "-layout", pdf, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"Delil raporu / Evidence report",
		"Çiğdem Ayşe Öztürk", subject, w.ayse.Account.Address, w.ismail.Account.Address,
		"Alıcı iletinin içeriğini açtı", // 60's reason
		evidence.Accepted.LabelTR(), evidence.Delivered.LabelTR(), evidence.Read.LabelTR(),
		evidence.Read.Label(), "eTebligat", "Europe/Istanbul", "UTC",
		"Gönderen / Sender", "Kayıt sırası / Log index", "Kontrol noktası / Checkpoint",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF's text lacks %q", want)
		}
	}
	// Every evidence digest is there, in groups of eight.
	for _, it := range r.Evidence {
		if !strings.Contains(text, it.EvidenceDigest[:8]+" "+it.EvidenceDigest[8:16]) {
			t.Errorf("the PDF lacks the digest of %d", it.Code)
		}
	}
	if strings.Contains(text, w.ayse.TCKN) || strings.Contains(text, w.ismail.TCKN) {
		t.Error("the PDF shows a TCKN")
	}
}

func TestHandler(t *testing.T) {
	w := newWorld(t, providertest.New(t, store.SQLite))
	srv := httptest.NewServer(report.Handler(w.Node.Mailbox, report.BasicAuth(w.Node.Accounts)))
	defer srv.Close()
	esc := url.PathEscape(w.headerID)
	for _, tc := range []struct {
		name, method, path string
		who                *providertest.Person
		password           string // overrides who's
		status             int
		ctype, body        string
	}{
		{"html", "GET", "/report/" + esc + ".html", w.ayse, "", 200, "text/html; charset=utf-8", "Çiğdem Ayşe Öztürk"},
		{"pdf", "GET", "/report/" + esc + ".pdf", w.ayse, "", 200, "application/pdf", "%PDF-"},
		{"qr png", "GET", "/report/" + esc + ".png", w.ayse, "", 200, "image/png", "\x89PNG"},
		{"recipient", "GET", "/report/" + esc + ".html", w.ismail, "", 200, "text/html; charset=utf-8", "alıcı tarafından okundu"},
		{"stylesheet", "GET", "/static/report.css", nil, "", 200, "text/css; charset=utf-8", "@media print"},
		{"no credentials", "GET", "/report/" + esc + ".pdf", nil, "", 401, "", "Sign in"},
		{"wrong password", "GET", "/report/" + esc + ".pdf", w.ayse, "not the password", 401, "", "Wrong user name or password"},
		{"another's message", "GET", "/report/" + esc + ".pdf", w.outsider, "", 404, "", "No evidence about message"},
		{"unknown kind", "GET", "/report/" + esc + ".doc", w.ayse, "", 404, "", "Reports are at"},
		{"no id", "GET", "/report/.pdf", w.ayse, "", 404, "", "Reports are at"},
		{"post", "POST", "/report/" + esc + ".pdf", w.ayse, "", 405, "", "Only GET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if tc.who != nil {
				pass := tc.who.Password
				if tc.password != "" {
					pass = tc.password
				}
				req.SetBasicAuth(tc.who.Account.Address, pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
				t.Fatalf("%d %q, want %d with %q", resp.StatusCode, body[:min(len(body), 300)], tc.status, tc.body)
			}
			if tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.ctype)
			}
			if tc.ctype == "text/html; charset=utf-8" {
				csp := resp.Header.Get("Content-Security-Policy")
				if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(string(body), "<script") || strings.Contains(string(body), "style=") {
					t.Errorf("CSP %q, or inline script or style in the page", csp)
				}
				if !strings.Contains(string(body), `src="./`+esc+`.png"`) {
					t.Error("the page does not load its QR code")
				}
			}
			if tc.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge")
			}
		})
	}
}

// TestRejected: a refused submission (11) has no message kept, and its
// report is the rejection with its reason.
func TestRejected(t *testing.T) {
	w := newWorld(t, providertest.New(t, store.SQLite))
	ctx := context.Background()
	id := "reddedilen@client"
	if _, err := w.Node.Mailbox.Reject(ctx, &mailbox.Rejection{Sender: w.ayse.Account, From: w.ayse.Account.Address, Recipients: []string{w.ismail.Account.Address},
		Digest: make([]byte, 32), Size: 10, HeaderID: "<" + id + ">", IletiTip: "standart", Reason: evidence.ReasonNotSigned(),
		AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Node.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := report.Build(ctx, w.Node.Mailbox, w.principal(t, w.ayse), id, report.Options{BaseURL: "https://h", Now: w.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if codes(r) != "11" || r.Subject != "" || r.Evidence[0].Positive || r.Evidence[0].Reason != evidence.ReasonNotSigned().Text || r.QR == "" {
		t.Fatalf("rejection report: %s %+v", codes(r), r.Evidence[0])
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"İleti nitelikli elektronik imza ile imzalanmamış.", "gönderici hizmet sağlayıcısınca reddedildi", `class="fail"`} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if _, err := report.Build(ctx, w.Node.Mailbox, w.principal(t, w.ismail), id, report.Options{}); !errors.Is(err, report.ErrNotFound) {
		t.Errorf("the addressee of a refused message sees its rejection: %v", err)
	}
}

// TestContentDeleted: once the original's content is gone from the
// content store, the report still stands, without the subject.
func TestContentDeleted(t *testing.T) {
	w := newWorld(t, providertest.New(t, store.SQLite))
	h := w.msg.Digest.String()
	if err := os.Remove(filepath.Join(w.Node.Config.Path(w.Node.Config.Store.ContentDir), h[:2], h)); err != nil {
		t.Fatal(err)
	}
	r, err := report.Build(context.Background(), w.Node.Mailbox, w.principal(t, w.ayse), w.headerID, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "" || codes(r) != "10 40 60" {
		t.Fatalf("subject %q, codes %q", r.Subject, codes(r))
	}
}
