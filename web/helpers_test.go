package web_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/client"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/submission"
	"github.com/kephs/kep/web"
)

// env is the web mail of a test provider node, served over TLS on
// loopback (the cookies are __Host-, so Secure).
type env struct {
	t   *testing.T
	w   *providertest.World
	srv *httptest.Server
}

func newEnv(t *testing.T, w *providertest.World) *env {
	t.Helper()
	ap := submission.NewAccessPoint(w.Node.Mailbox, w.Node.Accounts, w.Node.ESign, submission.Options{Domain: w.Node.Config.Provider.Domain})
	s := &web.Server{Mailbox: w.Node.Mailbox, Accounts: w.Node.Accounts, Access: ap, Now: w.Clock.Now}
	srv := httptest.NewTLSServer(s.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, w: w, srv: srv}
}

// browser is one browser: a cookie jar, no automatic redirects.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := *e.srv.Client() // a copy: each browser its own cookies
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	b := &browser{e: e, c: &c}
	b.get("/giris") // the CSRF cookie
	for _, ck := range jar.Cookies(mustURL(e.srv.URL)) {
		if ck.Name == "__Host-kep_csrf" {
			b.csrf = ck.Value
		}
	}
	if b.csrf == "" {
		e.t.Fatal("no CSRF cookie")
	}
	return b
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// resp is a response with its body read.
type resp struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) resp {
	b.e.t.Helper()
	r, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, string(body)}
}

func (b *browser) get(path string) resp {
	req, _ := http.NewRequest("GET", b.e.srv.URL+path, nil)
	return b.do(req)
}

// post sends a form with the CSRF token (unless form sets csrf itself).
func (b *browser) post(path string, form url.Values) resp {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *browser) login(user, pass string) {
	b.e.t.Helper()
	r := b.post("/giris", url.Values{"kullanici": {user}, "parola": {pass}})
	if r.status != http.StatusSeeOther {
		b.e.t.Fatalf("login %s: %d %s", user, r.status, text(r.body))
	}
}

// sendJSON posts a signed message to the send endpoint as compose.js does.
func (b *browser) sendJSON(addr string, signed []byte) (resp, map[string]any) {
	body, _ := json.Marshal(map[string]string{"signed": base64.StdEncoding.EncodeToString(signed)})
	req, _ := http.NewRequest("POST", b.e.srv.URL+"/yaz/"+url.PathEscape(addr), strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", b.csrf)
	r := b.do(req)
	var out map[string]any
	json.Unmarshal([]byte(r.body), &out)
	return r, out
}

var tags = regexp.MustCompile(`<[^>]*>`)

// text is a page's text, for messages in failures.
func text(html string) string {
	s := strings.Join(strings.Fields(tags.ReplaceAllString(html, " ")), " ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

// signed makes a message from p, signed with p's key, as kepsign.js does
// from the compose form.
func signed(t *testing.T, p *providertest.Person, m client.Message) []byte {
	t.Helper()
	if m.From == "" {
		m.From = p.Account.Address
	}
	if m.Date.IsZero() {
		m.Date = time.Now()
	}
	b, err := m.Sign(&client.Signer{Key: p.Signer.Key, Cert: p.Signer.Cert})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send has p send m through the web and delivers it.
func (e *env) send(p *providertest.Person, m client.Message) string {
	e.t.Helper()
	b := e.browser()
	b.login(p.Account.Address, p.Password)
	r, out := b.sendJSON(p.Account.Address, signed(e.t, p, m))
	if r.status != http.StatusOK {
		e.t.Fatalf("send: %d %s", r.status, r.body)
	}
	if _, err := e.w.Node.Mailbox.DeliverQueued(context.Background(), 100); err != nil {
		e.t.Fatal(err)
	}
	return fmt.Sprint(out["evidence"])
}

func staffPrincipal() *account.Principal { return &account.Principal{Staff: "test"} }

// signedEntity signs a MIME entity under a header with p's key.
func signedEntity(t *testing.T, p *providertest.Person, header, entity string) []byte {
	t.Helper()
	b, err := cms.BuildSigned([]byte(header), []byte(entity), p.Signer.Key, p.Signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var account0 = account.Actor{Name: "cli:test", Remote: "cli"}
