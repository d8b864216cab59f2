package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"mime/multipart"
	"net/http"
	"net/url"
	"time"

	"github.com/kephs/kep/account"
)

// Cookies. The __Host- prefix makes the browser refuse them unless they are
// Secure, for the whole site (Path=/) and without a Domain, so that no
// other host can set or read them. SameSite=Strict: a link from another
// site opens the login page rather than a logged-in page, which is the
// right trade for a mailbox of legal notices; Strict also stops cross-site
// POSTs from carrying the session (CSRF), on top of the tokens.
const (
	cookieSession = "__Host-kep_oturum"
	cookieCSRF    = "__Host-kep_csrf"
	cookieLang    = "kep_dil"
)

// reqCtx is what a handler knows about its request: who is logged in (nil
// on public routes without a session), the language and the CSRF token.
type reqCtx struct {
	p     *account.Principal
	token string // the session token
	lang  string // "tr" or "en"
	csrf  string
	loc   *time.Location
}

func setCookie(w http.ResponseWriter, name, value string, expires time.Time, httpOnly bool) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: httpOnly, SameSite: http.SameSiteStrictMode}
	if !expires.IsZero() {
		c.Expires = expires
	}
	if value == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

func cookie(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// wrap runs a handler with its reqCtx: the language (?lang= sets the
// cookie), the CSRF token (double submit: a random cookie the page repeats
// in every form and the compose script in a header; a POST whose token does
// not match, or that comes from another origin, is refused), and the
// session, which every route but the public ones needs.
func (s *Server) wrap(h func(w http.ResponseWriter, r *http.Request, c *reqCtx), public bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &reqCtx{lang: "tr"}
		if l := r.URL.Query().Get("lang"); l == "en" || l == "tr" {
			c.lang = l
			setCookie(w, cookieLang, l, s.now().Add(365*24*time.Hour), false)
		} else if cookie(r, cookieLang) == "en" {
			c.lang = "en"
		}
		c.csrf = cookie(r, cookieCSRF)
		if c.csrf == "" {
			c.csrf = randomToken()
			setCookie(w, cookieCSRF, c.csrf, time.Time{}, true)
		}
		if r.Method == http.MethodPost && r.Pattern != sendPattern {
			// A form is small: bound it before anything reads it, so that
			// no request, logged in or not, can make the server hold or
			// spill to disk (multipart) more than maxFormBytes. The send
			// endpoint bounds its JSON body itself.
			if !s.readForm(w, r, c) {
				return
			}
		}
		if r.Method == http.MethodPost && !s.sameOrigin(r, c) {
			s.fail(w, r, c, http.StatusForbidden, c.t("err.csrf"))
			return
		}
		c.token = cookie(r, cookieSession)
		if c.token != "" {
			p, err := s.Accounts.Session(r.Context(), c.token)
			switch {
			case err == nil:
				c.p = p
			case errors.Is(err, account.ErrNoSession) || errors.Is(err, account.ErrAccountNotActive):
				setCookie(w, cookieSession, "", time.Time{}, true)
				c.token = ""
			default:
				s.internal(w, r, c, err)
				return
			}
		}
		if c.p == nil && !public {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, pathLogin+"?sonra="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.fail(w, r, c, http.StatusUnauthorized, c.t("err.session"))
			return
		}
		h(w, r, c)
	})
}

// maxFormBytes bounds the body of every form POST (login, security page,
// message actions): their fields are a few short strings.
const maxFormBytes = 64 << 10

// sendPattern is the route whose body is the signed message (JSON, its own
// limit: Access.MaxMessageBytes).
const sendPattern = "POST " + pathCompose + "{addr}"

// readForm reads a form POST's body within maxFormBytes, in memory; a
// larger one is refused with 413 and the limit, before any other check.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request, c *reqCtx) bool {
	if r.ContentLength > maxFormBytes {
		s.fail(w, r, c, http.StatusRequestEntityTooLarge, c.t("err.formsize", maxFormBytes>>10))
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	err := r.ParseForm() // url-encoded; ParseMultipartForm would drop its error
	if err == nil {
		err = r.ParseMultipartForm(maxFormBytes)
	}
	var mbe *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, http.ErrNotMultipart):
		return true
	case errors.As(err, &mbe), errors.Is(err, multipart.ErrMessageTooLarge):
		s.fail(w, r, c, http.StatusRequestEntityTooLarge, c.t("err.formsize", maxFormBytes>>10))
	default:
		s.fail(w, r, c, http.StatusBadRequest, c.t("err.form"))
	}
	return false
}

// sameOrigin checks a POST's CSRF token (form field or X-CSRF-Token header)
// against the cookie, and its Origin header, when sent, against the host.
func (s *Server) sameOrigin(r *http.Request, c *reqCtx) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	want := cookie(r, cookieCSRF)
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// SessionPrincipal returns the principal of r's web session, or nil when
// r carries no live session, so that handlers beside the web mail on the
// same listener (the evidence report) accept its login.
func (s *Server) SessionPrincipal(r *http.Request) (*account.Principal, error) {
	t := cookie(r, cookieSession)
	if t == "" {
		return nil, nil
	}
	p, err := s.Accounts.Session(r.Context(), t)
	if errors.Is(err, account.ErrNoSession) || errors.Is(err, account.ErrAccountNotActive) {
		return nil, nil
	}
	return p, err
}
