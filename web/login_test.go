package web_test

import (
	"context"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/provider/providertest"
)

// TestLogin: the login page's success and error paths, the back-off, the
// redirect after login staying on the site, logout ending the session.
func TestLogin(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		p := w.Person("Ayşe", "Yılmaz")
		co, op := w.Company("Ana Lojistik", 0)
		tests := []struct {
			name, user, pass, next string
			status                 int
			location, page         string
		}{
			{"holder", p.Account.Address, p.Password, "", http.StatusSeeOther, "/", ""},
			{"holder, upper case", strings.ToUpper(p.Account.Address), p.Password, "", http.StatusSeeOther, "/", ""},
			{"operator by TCKN", op.TCKN, op.Password, "", http.StatusSeeOther, "/", ""},
			{"next on the site", p.Account.Address, p.Password, "/guvenlik", http.StatusSeeOther, "/guvenlik", ""},
			{"next elsewhere", p.Account.Address, p.Password, "//evil.example/", http.StatusSeeOther, "/", ""},
			// Open redirects, as browsers read Location (a backslash is a
			// slash; tabs and line breaks are dropped) after http.Redirect's
			// path.Clean.
			{"next, dot then backslash", p.Account.Address, p.Password, "/./\\evil.example", http.StatusSeeOther, "/", ""},
			{"next, dot-dot then backslash", p.Account.Address, p.Password, "/x/../\\evil.example", http.StatusSeeOther, "/", ""},
			{"next, slash backslash", p.Account.Address, p.Password, "/\\evil.example", http.StatusSeeOther, "/", ""},
			{"next, tab", p.Account.Address, p.Password, "/\t/evil.example", http.StatusSeeOther, "/", ""},
			{"next, dot then slash slash", p.Account.Address, p.Password, "/.//evil.example", http.StatusSeeOther, "/evil.example", ""}, // a path here
			{"next, scheme", p.Account.Address, p.Password, "https://evil.example/", http.StatusSeeOther, "/", ""},
			{"next, query kept", p.Account.Address, p.Password, "/guvenlik?lang=en", http.StatusSeeOther, "/guvenlik?lang=en", ""},
			{"wrong password", p.Account.Address, "nope", "", http.StatusUnauthorized, "", "Kullanıcı adı, parola ya da kod yanlış."},
			{"unknown user", "kimse@hs01.kep.tr", "nope", "", http.StatusUnauthorized, "", "Kullanıcı adı, parola ya da kod yanlış."},
		}
		for _, tc := range tests {
			b := e.browser()
			r := b.post("/giris", url.Values{"kullanici": {tc.user}, "parola": {tc.pass}, "sonra": {tc.next}})
			if r.status != tc.status || r.header.Get("Location") != tc.location || !strings.Contains(html.UnescapeString(r.body), tc.page) {
				t.Errorf("%s: %d %q %s", tc.name, r.status, r.header.Get("Location"), text(r.body))
			}
			if strings.Contains(r.body, tc.pass) && tc.pass != "" {
				t.Errorf("%s: the page repeats the password", tc.name)
			}
		}

		// The operator lands in the company's INBOX and sees it in the switcher.
		b := e.browser()
		b.login(op.TCKN, op.Password)
		r := b.get("/")
		if r.status != http.StatusSeeOther || !strings.Contains(r.header.Get("Location"), url.PathEscape(co.Address)) {
			t.Fatalf("operator home: %d %v", r.status, r.header)
		}
		r = b.get(r.header.Get("Location"))
		if r.status != 200 || !strings.Contains(r.body, co.Address) || strings.Contains(r.body, op.TCKN) {
			t.Fatalf("operator inbox: %d %s", r.status, text(r.body))
		}

		// Logout ends the session in the store: the old cookie opens nothing.
		if r := b.post("/cikis", nil); r.status != http.StatusSeeOther {
			t.Fatalf("logout: %d", r.status)
		}
		if r := b.get("/posta/" + url.PathEscape(co.Address) + "/inbox"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/giris") {
			t.Fatalf("after logout: %d %v", r.status, r.header)
		}

		// Back-off: failures in a row, from an address the user never
		// logged in from, are throttled with Retry-After.
		q := w.Person("Deneme", "Kisi")
		b = e.browser()
		var last resp
		for i := 0; i < 8; i++ {
			last = b.post("/giris", url.Values{"kullanici": {q.Account.Address}, "parola": {"wrong"}})
		}
		if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
			t.Errorf("after 8 failures: %d %v", last.status, last.header)
		}
	})
}

// TestSessionRevokedByRecovery: `kep account recover` ends web sessions.
func TestSessionRevokedByRecovery(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		p := w.Person("Ayşe", "Yılmaz")
		b := e.browser()
		b.login(p.Account.Address, p.Password)
		inbox := "/posta/" + url.PathEscape(p.Account.Address) + "/inbox"
		if r := b.get(inbox); r.status != 200 {
			t.Fatalf("inbox: %d", r.status)
		}
		if _, err := w.Node.Accounts.Recover(context.Background(), account0, p.Account.Address, identity.ID{Scheme: identity.TCKN, Value: p.TCKN}, "call-centre", "", "a new password"); err != nil {
			t.Fatal(err)
		}
		if r := b.get(inbox); r.status != http.StatusSeeOther {
			t.Fatalf("after recovery: %d", r.status)
		}
	})
}

// TestSecurityHeaders: every response carries the CSP and the other
// headers; cookies are Secure, HttpOnly (session, CSRF) and SameSite=Strict;
// a POST without the CSRF token, or from another origin, is refused.
func TestSecurityHeaders(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		p := w.Person("Ayşe", "Yılmaz")
		b := e.browser()
		r := b.post("/giris", url.Values{"kullanici": {p.Account.Address}, "parola": {p.Password}})
		var session string
		for _, c := range r.header.Values("Set-Cookie") {
			if strings.HasPrefix(c, "__Host-kep_oturum=") {
				session = c
			}
		}
		for _, want := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
			if !strings.Contains(session, want) {
				t.Errorf("session cookie %q lacks %s", session, want)
			}
		}
		want := map[string]string{
			"Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self' http://127.0.0.1:18443; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
		}
		for _, path := range []string{"/giris", "/posta/" + url.PathEscape(p.Account.Address) + "/inbox", "/guvenlik", "/static/kep.css", "/posta/x/inbox"} {
			r := b.get(path)
			for k, v := range want {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s: %s = %q, want %q", path, k, got, v)
				}
			}
		}
		tests := []struct {
			name   string
			csrf   string
			origin string
		}{
			{"no token", "", ""},
			{"wrong token", "forged", ""},
			{"other origin", b.csrf, "https://evil.example"},
		}
		for _, tc := range tests {
			req, _ := http.NewRequest("POST", e.srv.URL+"/cikis", strings.NewReader(url.Values{"csrf": {tc.csrf}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if r := b.do(req); r.status != http.StatusForbidden {
				t.Errorf("%s: %d", tc.name, r.status)
			}
		}
		if r := b.get("/posta/" + url.PathEscape(p.Account.Address) + "/inbox"); r.status != 200 {
			t.Errorf("the session ended after refused logouts: %d", r.status)
		}
	})
}

// TestNoInlineScriptOrStyle: the templates hold no inline script, style
// attribute or style element, which the CSP would block.
func TestNoInlineScriptOrStyle(t *testing.T) {
	bad := regexp.MustCompile(`(?i)<script>|<script [^>]*>[^<]|\sstyle=|<style|\son[a-z]+=`)
	err := fs.WalkDir(os.DirFS("templates"), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile("templates/" + path)
		if err != nil {
			return err
		}
		if m := bad.Find(b); m != nil {
			t.Errorf("%s: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTOTPEnrolment: the security page enrols a second factor with a QR
// code; afterwards login needs the code, and IMAP the app password.
func TestTOTPEnrolment(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		p := w.Person("Ayşe", "Yılmaz")
		b := e.browser()
		b.login(p.Account.Address, p.Password)
		if r := b.post("/guvenlik/totp/onay", url.Values{"kod": {"123456"}}); r.status != http.StatusUnprocessableEntity {
			t.Errorf("confirm before enrolment: %d", r.status)
		}
		r := b.post("/guvenlik/totp", nil)
		if r.status != 200 || !strings.Contains(r.body, `src="data:image/png;base64,`) {
			t.Fatalf("enrol: %d %s", r.status, text(r.body))
		}
		m := regexp.MustCompile(`class="secret">([A-Z2-7]+)<`).FindStringSubmatch(r.body)
		if m == nil {
			t.Fatalf("no secret on the page")
		}
		code, _ := totp.GenerateCode(m[1], w.Clock.Now())
		if r := b.post("/guvenlik/totp/onay", url.Values{"kod": {"000000"}}); r.status != http.StatusUnprocessableEntity {
			t.Errorf("wrong code: %d", r.status)
		}
		if r := b.post("/guvenlik/totp/onay", url.Values{"kod": {code}}); r.status != 200 || !strings.Contains(r.body, "açıldı") {
			t.Fatalf("confirm: %d %s", r.status, text(r.body))
		}
		w.Clock.Advance(31 * time.Second)
		b2 := e.browser()
		r = b2.post("/giris", url.Values{"kullanici": {p.Account.Address}, "parola": {p.Password}})
		if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "6 haneli kodu") {
			t.Fatalf("login without code: %d %s", r.status, text(r.body))
		}
		code, _ = totp.GenerateCode(m[1], w.Clock.Now())
		if r := b2.post("/giris", url.Values{"kullanici": {p.Account.Address}, "parola": {p.Password}, "kod": {code}}); r.status != http.StatusSeeOther {
			t.Fatalf("login with code: %d %s", r.status, text(r.body))
		}
		if _, err := w.Node.Accounts.Authenticate(context.Background(), p.Account.Address, p.Password, "127.0.0.1:1"); err == nil {
			t.Errorf("IMAP accepted the main password with two-step verification on")
		}
	})
}

// TestAppPasswords: the security page makes an app password, shows it
// once, and revokes it; a mail client logs in with it until then.
func TestAppPasswords(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		p := w.Person("Ayşe", "Yılmaz")
		b := e.browser()
		b.login(p.Account.Address, p.Password)
		if r := b.post("/guvenlik/uygulama", url.Values{"ad": {""}}); r.status != http.StatusUnprocessableEntity {
			t.Errorf("no name: %d", r.status)
		}
		r := b.post("/guvenlik/uygulama", url.Values{"ad": {"Thunderbird"}})
		m := regexp.MustCompile(`<code class="secret">([^<]+)</code>`).FindStringSubmatch(r.body)
		if r.status != 200 || m == nil {
			t.Fatalf("create: %d %s", r.status, text(r.body))
		}
		pw := html.UnescapeString(m[1])
		ctx := context.Background()
		if _, err := w.Node.Accounts.Authenticate(ctx, p.Account.Address, pw, "127.0.0.1:1"); err != nil {
			t.Fatalf("IMAP with the app password: %v", err)
		}
		r = b.get("/guvenlik")
		if strings.Contains(r.body, pw) || !strings.Contains(r.body, "Thunderbird") {
			t.Fatalf("the list shows the password again, or not the name: %s", text(r.body))
		}
		id := regexp.MustCompile(`name="id" value="(\d+)"`).FindStringSubmatch(r.body)
		if id == nil {
			t.Fatal("no revoke form")
		}
		if r := b.post("/guvenlik/uygulama/iptal", url.Values{"id": {id[1]}}); r.status != 200 {
			t.Fatalf("revoke: %d", r.status)
		}
		if r := b.post("/guvenlik/uygulama/iptal", url.Values{"id": {id[1]}}); r.status != http.StatusNotFound {
			t.Errorf("revoke twice: %d", r.status)
		}
		if _, err := w.Node.Accounts.Authenticate(ctx, p.Account.Address, pw, "127.0.0.1:1"); err == nil {
			t.Errorf("IMAP accepted a revoked app password")
		}
	})
}
