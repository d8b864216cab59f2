package web_test

import (
	"archive/zip"
	"bytes"
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

func codesOf(t *testing.T, w *providertest.World, headerID string) map[int]int {
	t.Helper()
	es, err := w.Node.Mailbox.ListEvidence(context.Background(), staff, mailbox.EvidenceQuery{HeaderID: headerID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, e := range es {
		out[int(e.Code)]++
	}
	return out
}

// firstLink returns the first href in body that starts with prefix.
func firstLink(t *testing.T, body, prefix string) string {
	t.Helper()
	m := regexp.MustCompile(`href="(` + regexp.QuoteMeta(prefix) + `[^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no link to %s in %s", prefix, text(body))
	}
	return strings.ReplaceAll(m[1], "&amp;", "&")
}

// TestReadAndTimeline: ayşe sends through the web; the list of mehmet's
// INBOX is no retrieval and shows no body; opening it is (evidence 60,
// reason web); ayşe's Sent page shows the timeline 10, 40, 60 with
// bundles, the signer and the report links.
func TestReadAndTimeline(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		body := "Ödeme emri: 1.000 TL. Gizli kelime: zeytinyağı."
		m := client.Message{To: []string{mehmet.Account.Address}, Subject: "Ödeme emri", Body: body, MessageID: "<web-test-1@hs01.kep.tr>",
			Attachments: []client.Attachment{{Name: "sözleşme.txt", Data: []byte("madde 1")}}}
		e.send(ayse, m)

		b := e.browser()
		b.login(mehmet.Account.Address, mehmet.Password)
		inbox := "/posta/" + url.PathEscape(mehmet.Account.Address) + "/inbox"
		r := b.get(inbox)
		if r.status != 200 || !strings.Contains(r.body, "Ödeme emri") || strings.Contains(r.body, "zeytinyağı") {
			t.Fatalf("inbox: %d %s", r.status, text(r.body))
		}
		if n := codesOf(t, w, m.MessageID)[60]; n != 0 {
			t.Fatalf("listing issued %d evidence 60", n)
		}
		msgURL := firstLink(t, r.body, inbox+"/")
		r = b.get(msgURL)
		if r.status != 200 || !strings.Contains(r.body, "zeytinyağı") || !strings.Contains(r.body, "Ayşe Yılmaz") || !strings.Contains(r.body, "sözleşme.txt") {
			t.Fatalf("message: %d %s", r.status, text(r.body))
		}
		if n := codesOf(t, w, m.MessageID)[60]; n != 1 {
			t.Fatalf("opening issued %d evidence 60", n)
		}
		es, _ := w.Node.Mailbox.ListEvidence(context.Background(), staff, mailbox.EvidenceQuery{HeaderID: m.MessageID})
		for _, ev := range es {
			if ev.Code == evidence.Read && !strings.Contains(ev.Reason, "web") {
				t.Errorf("evidence 60 reason %q does not name the web", ev.Reason)
			}
		}
		att := b.get(firstLink(t, r.body, msgURL+"/ek/"))
		if att.status != 200 || att.body != "madde 1" || att.header.Get("Content-Type") != "application/octet-stream" ||
			!strings.Contains(att.header.Get("Content-Disposition"), "attachment; filename*=utf-8''s%C3%B6zle%C5%9Fme.txt") {
			t.Errorf("attachment: %d %q %v", att.status, att.body, att.header)
		}

		s := e.browser()
		s.login(ayse.Account.Address, ayse.Password)
		sent := "/posta/" + url.PathEscape(ayse.Account.Address) + "/sent"
		r = s.get(firstLink(t, s.get(sent).body, sent+"/"))
		for _, want := range []string{`class="code">10<`, `class="code">40<`, `class="code">60<`, "TCKN", "/report/web-test-1@hs01.kep.tr.pdf", "/report/web-test-1@hs01.kep.tr.html", "okundu"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("sent message page lacks %q: %s", want, text(r.body))
			}
		}
		if strings.Contains(r.body, ayse.TCKN) {
			t.Errorf("the page shows the full TCKN")
		}
		bundleURL := firstLink(t, r.body, "/posta/"+url.PathEscape(ayse.Account.Address)+"/sent/1/delil/")
		if _, err := w.Node.Checkpointer.Catchup(context.Background(), w.Node.Log.Size()); err != nil {
			t.Fatal(err)
		}
		bundle := s.get(bundleURL)
		if bundle.status != 200 || bundle.header.Get("Content-Type") != evidence.BundleMediaType {
			t.Fatalf("bundle: %d %v", bundle.status, bundle.header)
		}
		if _, err := zip.NewReader(bytes.NewReader([]byte(bundle.body)), int64(len(bundle.body))); err != nil {
			t.Errorf("bundle is not a ZIP: %v", err)
		}
	})
}

var staff = staffPrincipal()

// TestHTMLSanitised: a message whose HTML part carries script, event
// handlers, styles and remote images shows none of them.
func TestHTMLSanitised(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		html := `<p onclick="steal()">Merhaba <b>Mehmet</b></p><script>alert(1)</script><img src="https://evil.example/t.png"><a href="javascript:alert(1)">x</a><style>body{}</style><iframe src="https://evil.example"></iframe><a href="https://kep.tr/">bağlantı</a>`
		hdr := "From: " + ayse.Account.Address + "\r\nTo: " + mehmet.Account.Address + "\r\nSubject: HTML\r\nDate: Mon, 07 Dec 2026 10:00:00 +0300\r\nMessage-ID: <html-1@hs01.kep.tr>\r\nX-TR-REM-iletiTip: standart\r\nMIME-Version: 1.0\r\n"
		raw := signedEntity(t, ayse, hdr, "Content-Type: text/html; charset=utf-8\r\n\r\n"+html+"\r\n")
		b := e.browser()
		b.login(ayse.Account.Address, ayse.Password)
		if r, out := b.sendJSON(ayse.Account.Address, raw); r.status != 200 {
			t.Fatalf("send: %d %v", r.status, out)
		}
		w.Node.Mailbox.DeliverQueued(context.Background(), 10)
		m := e.browser()
		m.login(mehmet.Account.Address, mehmet.Password)
		r := m.get("/posta/" + url.PathEscape(mehmet.Account.Address) + "/inbox/1")
		if r.status != 200 || !strings.Contains(r.body, "<b>Mehmet</b>") || !strings.Contains(r.body, "bağlantı") {
			t.Fatalf("message: %d %s", r.status, r.body)
		}
		for _, bad := range []string{"<script>alert", "onclick", "evil.example", "javascript:", "<style>body", "<iframe"} {
			if strings.Contains(r.body, bad) {
				t.Errorf("the page keeps %q", bad)
			}
		}
	})
}

// TestETebligatServed: the page of an eTebligat names the day it is
// legally served, the end of the fifth day after delivery.
func TestETebligatServed(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		e.send(ayse, client.Message{To: []string{mehmet.Account.Address}, Subject: "Tebligat", Body: "İhtar", IletiTip: evidence.IletiTipETebligat})
		b := e.browser()
		b.login(ayse.Account.Address, ayse.Password)
		r := b.get("/posta/" + url.PathEscape(ayse.Account.Address) + "/sent/1")
		delivered := w.Clock.Now().In(w.Node.Mailbox.Policy.Location)
		day := delivered.AddDate(0, 0, 5).Format("02.01.2006") + " 24:00"
		if !strings.Contains(r.body, "Yasal tebliğ tarihi") || !strings.Contains(r.body, day) {
			t.Fatalf("want served on %s: %s", day, text(r.body))
		}
	})
}

// TestQuotaWarnings: the bar warns at 80, 90 and 100 %.
func TestQuotaWarnings(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		p := w.Person("Kota", "Dolu")
		b := e.browser()
		b.login(p.Account.Address, p.Password)
		tests := []struct {
			percent int64
			want    string
		}{{10, ""}, {85, "%80"}, {95, "%90"}, {100, "Kotanız doldu"}}
		for _, tc := range tests {
			if _, err := w.Node.DB.Q().Exec(context.Background(), `UPDATE accounts SET used_bytes = ? WHERE id = ?`, p.Account.QuotaBytes*tc.percent/100, p.Account.ID); err != nil {
				t.Fatal(err)
			}
			r := b.get("/posta/" + url.PathEscape(p.Account.Address) + "/inbox")
			if !strings.Contains(r.body, `<meter id="quota"`) {
				t.Fatalf("%d%%: no quota bar", tc.percent)
			}
			warned := strings.Contains(r.body, `class="warn"`) || strings.Contains(r.body, `class="alert"`)
			if (tc.want == "") == warned || (tc.want != "" && !strings.Contains(r.body, tc.want)) {
				t.Errorf("%d%%: want warning %q: %s", tc.percent, tc.want, text(r.body))
			}
		}
	})
}

// TestSearchAndPaging: search by subject and sender, and pages of the
// configured size.
func TestSearchAndPaging(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		b := e.browser()
		b.login(ayse.Account.Address, ayse.Password)
		for i := 0; i < 27; i++ {
			subject := "Fatura"
			if i == 3 {
				subject = "Sözleşme taslağı"
			}
			if r, out := b.sendJSON(ayse.Account.Address, signed(t, ayse, client.Message{To: []string{mehmet.Account.Address}, Subject: subject, Body: "x"})); r.status != 200 {
				t.Fatalf("send %d: %v", i, out)
			}
		}
		w.Node.Mailbox.DeliverQueued(context.Background(), 100)
		m := e.browser()
		m.login(mehmet.Account.Address, mehmet.Password)
		inbox := "/posta/" + url.PathEscape(mehmet.Account.Address) + "/inbox"
		tests := []struct {
			query string
			rows  int
			pager string
		}{
			{"", 25, "sayfa 1 / 2"},
			{"?sayfa=2", 2, "sayfa 2 / 2"},
			{"?q=s%C3%B6zle%C5%9Fme", 1, "sayfa 1 / 1"},
			{"?q=" + url.QueryEscape("ayse.yilmaz"), 25, "sayfa 1 / 2"},
			{"?q=yok-boyle-bir-sey", 0, ""},
		}
		for _, tc := range tests {
			r := m.get(inbox + tc.query)
			if n := strings.Count(r.body, `<td class="subject">`); n != tc.rows || !strings.Contains(r.body, tc.pager) {
				t.Errorf("%q: %d rows, want %d; pager %q: %s", tc.query, n, tc.rows, tc.pager, text(r.body))
			}
		}
	})
}

// TestSendRefused: what the access point refuses, the page shows with its
// reason, and nothing is accepted.
func TestSendRefused(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		b := e.browser()
		b.login(ayse.Account.Address, ayse.Password)
		unsigned := []byte("From: " + ayse.Account.Address + "\r\nTo: " + mehmet.Account.Address + "\r\nSubject: x\r\n\r\nimzasız\r\n")
		tests := []struct {
			name   string
			data   []byte
			status int
		}{
			{"unsigned", unsigned, http.StatusUnprocessableEntity},
			{"outside KEP", signed(t, ayse, client.Message{To: []string{"someone@gmail.com"}, Subject: "x", Body: "x"}), http.StatusUnprocessableEntity},
			{"signed by another", signed(t, mehmet, client.Message{From: ayse.Account.Address, To: []string{mehmet.Account.Address}, Subject: "x", Body: "x"}), http.StatusUnprocessableEntity},
		}
		for _, tc := range tests {
			r, out := b.sendJSON(ayse.Account.Address, tc.data)
			if r.status != tc.status || out["accepted"] == true || out["message"] == "" || out["code"] == "" {
				t.Errorf("%s: %d %v", tc.name, r.status, out)
			}
		}
		var n int
		w.Node.DB.Q().QueryRow(context.Background(), `SELECT COUNT(*) FROM messages`).Scan(&n)
		if n != 0 {
			t.Errorf("%d messages accepted", n)
		}
	})
}

var _ = store.SQLite

// TestEnglishAndDelil: ?lang=en switches the pages to English and stays
// (cookie); the Delil folder lists the evidence items and opens one, with
// its XML and bundle to download.
func TestEnglishAndDelil(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		e.send(ayse, client.Message{To: []string{mehmet.Account.Address}, Subject: "Delil deneme", Body: "x"})
		if _, err := w.Node.Checkpointer.Catchup(context.Background(), w.Node.Log.Size()); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Node.Mailbox.Courier(context.Background(), w.Node.Log.Size()); err != nil {
			t.Fatal(err)
		}
		b := e.browser()
		b.login(ayse.Account.Address, ayse.Password)
		delil := "/posta/" + url.PathEscape(ayse.Account.Address) + "/delil"
		r := b.get(delil + "?lang=en")
		if r.status != 200 || !strings.Contains(r.body, `lang="en"`) || !strings.Contains(r.body, "Evidence") || !strings.Contains(r.body, "Log out") {
			t.Fatalf("English Delil: %d %s", r.status, text(r.body))
		}
		r = b.get(firstLink(t, r.body, delil+"/"))
		if r.status != 200 || !strings.Contains(r.body, "Attachments") || !strings.Contains(r.body, ".xml") || !strings.Contains(r.body, ".zip") {
			t.Fatalf("evidence item: %d %s", r.status, text(r.body))
		}
		if r := b.get(delil + "?lang=tr"); !strings.Contains(r.body, `lang="tr"`) || !strings.Contains(r.body, "Çıkış") {
			t.Errorf("back to Turkish: %s", text(r.body))
		}
	})
}

// TestMoveAndDelete: a message moves to Trash and is deleted for good
// there; its evidence remains. Deleting outside Trash and moving into an
// unknown folder are refused with a reason.
func TestMoveAndDelete(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		m := client.Message{To: []string{mehmet.Account.Address}, Subject: "Silinecek", Body: "x", MessageID: "<sil-1@hs01.kep.tr>"}
		e.send(ayse, m)
		b := e.browser()
		b.login(mehmet.Account.Address, mehmet.Password)
		base := "/posta/" + url.PathEscape(mehmet.Account.Address)
		tests := []struct {
			name   string
			path   string
			form   url.Values
			status int
		}{
			{"delete outside Trash", "/inbox/1/sil", nil, http.StatusConflict},
			{"move nowhere", "/inbox/1/tasi", url.Values{"hedef": {"delil"}}, http.StatusBadRequest},
			{"move to Trash", "/inbox/1/tasi", url.Values{"hedef": {"trash"}}, http.StatusSeeOther},
			{"gone from INBOX", "/inbox/1/tasi", url.Values{"hedef": {"archive"}}, http.StatusNotFound},
			{"delete in Trash", "/trash/1/sil", nil, http.StatusSeeOther},
		}
		for _, tc := range tests {
			if r := b.post(base+tc.path, tc.form); r.status != tc.status {
				t.Errorf("%s: %d, want %d: %s", tc.name, r.status, tc.status, text(r.body))
			}
		}
		if r := b.get(base + "/trash/1"); r.status != http.StatusNotFound {
			t.Errorf("deleted message: %d", r.status)
		}
		if c := codesOf(t, w, m.MessageID); c[10] != 1 || c[40] != 1 {
			t.Errorf("evidence after deletion: %v", c)
		}
	})
}

// TestErrorPaths: each page's errors, with the status a person or a
// script can act on.
func TestErrorPaths(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		e.send(ayse, client.Message{To: []string{mehmet.Account.Address}, Subject: "Bir", Body: "x"})
		e.send(ayse, client.Message{To: []string{ayse.Account.Address}, Subject: "İki", Body: "y"})
		if _, err := w.Node.Checkpointer.Catchup(context.Background(), w.Node.Log.Size()); err != nil {
			t.Fatal(err)
		}
		// A leaf of the second message, asked for through the first.
		es, _ := w.Node.Mailbox.ListEvidence(context.Background(), staff, mailbox.EvidenceQuery{Account: ayse.Account})
		var otherSeq int64 = -1
		for _, ev := range es {
			if ev.Concerns == ayse.Account.Address {
				otherSeq = ev.Seq
			}
		}
		anon := e.browser()
		b := e.browser()
		b.login(ayse.Account.Address, ayse.Password)
		base := "/posta/" + url.PathEscape(ayse.Account.Address)
		tests := []struct {
			name   string
			b      *browser
			method string
			path   string
			body   string
			status int
		}{
			{"no session: home", anon, "GET", "/", "", http.StatusSeeOther},
			{"no session: folder", anon, "GET", base + "/inbox", "", http.StatusSeeOther},
			{"no session: security", anon, "GET", "/guvenlik", "", http.StatusSeeOther},
			{"no session: logout", anon, "POST", "/cikis", "", http.StatusUnauthorized},
			{"unknown path", b, "GET", "/yok", "", http.StatusNotFound},
			{"unknown account", b, "GET", "/posta/kimse@hs01.kep.tr/inbox", "", http.StatusNotFound},
			{"unknown folder", b, "GET", base + "/spam", "", http.StatusNotFound},
			{"bad uid", b, "GET", base + "/sent/abc", "", http.StatusNotFound},
			{"no such uid", b, "GET", base + "/sent/999", "", http.StatusNotFound},
			{"no such attachment", b, "GET", base + "/sent/1/ek/9", "", http.StatusNotFound},
			{"bad attachment index", b, "GET", base + "/sent/1/ek/x", "", http.StatusNotFound},
			{"no such evidence", b, "GET", base + "/sent/1/delil/99999", "", http.StatusNotFound},
			{"evidence of another message", b, "GET", base + "/sent/1/delil/" + strconv.FormatInt(otherSeq, 10), "", http.StatusNotFound},
			{"send: not JSON", b, "POST", "/yaz/" + url.PathEscape(ayse.Account.Address), "signed=x", http.StatusBadRequest},
			{"send: not base64", b, "POST", "/yaz/" + url.PathEscape(ayse.Account.Address), `{"signed":"***"}`, http.StatusBadRequest},
			{"compose: unknown account", b, "GET", "/yaz/kimse@hs01.kep.tr", "", http.StatusNotFound},
		}
		for _, tc := range tests {
			req, _ := http.NewRequest(tc.method, e.srv.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("X-CSRF-Token", tc.b.csrf)
			if r := tc.b.do(req); r.status != tc.status {
				t.Errorf("%s: %d, want %d: %s", tc.name, r.status, tc.status, text(r.body))
			}
		}
	})
}
