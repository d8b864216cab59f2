package web

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	signerfiles "github.com/kephs/kep/web/static"
	"html/template"
	"net/http"
	"time"

	"github.com/kephs/kep/mailbox"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/kep.css static/compose.js
var staticFS embed.FS

// pages are the templates, each with the layout.
var pages = func() map[string]*template.Template {
	m := map[string]*template.Template{}
	for _, name := range []string{"login", "folder", "message", "compose", "security", "error"} {
		m[name] = template.Must(template.New("layout.html").ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return m
}()

// page is what every template gets.
type page struct {
	c     *reqCtx
	Title string
	Nav   *nav // nil on pages without the mailbox frame
	Flash string
	Error string
	Data  any
}

// T translates a word (i18n.go) for the page's language.
func (p *page) T(key string, args ...any) string { return p.c.t(key, args...) }

// Lang is the page's language, for <html lang>.
func (p *page) Lang() string { return p.c.lang }

// CSRF is the token every form repeats.
func (p *page) CSRF() string { return p.c.csrf }

// LoggedIn says whether a session is open.
func (p *page) LoggedIn() bool { return p.c.p != nil }

// Who names the logged-in principal in the header (an operator by name,
// never by TCKN).
func (p *page) Who() string {
	switch {
	case p.c.p == nil:
		return ""
	case p.c.p.Operator != nil:
		return p.c.p.Operator.Name + " (" + p.c.t("operator") + ")"
	}
	return p.c.p.Account.Address
}

// Time formats a time in Europe/Istanbul.
func (p *page) Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(p.loc()).Format("02.01.2006 15:04:05")
}

func (p *page) loc() *time.Location {
	if p.c.loc != nil {
		return p.c.loc
	}
	return mailbox.DefaultPolicy().Location
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, c *reqCtx, status int, name string, pg *page) {
	pg.c = c
	c.loc = s.loc()
	var b bytes.Buffer
	if err := pages[name].Execute(&b, pg); err != nil {
		if name == "error" {
			s.log().Error("web: error page", "err", err)
			http.Error(w, pg.Error, status)
			return
		}
		s.internal(w, r, c, fmt.Errorf("template %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// fail shows an error page with a reason a person can act on.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, c *reqCtx, status int, reason string) {
	s.render(w, r, c, status, "error", &page{Title: c.t("err.title"), Error: reason})
}

// internal logs an unexpected error under a short code and shows the code.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, c *reqCtx, err error) {
	b := make([]byte, 4)
	rand.Read(b)
	code := hex.EncodeToString(b)
	// The route, not the path: a path names the account's address.
	s.log().Error("web", "code", code, "route", r.Pattern, "err", err)
	s.render(w, r, c, http.StatusInternalServerError, "error", &page{Title: c.t("err.title"), Error: c.t("err.internal", code)})
}

// refused shows a refusal of the mailbox (mailbox.Refusal): not found is
// 404, a missing grant 403, the rest 409, each with its reason.
func (s *Server) refused(w http.ResponseWriter, r *http.Request, c *reqCtx, err error) {
	var rf *mailbox.Refusal
	if !errors.As(err, &rf) {
		s.internal(w, r, c, err)
		return
	}
	switch rf.Kind {
	case mailbox.NotFound:
		s.fail(w, r, c, http.StatusNotFound, c.t("err.notfound"))
	case mailbox.NoPermission:
		s.fail(w, r, c, http.StatusForbidden, rf.Reason)
	default:
		s.fail(w, r, c, http.StatusConflict, rf.Reason)
	}
}

func (s *Server) static(name, contentType string) func(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	return serveFile(staticFS, "static/"+name, contentType)
}

// signerFile serves one of the browser signer's files (package web/static:
// kepsign.js, kepsign.wasm, wasm_exec.js), which the compose page loads.
func (s *Server) signerFile(name, contentType string) func(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	return serveFile(signerfiles.FS, name, contentType)
}

func serveFile(fsys embed.FS, name, contentType string) func(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	b, err := fsys.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return func(w http.ResponseWriter, r *http.Request, c *reqCtx) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(b)
	}
}
