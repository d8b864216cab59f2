package report

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/mailbox"
)

// ErrNoCredentials: the request carries no credentials.
var ErrNoCredentials = errors.New("report: no credentials")

// BasicAuth authenticates HTTP Basic credentials (a KEP address or an
// operator's TCKN, and a password or app password) with the account
// service, under its login back-off: the fallback the web's session
// lookup stands beside, and what API clients use.
func BasicAuth(a *account.Service) func(*http.Request) (*account.Principal, error) {
	return func(r *http.Request) (*account.Principal, error) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, ErrNoCredentials
		}
		return a.Authenticate(r.Context(), user, pass, r.RemoteAddr)
	}
}

// CSP is the Content-Security-Policy of the report page: no script at
// all, styles and images from the provider only.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the evidence report of a message to the principals who
// may read its evidence:
//
//	GET /report/{id}.html   the printable page
//	GET /report/{id}.pdf    the PDF
//	GET /report/{id}.png    the report's QR code
//	GET /static/report.css  the page's stylesheet (public)
//
// {id} is the RFC 5322 Message-ID without angle brackets, url.PathEscape'd.
// Mount it at "/report/" and "/static/report.css" unstripped. principal
// finds who asks (the web's session, or BasicAuth); a message the
// principal may not read is "not found", exactly as a message that does
// not exist.
func Handler(mb *mailbox.Service, principal func(*http.Request) (*account.Principal, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every answer, refusals included, is framed by nobody and runs
		// nothing; the PDF drops the CSP below (browsers' PDF viewers).
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Only GET reads a report.", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/static/report.css" {
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Write(stylesheet)
			return
		}
		id, kind, ok := parsePath(r.URL.EscapedPath())
		if !ok {
			http.Error(w, "No such report. Reports are at /report/MESSAGE-ID.pdf or .html, the Message-ID without angle brackets and URL-escaped.", http.StatusNotFound)
			return
		}
		p, err := principal(r)
		if err != nil {
			authError(w, err)
			return
		}
		rep, err := Build(r.Context(), mb, p, id, Options{BaseURL: baseURL(r)})
		var rf *mailbox.Refusal
		if errors.Is(err, ErrNotFound) || errors.As(err, &rf) && rf.Kind == mailbox.NotFound {
			http.Error(w, fmt.Sprintf("No evidence about message <%s> that you may read. Check the Message-ID, and that you are signed in as its sender or recipient.", id), http.StatusNotFound)
			return
		}
		if err != nil {
			slog.Default().Error("evidence report", "err", err)
			http.Error(w, "The report could not be made; try again in a minute, or ask the provider if it persists.", http.StatusInternalServerError)
			return
		}
		var b bytes.Buffer
		h.Set("Cache-Control", "no-store")
		switch kind {
		case "html":
			h.Set("Content-Type", "text/html; charset=utf-8")
			qr := ""
			if rep.QR != "" {
				qr = "./" + url.PathEscape(id) + ".png" // "./": an id with a colon is no scheme
			}
			err = rep.WriteHTML(&b, qr)
		case "pdf":
			h.Set("Content-Type", "application/pdf")
			h.Del("Content-Security-Policy")
			h.Set("Content-Disposition", `inline; filename="delil-raporu.pdf"`)
			err = rep.WritePDF(&b)
		case "png":
			var png []byte
			if png, err = rep.QRPNG(320); err == nil && png == nil {
				http.Error(w, "No evidence of this message is in a checkpoint yet; try again in a few seconds.", http.StatusNotFound)
				return
			}
			h.Set("Content-Type", "image/png")
			b.Write(png)
		}
		if err != nil {
			slog.Default().Error("evidence report rendering", "kind", kind, "err", err)
			http.Error(w, "The report could not be written; try again in a minute, or ask the provider if it persists.", http.StatusInternalServerError)
			return
		}
		h.Set("Content-Length", strconv.Itoa(b.Len()))
		w.Write(b.Bytes())
	})
}

// parsePath reads /report/{id}.{html,pdf,png}.
func parsePath(escaped string) (id, kind string, ok bool) {
	rest, found := strings.CutPrefix(escaped, "/report/")
	if !found {
		return "", "", false
	}
	dot := strings.LastIndexByte(rest, '.')
	if dot <= 0 {
		return "", "", false
	}
	kind = rest[dot+1:]
	if kind != "html" && kind != "pdf" && kind != "png" {
		return "", "", false
	}
	id, err := url.PathUnescape(rest[:dot])
	if err != nil || id == "" || strings.ContainsAny(id, "<>\r\n") {
		return "", "", false
	}
	return id, kind, true
}

func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func authError(w http.ResponseWriter, err error) {
	var te *account.ThrottledError
	switch {
	case errors.As(err, &te):
		secs := int(te.Wait.Seconds()) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		http.Error(w, fmt.Sprintf("Too many failed sign-ins; wait %d seconds and try again.", secs), http.StatusTooManyRequests)
	case errors.Is(err, ErrNoCredentials), errors.Is(err, account.ErrBadCredentials):
		w.Header().Set("WWW-Authenticate", `Basic realm="KEP", charset="UTF-8"`)
		msg := "Sign in to see the evidence report: your KEP address (or an operator's TCKN) and password."
		if errors.Is(err, account.ErrBadCredentials) {
			msg = "Wrong user name or password; sign in again with your KEP address (or an operator's TCKN) and password."
		}
		http.Error(w, msg, http.StatusUnauthorized)
	case errors.Is(err, account.ErrAccountNotActive):
		http.Error(w, "This account is not active; ask the provider to reopen it.", http.StatusForbidden)
	default:
		slog.Default().Error("evidence report sign-in", "err", err)
		http.Error(w, "Sign-in could not be checked; try again in a minute.", http.StatusServiceUnavailable)
	}
}
