// Package publicweb is in charge of the provider's public pages, served
// without login on its HTTPS listener (issue 14, point 4):
//
//	GET  /dogrula             the verification page: upload form, or, with
//	                          ?d=<hex>&i=<index> from a report's QR code,
//	                          the log entry's inclusion in the latest checkpoint
//	POST /dogrula             verify an uploaded evidence bundle, and
//	                          optionally the original message, check by check
//	GET  /denetim             the current log checkpoint and how to audit it
//	GET  /static/public.css   the pages' stylesheet
//
// Nothing uploaded is kept: the multipart body is read part by part into
// memory, within a size limit, never to disk, and dropped with the reply.
// The pages carry no script and no inline style (a strict
// Content-Security-Policy holds).
package publicweb

import (
	"embed"
	"html/template"
	"net/http"
	"sync"
	"time"

	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

// Site holds what the public pages read. Every field but Directory,
// MaxUpload and Now is required.
type Site struct {
	DB *store.DB
	// Anchors are the node's own trust anchors: its provider CA, the TSA
	// CAs and the log's verifier keys.
	Anchors evidence.Anchors
	// Directory returns the authority's provider directory in force, so
	// that bundles from other providers verify too; nil when the node
	// stands alone.
	Directory  func() *directory.Directory
	ProviderID string // this provider's directory id (hsNN)
	Domain     string // this provider's domain, for headings
	// Entries reads log entries (mailbox.LogEntries): evidence digests and
	// receipts, as the tiles serve them.
	Entries   tlog.EntryReader
	MaxUpload int64 // bytes of one upload, bundle and original together; 0 means DefaultMaxUpload
	// MaxVerifying bounds the uploads read and checked at once (memory:
	// MaxVerifying × MaxUpload at most); more are refused with 503 until
	// one ends. 0 means DefaultMaxVerifying.
	MaxVerifying int
	// UploadTimeout bounds how long one upload may take to arrive, so that
	// slow senders cannot hold the MaxVerifying slots (slowloris); 0 means
	// DefaultUploadTimeout.
	UploadTimeout time.Duration
	Now           func() time.Time

	slotsOnce sync.Once
	slots     chan struct{}
}

// DefaultUploadTimeout: 32 MiB arrive in it at about 1 MB/s; a bundle of
// tens of kB at any speed.
const DefaultUploadTimeout = 30 * time.Second

func (s *Site) uploadTimeout() time.Duration {
	if s.UploadTimeout > 0 {
		return s.UploadTimeout
	}
	return DefaultUploadTimeout
}

// DefaultMaxVerifying: four uploads at once.
const DefaultMaxVerifying = 4

// slot takes a verification slot without waiting; release gives it back.
func (s *Site) slot() (release func(), ok bool) {
	s.slotsOnce.Do(func() {
		n := s.MaxVerifying
		if n <= 0 {
			n = DefaultMaxVerifying
		}
		s.slots = make(chan struct{}, n)
	})
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, true
	default:
		return nil, false
	}
}

// DefaultMaxUpload bounds an upload: a bundle is small (tens of kB), an
// original at most the provider's message size limit.
const DefaultMaxUpload = 32 << 20

// CSP is the pages' Content-Security-Policy: no script, styles and
// images from the provider, forms posting back to it only.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/public.css
var stylesheet []byte

var pages = template.Must(template.New("").ParseFS(templateFS, "templates/*.html"))

// Handler serves the public pages; mount it at "/dogrula", "/denetim" and
// "/static/public.css".
func (s *Site) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dogrula", s.verifyPage)
	mux.HandleFunc("POST /dogrula", s.verifyUpload)
	mux.HandleFunc("GET /denetim", s.auditPage)
	mux.HandleFunc("GET /static/public.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(stylesheet)
	})
	// Every answer, the mux's own 404 and 405 included, carries the CSP
	// and may not be framed (X-Frame-Options for browsers before CSP 2).
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	})
}

func (s *Site) maxUpload() int64 {
	if s.MaxUpload > 0 {
		return s.MaxUpload
	}
	return DefaultMaxUpload
}

// page is what every template gets.
type page struct {
	Domain  string
	Title   string
	Error   *message // a refusal, in Turkish and English
	Max     string   // the upload limit, for the form
	Verify  *verification
	Lookup  *lookup
	Audit   *audit
	Invite  bool // show the upload form
	Message string
}

// message is a sentence in Turkish and English.
type message struct{ TR, EN string }

func (s *Site) render(w http.ResponseWriter, status int, name string, p *page) {
	p.Domain = s.Domain
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	pages.ExecuteTemplate(w, name, p)
}

func (s *Site) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// istanbul is where the pages show times (beside UTC).
var istanbul = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Istanbul")
	if err != nil {
		return time.FixedZone("TRT", 3*60*60)
	}
	return loc
}()

// when writes a time as users read it and as evidence states it.
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(istanbul).Format("2006-01-02 15:04:05") + " (Europe/Istanbul) · " + t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}
