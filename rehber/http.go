package rehber

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/directory"
)

// Problem is an RFC 9457 problem details object, with a stable code and
// the detail in English and Turkish.
type Problem struct {
	Type       string `json:"type"` // "urn:kep:problem:" + Code
	Title      string `json:"title"`
	Status     int    `json:"status"`
	Detail     string `json:"detail"`    // English
	DetailTR   string `json:"detail_tr"` // Turkish
	Code       string `json:"code"`
	RetryAfter int    `json:"retry_after,omitempty"` // seconds, with 429
}

// Authenticator finds who makes a request. It returns ErrNoPrincipal when
// the request carries no credentials, and the account package's errors
// (account.ErrBadCredentials, a *account.ThrottledError, …) when they fail.
type Authenticator func(r *http.Request) (Principal, error)

// BasicAuth authenticates HTTP Basic credentials (a KEP address or an
// operator's TCKN, and a password or app password) with the account
// service, under its login back-off.
func BasicAuth(a *account.Service) Authenticator {
	return func(r *http.Request) (Principal, error) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, ErrNoPrincipal
		}
		p, err := a.Authenticate(r.Context(), user, pass, r.RemoteAddr)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
}

// Handler serves the Rehberi to users, on the provider's HTTPS listener,
// under the prefix it is mounted at (docs/relay.md, "KEP Rehberi query"):
//
//	GET  organisations?name=…|mersis=…|vkn=…|detsis=…[&scope=local]   public
//	POST persons  (form body: tckn=…[&scope=local])                  authenticated
//
// A TCKN travels in the body, never in the URL, so that no access log or
// proxy keeps it. Answers ask the other providers too unless scope=local.
func (s *Service) Handler(auth Authenticator, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/organisations", func(w http.ResponseWriter, r *http.Request) {
		if !method(w, r, http.MethodGet) {
			return
		}
		if err := spend(r.Context(), s.DB, s.now(), "public", account.Source(r.RemoteAddr), s.limits().Public); err != nil {
			writeProblem(w, log, err)
			return
		}
		ans, err := s.Organisations(r.Context(), queryOf(r), r.URL.Query().Get("scope") != "local")
		answer(w, log, ans, err)
	})
	mux.HandleFunc("/persons", func(w http.ResponseWriter, r *http.Request) {
		tckn, scope, ok := personForm(w, r)
		if !ok {
			return
		}
		var p Principal
		var err error
		if auth == nil {
			err = ErrNoPrincipal
		} else {
			p, err = auth(r)
		}
		if err != nil {
			writeProblem(w, log, err)
			return
		}
		ans, err := s.Person(r.Context(), p, account.Source(r.RemoteAddr), tckn, scope != "local")
		answer(w, log, ans, err)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, log, errNotFound)
	})
	return mux
}

// PeerHandler serves the Rehberi to other providers, on a listener that
// requires a client certificate (PeerTLSConfig). The client is the active
// provider whose directory pin matches its certificate; it gets this
// provider's own entries only (no further fan-out), within the per-peer
// budget. A TCKN asked by a peer is audited with the peer as actor.
func (s *Service) PeerHandler(log *slog.Logger) http.Handler {
	peer := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		id, err := s.identifyPeer(r)
		if err == nil {
			err = spend(r.Context(), s.DB, s.now(), "peer", id, s.limits().Peer)
		}
		if err != nil {
			writeProblem(w, log, err)
			return "", false
		}
		return id, true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/organisations", func(w http.ResponseWriter, r *http.Request) {
		if !method(w, r, http.MethodGet) {
			return
		}
		if _, ok := peer(w, r); !ok {
			return
		}
		ans, err := s.Organisations(r.Context(), queryOf(r), false)
		answer(w, log, ans, err)
	})
	mux.HandleFunc("/persons", func(w http.ResponseWriter, r *http.Request) {
		tckn, _, ok := personForm(w, r)
		if !ok {
			return
		}
		id, ok := peer(w, r)
		if !ok {
			return
		}
		if err := CheckTCKN(tckn); err != nil {
			writeProblem(w, log, err)
			return
		}
		es, err := s.LocalPerson(r.Context(), tckn)
		if err != nil {
			writeProblem(w, log, err)
			return
		}
		ans := &Answer{Entries: es, Providers: []PeerOutcome{{ID: s.Provider, Status: "ok"}}}
		if err := s.audit(r.Context(), s.now(), "provider:"+id, "rehber.peer.tckn", tckn, describe(ans), account.Source(r.RemoteAddr)); err != nil {
			writeProblem(w, log, err)
			return
		}
		answer(w, log, ans, nil)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, log, errNotFound)
	})
	return mux
}

// Refusals of a peer.
var (
	ErrNoClientCert = errors.New("rehber: no client certificate: a provider must present the certificate the directory pins for it")
	ErrUnknownPeer  = errors.New("rehber: the client certificate is not pinned for any provider in the directory")
	ErrPeerRemoved  = errors.New("rehber: the provider was removed from the directory")
	errNotFound     = errors.New("rehber: no such query: use organisations or persons")
	errMethod       = errors.New("rehber: method not allowed: organisations takes GET, persons takes POST with the TCKN in a form body")
	errTCKNInURL    = errors.New("rehber: the TCKN must not be in the URL (access logs would keep it): send it in a POST form body")
)

func (s *Service) identifyPeer(r *http.Request) (string, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", ErrNoClientCert
	}
	var d *directory.Directory
	if s.Directory != nil {
		d = s.Directory()
	}
	if d == nil {
		return "", ErrUnknownPeer
	}
	now := s.now()
	cert := r.TLS.PeerCertificates[0]
	for i := range d.Providers {
		p := &d.Providers[i]
		if p.ID == s.Provider || !p.PinMatches(cert, now) {
			continue
		}
		if !p.Active(now) {
			return "", fmt.Errorf("%w: %s", ErrPeerRemoved, p.ID)
		}
		return p.ID, nil
	}
	return "", fmt.Errorf("%w (pin %s)", ErrUnknownPeer, directory.SPKIPin(cert))
}

func queryOf(r *http.Request) Query {
	v := r.URL.Query()
	return Query{Name: v.Get("name"), MERSIS: v.Get("mersis"), VKN: v.Get("vkn"), DETSIS: v.Get("detsis")}
}

// method admits want (and HEAD with GET), or refuses with 405.
func method(w http.ResponseWriter, r *http.Request, want string) bool {
	if r.Method == want || (want == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", want)
	writeProblem(w, nil, errMethod)
	return false
}

// personForm reads a person query: POST, form body tckn=…[&scope=…], and
// no TCKN in the URL.
func personForm(w http.ResponseWriter, r *http.Request) (tckn, scope string, ok bool) {
	if r.URL.Query().Has("tckn") {
		writeProblem(w, nil, errTCKNInURL)
		return "", "", false
	}
	if !method(w, r, http.MethodPost) {
		return "", "", false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		writeProblem(w, nil, fmt.Errorf("%w: the body is not a form (application/x-www-form-urlencoded, at most 4 KiB): %v", ErrBadQuery, err))
		return "", "", false
	}
	return r.PostForm.Get("tckn"), r.PostForm.Get("scope"), true
}

func answer(w http.ResponseWriter, log *slog.Logger, ans *Answer, err error) {
	if err != nil {
		writeProblem(w, log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(ans)
}

// problemFor maps an error to its problem: status, stable code, English
// and Turkish detail.
func problemFor(err error) Problem {
	p := Problem{Detail: err.Error()}
	set := func(status int, code, title, tr string) {
		p.Status, p.Code, p.Title, p.DetailTR = status, code, title, tr
	}
	var rl *RateLimitedError
	var lt *account.ThrottledError
	switch {
	case errors.As(err, &rl):
		set(http.StatusTooManyRequests, "rate-limited", "Too many lookups",
			fmt.Sprintf("Çok fazla KEP Rehberi sorgusu yapıldı; %d saniye sonra yeniden deneyin.", int(rl.RetryAfter()/time.Second)))
		p.RetryAfter = int(rl.RetryAfter() / time.Second)
	case errors.As(err, &lt):
		set(http.StatusTooManyRequests, "login-throttled", "Too many failed logins",
			fmt.Sprintf("Çok fazla hatalı giriş denemesi; %d saniye sonra yeniden deneyin.", int(lt.RetryAfter()/time.Second)))
		p.RetryAfter = int(lt.RetryAfter() / time.Second)
	case errors.Is(err, ErrNoPrincipal):
		set(http.StatusUnauthorized, "unauthenticated", "Login required",
			"T.C. kimlik numarasıyla sorgu yalnızca oturum açmış kullanıcılara açıktır; KEP adresiniz ve parolanızla giriş yapın.")
		p.Detail = "a lookup by TCKN is open to logged-in users only: give your KEP address and password (HTTP Basic)"
	case errors.Is(err, account.ErrBadCredentials):
		set(http.StatusUnauthorized, "bad-credentials", "Login failed", "Giriş başarısız: kullanıcı adı veya parola yanlış.")
	case errors.Is(err, account.ErrAccountNotActive):
		set(http.StatusForbidden, "account-not-active", "Account not active", "Hesabınız etkin değil; sağlayıcınıza başvurun.")
	case errors.Is(err, ErrBadTCKN):
		set(http.StatusBadRequest, "invalid-tckn", "Not a valid TCKN",
			"Geçerli bir T.C. kimlik numarası değil: 11 hane olmalı ve kontrol haneleri tutmalı.")
	case errors.Is(err, ErrBadQuery):
		set(http.StatusBadRequest, "invalid-query", "Bad query",
			fmt.Sprintf("Sorgu geçersiz: ad (en az %d harf), mersis, vkn veya detsis alanlarından tam olarak birini verin.", MinNameLength))
	case errors.Is(err, ErrNoClientCert):
		set(http.StatusUnauthorized, "no-client-certificate", "Client certificate required",
			"İstemci sertifikası yok: sağlayıcı, rehberde kendisi için sabitlenmiş sertifikayı sunmalıdır.")
	case errors.Is(err, ErrUnknownPeer):
		set(http.StatusForbidden, "unknown-provider", "Not a provider in the directory",
			"İstemci sertifikası, hizmet sağlayıcı rehberindeki hiçbir sağlayıcı için sabitlenmemiş.")
	case errors.Is(err, ErrPeerRemoved):
		set(http.StatusForbidden, "provider-removed", "Provider removed",
			"Bu sağlayıcı hizmet sağlayıcı rehberinden çıkarılmış; onunla veri alışverişi yapılmaz.")
	case errors.Is(err, errNotFound):
		set(http.StatusNotFound, "not-found", "No such query", "Böyle bir sorgu yok: organisations veya persons kullanın.")
	case errors.Is(err, errMethod):
		set(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
			"Yöntem desteklenmiyor: organisations GET, persons ise gövdesinde T.C. kimlik numarası olan bir POST ister.")
	case errors.Is(err, errTCKNInURL):
		set(http.StatusBadRequest, "tckn-in-url", "TCKN in the URL",
			"T.C. kimlik numarası URL'de gönderilemez (erişim kayıtlarında kalır); POST gövdesinde form alanı olarak gönderin.")
	default:
		set(http.StatusInternalServerError, "internal", "Internal error",
			"Sağlayıcıda bir iç hata oluştu; daha sonra yeniden deneyin.")
		p.Detail = "an internal error occurred; try again later"
	}
	p.Type = "urn:kep:problem:" + p.Code
	return p
}

func writeProblem(w http.ResponseWriter, log *slog.Logger, err error) {
	p := problemFor(err)
	if p.Status == http.StatusInternalServerError && log != nil {
		log.LogAttrs(context.Background(), slog.LevelError, "rehber: lookup failed", slog.String("err", err.Error()))
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	if p.Code == "unauthenticated" || p.Code == "bad-credentials" {
		w.Header().Set("WWW-Authenticate", `Basic realm="KEP Rehberi", charset="UTF-8"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}
