package web

import (
	"errors"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kephs/kep/account"
)

type loginData struct {
	User     string
	Next     string
	NeedCode bool
}

// home sends a logged-in principal to the first account's inbox.
func (s *Server) home(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	accts, err := s.Mailbox.Visible(r.Context(), c.p)
	if err != nil {
		s.internal(w, r, c, err)
		return
	}
	if len(accts) == 0 {
		// An operator with the send grant alone: the compose page.
		if so, err := s.Mailbox.SendOnly(r.Context(), c.p); err == nil && len(so) > 0 {
			http.Redirect(w, r, pathCompose+url.PathEscape(so[0].Address), http.StatusSeeOther)
			return
		}
		// An operator whose grants were all revoked: only the security page.
		http.Redirect(w, r, pathSecurity, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, folderURL(accts[0].Address, "inbox"), http.StatusSeeOther)
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	if c.p != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, r, c, http.StatusOK, "login", &page{Title: c.t("login"), Data: &loginData{Next: safeNext(r.URL.Query().Get("sonra"))}})
}

// safeNext keeps a redirect after login on this site: a path of our own,
// judged as the browser will read it once http.Redirect has cleaned it
// (path.Clean turns "/./\\evil.example" into "/\\evil.example"). Browsers
// read a backslash as a slash and drop tabs and line breaks (WHATWG URL
// standard, "special" schemes), so any of them, anywhere, sends the user
// home instead.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.ContainsFunc(next, func(r rune) bool { return r == '\\' || unicode.IsControl(r) }) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" || strings.HasPrefix(u.Path, "//") || strings.HasPrefix(path.Clean(u.Path), "//") {
		return "/"
	}
	return next
}

// loginPost checks the password and, when it is on, the second factor
// (account.AuthenticateWeb, throttled by the same back-off as IMAP and
// SMTP), then opens a session in the store.
func (s *Server) loginPost(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	user := strings.TrimSpace(r.PostFormValue("kullanici"))
	d := &loginData{User: user, Next: safeNext(r.PostFormValue("sonra"))}
	p, err := s.Accounts.AuthenticateWeb(r.Context(), user, r.PostFormValue("parola"), r.PostFormValue("kod"), r.RemoteAddr)
	if err != nil {
		status, msg := http.StatusUnauthorized, c.t("err.login")
		var te *account.ThrottledError
		switch {
		case errors.As(err, &te):
			status, msg = http.StatusTooManyRequests, c.t("err.throttled", te.RetryAfter().Round(time.Second))
			w.Header().Set("Retry-After", retryAfter(te.RetryAfter()))
		case errors.Is(err, account.ErrSecondFactorNeeded):
			d.NeedCode, msg = true, c.t("login.needcode")
		case errors.Is(err, account.ErrWebNeedsPassword):
			msg = c.t("login.apppassword")
		case errors.Is(err, account.ErrBadSecondFactor):
			d.NeedCode = true
		case errors.Is(err, account.ErrBadCredentials), errors.Is(err, account.ErrAccountNotActive):
		default:
			s.internal(w, r, c, err)
			return
		}
		s.render(w, r, c, status, "login", &page{Title: c.t("login"), Error: msg, Data: d})
		return
	}
	tok, exp, err := s.Accounts.NewSession(r.Context(), p, s.SessionTTL)
	if err != nil {
		s.internal(w, r, c, err)
		return
	}
	setCookie(w, cookieSession, tok, exp, true)
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	if err := s.Accounts.EndSession(r.Context(), c.token); err != nil {
		s.internal(w, r, c, err)
		return
	}
	setCookie(w, cookieSession, "", time.Time{}, true)
	http.Redirect(w, r, pathLogin, http.StatusSeeOther)
}
