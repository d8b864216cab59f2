package web_test

// The end-to-end proof of issue 14 in a real browser: headless Chromium
// (internal/testtool.Browser, chromedp) against a whole demo world
// (demo.Start, in-process: hs01 and hs02 federated over mutual TLS, the
// demo TSA, the e-signature CA). Each step names what it exercises; the
// whole test stays within about 90 s on a shared machine.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pkcs11"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/signer"
)

// e2e is a demo world and one browser that trusts its providers.
type e2e struct {
	t   *testing.T
	w   *demo.World
	b   *testtool.Browser
	dir string
	// trust is the providers' CAs, for another browser.
	trust []*x509.Certificate
	urls  map[string]string // provider id → https://host:port
}

func startE2E(t *testing.T, o demo.Options, bo testtool.BrowserOptions) *e2e {
	t.Helper()
	dir := t.TempDir()
	// A free port the world picked can be taken by another program before
	// the world listens on it (a shared CI machine): a new world, then.
	var w *demo.World
	var err error
	for try := range 3 {
		w, err = demo.Start(context.Background(), filepath.Join(dir, fmt.Sprintf("world%d", try)), o)
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		t.Logf("demo world, try %d: %v", try+1, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	e := &e2e{t: t, w: w, dir: dir, urls: map[string]string{}}
	for _, p := range w.Info.Providers {
		cas, err := pki.LoadCertsPEM(p.CA)
		if err != nil {
			t.Fatal(err)
		}
		e.trust = append(e.trust, cas...)
		e.urls[p.ID] = "https://" + p.Endpoints.HTTPS
	}
	bo.Trust = e.trust
	e.b = testtool.NewBrowser(t, bo)
	return e
}

func (e *e2e) account(key string) demo.AccountInfo {
	e.t.Helper()
	for _, a := range e.w.Info.Accounts {
		if a.Key == key {
			return a
		}
	}
	e.t.Fatalf("demo.json has no account %q", key)
	return demo.AccountInfo{}
}

// login signs in at the account's provider through the login form
// (web/templates/login.html), leaving the browser on its inbox.
func (e *e2e) login(a demo.AccountInfo) {
	e.t.Helper()
	e.b.Navigate(e.urls[a.Provider] + "/giris")
	e.b.WaitVisible("#kullanici")
	e.b.Fill("#kullanici", a.Username)
	e.b.Fill("#parola", a.Password)
	e.b.Click(`form[action="/giris"] button[type=submit]`)
	e.b.WaitVisible("aside.side") // the mailbox frame; the login page has none
}

// logout ends the session: both providers listen on 127.0.0.1, where
// cookies ignore the port, so one session at a time.
func (e *e2e) logout() {
	e.t.Helper()
	e.b.Click(`form[action="/cikis"] button`)
	e.b.WaitVisible("#kullanici")
}

// compose fills the compose page and signs in the browser with the
// account's PKCS#12 file (kepsign.wasm: the key never leaves the page),
// then sends; it returns the page's result line.
func (e *e2e) compose(a demo.AccountInfo, to, subject, body string) string {
	e.t.Helper()
	e.b.Navigate(e.urls[a.Provider] + "/yaz/" + a.Address)
	e.b.WaitVisible("#compose")
	e.b.Fill("#to", to)
	e.b.Fill("#subject", subject)
	// An empty textarea has no text node for Fill's Clear to remove.
	e.b.Do("type the body", chromedp.SendKeys(chromedp.CSS("#body"), body))
	e.b.Upload("#keyfile", a.PKCS12)
	e.b.Fill("#keypass", a.PKCS12Password)
	return e.send()
}

// send submits the compose page and returns its result line once the
// message is signed and accepted; a refusal fails the test with its reason.
func (e *e2e) send() string {
	e.t.Helper()
	e.b.Click(`#compose button[type=submit]`)
	// compose.js shows "…" (class ok) while it signs and sends.
	e.b.WaitFor(`(r => !['', '…'].includes(r.textContent) && ['ok', 'bad'].includes(r.className))(document.getElementById('result'))`)
	res := e.b.Text("#result")
	if cls := testtool.Eval[string](e.b, `document.getElementById('result').className`); cls != "ok" {
		e.t.Fatalf("sending refused: %s\nconsole:\n%s", res, strings.Join(e.b.Console(), "\n"))
	}
	return res
}

// open opens the message with the subject from a folder's list (a body
// opened is a retrieval: evidence 60 for a recipient).
func (e *e2e) open(a demo.AccountInfo, folder, subject string) {
	e.t.Helper()
	link := fmt.Sprintf(`Array.from(document.querySelectorAll('td.subject a')).find(a => a.textContent.includes(%q))`, subject)
	// A message relayed from hs01 may still be on its way: reload.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		e.b.Navigate(e.urls[a.Provider] + "/posta/" + a.Address + "/" + folder)
		if testtool.Eval[bool](e.b, "!!"+link) {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s's %s has no %q: %s", a.Address, folder, subject, e.b.Text("main"))
		}
	}
	e.b.Navigate(testtool.Eval[string](e.b, link+".href"))
	e.b.WaitVisible("article.message")
}

// codes are the evidence codes of the open message's timeline, in order.
func (e *e2e) codes() []int {
	return testtool.Eval[[]int](e.b, `Array.from(document.querySelectorAll('.timeline li.ev .code')).map(c => +c.textContent)`)
}

// waitTimeline reloads the open message until its timeline holds want:
// returned evidence reaches the sender after the issuer's checkpoint (the
// demo's interval is 1 s) and the relay back.
func (e *e2e) waitTimeline(want ...int) {
	e.t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		got := e.codes()
		if containsAll(got, want) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timeline %v, want %v", got, want)
		}
		time.Sleep(700 * time.Millisecond)
		e.b.Navigate(testtool.Eval[string](e.b, `location.href`))
	}
}

func containsAll(got, want []int) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// download fetches url with the page's session and saves it under the
// test's directory.
func (e *e2e) download(url, name string) string {
	e.t.Helper()
	b64 := testtool.Eval[string](e.b, fmt.Sprintf(`fetch(%q, {credentials: 'same-origin'}).then(r => {
		if (!r.ok) throw new Error('HTTP ' + r.status);
		return r.arrayBuffer();
	}).then(buf => {
		const b = new Uint8Array(buf); let s = '';
		for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
		return btoa(s);
	})`, url))
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		e.t.Fatal(err)
	}
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// TestBrowserEndToEnd is issue 14's browser test: a user reads, signs,
// sends and proves a KEP message with the web alone.
func TestBrowserEndToEnd(t *testing.T) {
	began := time.Now()
	pdftotext := testtool.Require(t, testtool.PDFToText)
	e := startE2E(t, demo.Options{}, testtool.BrowserOptions{})
	ayse, mehmet, elif := e.account("ayse"), e.account("mehmet"), e.account("elif")
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(began).Seconds(), what) }
	step("world and browser up")

	// Login form, compose, signing with the PKCS#12 file in the browser
	// (kepsign.wasm), the access point's checks, acceptance (10).
	e.login(ayse)
	e.b.CheckAccessible() // folder (inbox)
	e.compose(ayse, mehmet.Address, "Ödeme emri (yerel)", "Merhaba Mehmet Bey,\nödeme ektedir.")
	e.b.CheckAccessible() // compose, with its result
	e.compose(ayse, elif.Address, "Sözleşme (hs02)", "Merhaba Elif Hanım,\nsözleşme ektedir.")
	e.logout()
	step("signed in the browser and sent, to hs01 and to hs02")

	// The local recipient opens the message: delivery (40) happened at
	// hs01, opening is the retrieval (60).
	e.login(mehmet)
	e.open(mehmet, "inbox", "Ödeme emri (yerel)")
	if got := e.b.Text(".signer"); !strings.Contains(got, ayse.Name) {
		t.Errorf("the sender's verified identity: %q, want %s", got, ayse.Name)
	}
	e.logout()
	// hs02's recipient: relayed over mutual TLS, 20 and 40 at hs02, her
	// opening is hs02's 60, returned to hs01.
	e.login(elif)
	e.open(elif, "inbox", "Sözleşme (hs02)")
	e.logout()
	step("recipients opened their messages at hs01 and hs02")

	// The sender's timelines (web/templates/message.html).
	e.login(ayse)
	e.open(ayse, "sent", "Ödeme emri (yerel)")
	e.waitTimeline(10, 40, 60)
	if got := e.codes(); slices.Contains(got, 20) {
		t.Errorf("local delivery's timeline %v has a 20 (relay acceptance)", got)
	}
	e.b.CheckAccessible() // message with its timeline
	step("local timeline 10, 40, 60")
	e.open(ayse, "sent", "Sözleşme (hs02)")
	e.waitTimeline(10, 20, 40, 60)
	step("hs02 timeline 10, 20, 40, 60")

	// The PDF report (report/), read back with poppler: Turkish letters
	// unchanged in names and reasons.
	pdfURL := testtool.Eval[string](e.b, `document.querySelector('.report a[href$=".pdf"]').href`)
	pdf := e.download(pdfURL, "rapor.pdf")
	out, err := exec.Command(pdftotext, "-enc", "UTF-8", pdf, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	text := strings.Join(strings.Fields(string(out)), " ")
	// The sender's verified name, hs02 as issuer, the 60's label and the
	// web mail's retrieval reason (ı ç ğ ş ö ü İ).
	for _, want := range []string{ayse.Name, "Sözleşme (hs02)", "HS02 KEP (demo) (hs02.kep.tr) — alıcının hizmet sağlayıcısı",
		"alıcı tarafından okundu", "Alıcı iletiyi web postada açtı", "gönderici hizmet sağlayıcısınca kabul edildi"} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF report lacks %q:\n%s", want, out)
		}
	}
	// The printable page, in the browser.
	e.b.Navigate(testtool.Eval[string](e.b, `document.querySelector('.report a[href$=".html"]').href`))
	e.b.CheckAccessible()
	step("PDF report and its HTML page")

	// A bundle from the timeline (the acceptance, 10), checked on the
	// public verification page (publicweb, no login).
	e.open(ayse, "sent", "Sözleşme (hs02)")
	bundle := e.download(testtool.Eval[string](e.b, `document.querySelector('.timeline li.ev10 a').href`), "10.zip")
	e.logout()
	e.b.Navigate(e.urls["hs01"] + "/dogrula")
	e.b.WaitVisible("#bundle")
	e.b.CheckAccessible()
	e.b.Upload("#bundle", bundle)
	e.b.Click(`form.upload button[type=submit]`)
	e.b.WaitVisible(".verdict")
	if got := e.b.Text(".verdict"); !strings.Contains(got, "DELİL GEÇERLİ") {
		t.Errorf("/dogrula: %q, want DELİL GEÇERLİ", got)
	}
	e.b.CheckAccessible()
	e.b.Navigate(e.urls["hs01"] + "/denetim")
	e.b.CheckAccessible()
	// The remaining pages: login, security.
	e.b.Navigate(e.urls["hs01"] + "/giris")
	e.b.CheckAccessible()
	e.login(ayse)
	e.b.Navigate(e.urls["hs01"] + "/guvenlik")
	e.b.CheckAccessible()
	step("bundle verified on /dogrula; accessibility of the main pages")
}

// TestScreenshots saves the main pages as PNG files into the directory
// $KEP_SCREENSHOTS (scripts/screenshots: docs/screenshots/), at desktop
// width and, for some, at a phone's; without it the test skips, so that
// `scripts/test` does not rewrite the pictures.
func TestScreenshots(t *testing.T) {
	out := os.Getenv("KEP_SCREENSHOTS")
	if out == "" {
		t.Skip("KEP_SCREENSHOTS is not set (scripts/screenshots sets it)")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// The fixed clock: the world and both browsers start at
	// screenshotStart and tick from there, so that the pictures show the
	// same dates on every run.
	if time.Now().After(screenshotStart.Add(-24 * time.Hour)) {
		t.Fatalf("screenshotStart (%v) must be after the demo certificates are made (now): move it forward", screenshotStart)
	}
	offset := time.Until(screenshotStart)
	clock := func() time.Time { return time.Now().Add(offset) }
	e := startE2E(t, demo.Options{Now: clock}, testtool.BrowserOptions{})
	phone := testtool.NewBrowser(t, testtool.BrowserOptions{Trust: e.trust, Width: 390, Height: 844})
	for _, b := range []*testtool.Browser{e.b, phone} {
		fixDate(t, b, offset)
	}
	ayse, mehmet := e.account("ayse"), e.account("mehmet")
	shot := func(b *testtool.Browser, name string) {
		t.Helper()
		p := filepath.Join(out, name+".png")
		b.Screenshot(p)
		shrink(t, p)
	}
	// top saves the window alone, for a long page.
	top := func(b *testtool.Browser, name string) {
		t.Helper()
		img, err := chromedp.Run(b.Context(), chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(out, name+".png")
		if err := os.WriteFile(p, img, 0o644); err != nil {
			t.Fatal(err)
		}
		shrink(t, p)
	}
	hs01 := e.urls["hs01"]

	phone.Navigate(hs01 + "/giris")
	shot(phone, "login-phone")
	e.b.Navigate(hs01 + "/giris")
	shot(e.b, "login")

	e.login(ayse)
	e.compose(ayse, mehmet.Address, "Ödeme emri", "Merhaba Mehmet Bey,\nmart ayı ödemesi ektedir.\n\nAyşe Yılmaz")
	e.b.Navigate(hs01 + "/yaz/" + ayse.Address)
	e.b.WaitVisible("#compose")
	e.b.Fill("#to", mehmet.Address)
	e.b.Fill("#subject", "Sözleşme taslağı")
	e.b.Do("type the body", chromedp.SendKeys(chromedp.CSS("#body"), "Merhaba Mehmet Bey,\nsözleşme taslağı ektedir."))
	e.b.Upload("#keyfile", ayse.PKCS12)
	shot(e.b, "compose")
	e.logout()

	e.login(mehmet)
	shot(e.b, "inbox")
	e.open(mehmet, "inbox", "Ödeme emri")
	e.logout()

	e.login(ayse)
	e.open(ayse, "sent", "Ödeme emri")
	e.waitTimeline(10, 40, 60)
	shot(e.b, "message")
	msgURL := testtool.Eval[string](e.b, `location.href`)
	report := testtool.Eval[string](e.b, `document.querySelector('.report a[href$=".html"]').href`)
	bundle := e.download(testtool.Eval[string](e.b, `document.querySelector('.timeline li.ev10 a').href`), "10.zip")
	e.b.Navigate(report)
	top(e.b, "report")

	// The phone shares nothing with the desktop browser: its own login.
	phone.Navigate(hs01 + "/giris")
	phone.Fill("#kullanici", ayse.Username)
	phone.Fill("#parola", ayse.Password)
	phone.Click(`form[action="/giris"] button[type=submit]`)
	phone.WaitVisible("aside.side")
	phone.Navigate(msgURL)
	phone.WaitVisible(".timeline")
	shot(phone, "message-phone")

	e.b.Navigate(hs01 + "/dogrula")
	e.b.Upload("#bundle", bundle)
	e.b.Click(`form.upload button[type=submit]`)
	e.b.WaitVisible(".verdict")
	shot(e.b, "dogrula")
}

// screenshotStart is the fixed clock's start for scripts/screenshots: a
// weekday morning in Istanbul, before the demo certificates (two years
// from when the world is made) expire and after they are made.
var screenshotStart = time.Date(2028, 3, 15, 10, 30, 0, 0, time.FixedZone("TRT", 3*60*60))

// fixDate moves the page's clock (JavaScript's Date, which the compose
// page's Date header and kepsign.wasm's signing time read) by offset in
// every document the browser opens, as the world's clock is moved: the
// provider refuses a signing time days away from its own.
func fixDate(t *testing.T, b *testtool.Browser, offset time.Duration) {
	t.Helper()
	script := fmt.Sprintf(`(() => {
		const Real = Date, off = %d;
		class Moved extends Real {
			constructor(...a) { if (a.length === 0) { super(Real.now() + off); } else { super(...a); } }
			static now() { return Real.now() + off; }
		}
		window.Date = Moved;
	})()`, offset.Milliseconds())
	if _, err := chromedp.Call(b.Context(), page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
		t.Fatal(err)
	}
}

// shrink re-encodes a screenshot with at most 256 colours (the page's most
// frequent ones; the rest, anti-aliased text edges, take the nearest) and
// the best PNG compression, so that docs/screenshots/ stays small.
func shrink(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := img.Bounds()
	count := map[color.RGBA]int{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			count[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	colors := slices.Collect(maps.Keys(count))
	slices.SortFunc(colors, func(a, b color.RGBA) int { return count[b] - count[a] })
	pal := make(color.Palette, 0, 256)
	for _, c := range colors[:min(256, len(colors))] {
		pal = append(pal, c)
	}
	index := map[color.RGBA]uint8{}
	out := image.NewPaletted(r, pal)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			i, ok := index[c]
			if !ok {
				i = uint8(pal.Index(c))
				index[c] = i
			}
			out.SetColorIndex(x, y, i)
		}
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, out); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d KB", filepath.Base(path), buf.Len()/1024)
}

// TestBrowserSigner sends from the compose page through `kep signer`'s
// agent (package signer, in the test's process as the command runs it):
// the demo company's e-seal on a SoftHSM2 token, the operator with the
// send grant logged in by TCKN. compose.js reaches the agent on its
// default port, 127.0.0.1:18443, the web's CSP connect-src.
func TestBrowserSigner(t *testing.T) {
	e := startE2E(t, demo.Options{}, testtool.BrowserOptions{})
	co := e.account("deniz")
	if co.ESeal == nil || co.ESeal.PKCS11 == nil {
		t.Fatalf("the demo company has no e-seal on SoftHSM (%+v): install softhsm2 and opensc", co.ESeal)
	}
	tok := co.ESeal.PKCS11
	t.Setenv("SOFTHSM2_CONF", tok.Conf)
	certs, err := pki.LoadCertsPEM(co.ESeal.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	s, key, err := client.TokenSigner(pkcs11.Config{Module: tok.Module, Token: tok.Token, Key: tok.Key, PIN: tok.PIN}, certs[0], certs[1:])
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	var asked []signer.Prompt
	h, err := signer.New(signer.Options{Origin: e.urls["hs01"], Signer: s,
		// What --confirm-command does after the user's yes; the prompt is kept.
		Confirm: func(ctx context.Context, p signer.Prompt) (bool, error) { asked = append(asked, p); return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", signer.DefaultPort))
	if err != nil {
		t.Fatalf("kep signer's port is taken (another kep signer, or a parallel run of this test): %v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	var op demo.OperatorInfo
	for _, o := range e.w.Info.Operators {
		if o.Account == co.Address && slices.Contains(o.Grants, "send") {
			op = o
		}
	}
	if op.Username == "" {
		t.Fatal("demo.json has no operator with the send grant")
	}
	e.login(demo.AccountInfo{Provider: "hs01", Username: op.Username, Password: op.Password})
	e.b.Navigate(e.urls["hs01"] + "/yaz/" + co.Address)
	e.b.WaitVisible("#compose")
	// compose.js asks the agent at load; the choice is enabled when it answers.
	e.b.WaitFor(`!document.getElementById('method-agent').disabled && document.getElementById('agent-missing').hidden`)
	mehmet := e.account("mehmet")
	e.b.Fill("#to", mehmet.Address)
	e.b.Fill("#subject", "Fatura (mali mühür)")
	e.b.Do("type the body", chromedp.SendKeys(chromedp.CSS("#body"), "Şirketimizin faturası."))
	e.b.Click("#method-agent")
	e.send()
	if len(asked) != 1 || asked[0].Subject != "Fatura (mali mühür)" || !slices.Contains(asked[0].To, mehmet.Address) {
		t.Fatalf("the agent asked %+v", asked)
	}
	e.logout()
	e.login(mehmet)
	e.open(mehmet, "inbox", "Fatura (mali mühür)")
	// The recipient sees the e-seal's holder as the verified signer.
	if got := e.b.Text(".signer"); !strings.Contains(got, co.Name+" Mali Mühür") {
		t.Errorf("the recipient's signer section: %q, want the company's e-seal (%s)", got, co.Name)
	}
}
