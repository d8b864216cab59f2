// Package web is in charge of the provider's web mail for account holders
// and operators (issue 14, docs/web.md): server-rendered pages on the HTTPS
// listener — log in with a password and an optional second factor, the
// folders with search and paging, a message with its signed original
// rendered safely, the sender's verified identity and the evidence
// timeline, the quota, the compose page that hands the message to the
// browser-side signer (web/static/kepsign.js, package web/wasm) and submits
// the signed result through the same access point as SMTP, and the security
// page (second factor, sessions).
//
// It holds no mailbox rule: every read and change goes through the
// principal-taking methods of mailbox.Service and the account service, and
// only translates their answers into pages. Every route but the ones in
// publicRoutes needs a session, so a forgotten check fails closed.
package web

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/submission"
)

// DefaultSignerOrigin is where `kep signer` listens by default: the only
// origin besides our own that the pages may connect to (CSP connect-src).
const DefaultSignerOrigin = "http://127.0.0.1:18443"

// Server is the web mail.
type Server struct {
	Mailbox  *mailbox.Service
	Accounts *account.Service
	// Access is the access point (SMTP's checks) that signed messages from
	// the compose page go through; nil turns sending off.
	Access *submission.AccessPoint
	// SignerOrigin is the local signer's origin (CSP connect-src);
	// DefaultSignerOrigin when empty.
	SignerOrigin string
	// SessionTTL is how long a login lasts; account.DefaultSessionTTL when 0.
	SessionTTL time.Duration
	Now        func() time.Time
	Log        *slog.Logger
	// Location is the time zone of the pages: Europe/Istanbul (the
	// mailbox policy's calendar) when nil.
	Location *time.Location
	// PageSize is the number of messages a folder page lists; 25 when 0.
	PageSize int
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Server) loc() *time.Location {
	if s.Location != nil {
		return s.Location
	}
	if s.Mailbox != nil && s.Mailbox.Policy.Location != nil {
		return s.Mailbox.Policy.Location
	}
	return mailbox.DefaultPolicy().Location
}

func (s *Server) pageSize() int {
	if s.PageSize > 0 {
		return s.PageSize
	}
	return 25
}

// Routes. The web mail lives at / (Turkish paths); /api/, /rehber/,
// /log/, /report/, /dogrula and /denetim belong to
// other packages and are mounted beside it.
const (
	pathLogin    = "/giris"
	pathLogout   = "/cikis"
	pathMail     = "/posta/"
	pathCompose  = "/yaz/"
	pathSecurity = "/guvenlik"
)

// publicRoutes are the only patterns served without a session.
var publicRoutes = map[string]bool{
	"GET /giris":               true,
	"POST /giris":              true,
	"GET /static/kep.css":      true,
	"GET /static/compose.js":   true,
	"GET /static/kepsign.js":   true,
	"GET /static/kepsign.wasm": true,
	"GET /static/wasm_exec.js": true,
}

// Handler returns the web mail's routes, behind the security headers.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	routes := []struct {
		pattern string
		h       func(w http.ResponseWriter, r *http.Request, c *reqCtx)
	}{
		{"GET /{$}", s.home},
		{"GET /giris", s.loginPage},
		{"POST /giris", s.loginPost},
		{"POST /cikis", s.logout},
		{"GET /posta/{addr}/{folder}", s.folderPage},
		{"GET /posta/{addr}/{folder}/{uid}", s.messagePage},
		{"GET /posta/{addr}/{folder}/{uid}/ek/{n}", s.attachment},
		{"GET /posta/{addr}/{folder}/{uid}/delil/{seq}", s.bundle},
		{"POST /posta/{addr}/{folder}/{uid}/tasi", s.move},
		{"POST /posta/{addr}/{folder}/{uid}/sil", s.remove},
		{"GET /yaz/{addr}", s.composePage},
		{"POST /yaz/{addr}", s.send},
		{"GET /guvenlik", s.securityPage},
		{"POST /guvenlik/totp", s.totpBegin},
		{"POST /guvenlik/totp/onay", s.totpConfirm},
		{"POST /guvenlik/totp/kapat", s.totpDisable},
		{"POST /guvenlik/oturumlar", s.endSessions},
		{"POST /guvenlik/uygulama", s.appPasswordAdd},
		{"POST /guvenlik/uygulama/iptal", s.appPasswordRevoke},
		{"GET /static/kep.css", s.static("kep.css", "text/css; charset=utf-8")},
		{"GET /static/compose.js", s.static("compose.js", "text/javascript; charset=utf-8")},
		{"GET /static/kepsign.js", s.signerFile("kepsign.js", "text/javascript; charset=utf-8")},
		{"GET /static/kepsign.wasm", s.signerFile("kepsign.wasm", "application/wasm")},
		{"GET /static/wasm_exec.js", s.signerFile("wasm_exec.js", "text/javascript; charset=utf-8")},
	}
	for _, rt := range routes {
		mux.Handle(rt.pattern, s.wrap(rt.h, publicRoutes[rt.pattern]))
	}
	return securityHeaders(s.csp(), mux)
}

// csp is the Content-Security-Policy of every page: no inline script or
// style, nothing from elsewhere, WebAssembly for the browser signer, and a
// connection to the local signer only.
func (s *Server) csp() string {
	origin := s.SignerOrigin
	if origin == "" {
		origin = DefaultSignerOrigin
	}
	return "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self' " + origin +
		"; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

func securityHeaders(csp string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: with no-referrer a browser's form
		// POST carries "Origin: null", which sameOrigin must refuse.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		next.ServeHTTP(w, r)
	})
}
