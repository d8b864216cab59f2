// Package api is in charge of the provider's REST API (issue 13;
// docs/api.md): JSON over HTTPS under /api/v1/ on the provider's HTTPS
// listener, authenticated by API tokens (account/tokens.go), rate limited
// per token, every error an RFC 9457 problem (problem.go), described by
// the OpenAPI 3.1 document openapi.json, served at /api/openapi.json with
// a readable page at /api/. It translates HTTP into calls of the core —
// submission.AccessPoint for sending, mailbox for reading, status and
// evidence, account for accounts, operators and tokens, rehber for the
// KEP Rehberi — and holds no rule of its own. Webhooks for evidence events
// are in webhook.go.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/rehber"
	"github.com/kephs/kep/submission"
)

// Server is the REST API over the provider's core.
type Server struct {
	Accounts *account.Service
	Mailbox  *mailbox.Service
	Access   *submission.AccessPoint
	Rehber   *rehber.Service // nil: the Rehberi routes answer 404
	// Anchors are what an uploaded bundle of this provider's evidence is
	// verified against: its CA, TSA roots and log keys. A bundle the
	// directory names another provider as the issuer of is verified
	// against the directory (evidence.VerifyTrusted), as on the public
	// verification page.
	Anchors    evidence.Anchors
	ProviderID string
	Directory  func() *directory.Directory // nil without federation
	Limits     Limits                      // zero fields take DefaultLimits
	Logger     *slog.Logger
	Now        func() time.Time

	buckets buckets
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// route is one served operation. The OpenAPI document lists exactly these
// (TestRoutesMatchDocument).
type route struct {
	Method string
	Path   string // a net/http pattern path, which is OpenAPI's path template
	Public bool   // served without a token
	Handle func(c *call) error
}

// routes is every route of the API, in one explicit list: every route not
// marked Public needs a token, so a forgotten check fails closed.
func (s *Server) routes() []route {
	return []route{
		{"GET", "/api/openapi.json", true, s.openAPI},
		{"GET", "/api/{$}", true, s.docPage},

		{"GET", "/api/v1/me", false, s.me},
		{"POST", "/api/v1/messages", false, s.submitOne},
		{"POST", "/api/v1/messages/bulk", false, s.submitBulk},
		{"GET", "/api/v1/messages/{ref}/status", false, s.messageStatus},
		{"GET", "/api/v1/messages/{ref}/evidence", false, s.messageEvidence},
		{"GET", "/api/v1/messages/{ref}/original", false, s.messageOriginal},
		{"GET", "/api/v1/evidence/{id}/bundle", false, s.evidenceBundle},
		{"POST", "/api/v1/verify", false, s.verify},

		{"GET", "/api/v1/accounts", false, s.listAccounts},
		{"GET", "/api/v1/accounts/{address}", false, s.getAccount},
		{"GET", "/api/v1/accounts/{address}/usage", false, s.usage},
		{"GET", "/api/v1/accounts/{address}/folders", false, s.listFolders},
		{"GET", "/api/v1/accounts/{address}/folders/{folder}/messages", false, s.listMessages},
		{"GET", "/api/v1/accounts/{address}/folders/{folder}/messages/{uid}", false, s.getMessage},
		{"GET", "/api/v1/accounts/{address}/folders/{folder}/messages/{uid}/content", false, s.messageContent},
		{"GET", "/api/v1/accounts/{address}/operators", false, s.listOperators},
		{"PUT", "/api/v1/accounts/{address}/operators/{id}/grants", false, s.setGrants},
		{"GET", "/api/v1/accounts/{address}/tokens", false, s.listTokens},
		{"POST", "/api/v1/accounts/{address}/tokens", false, s.createToken},
		{"DELETE", "/api/v1/accounts/{address}/tokens/{id}", false, s.revokeToken},
		{"GET", "/api/v1/accounts/{address}/webhooks", false, s.listWebhooks},
		{"POST", "/api/v1/accounts/{address}/webhooks", false, s.createWebhook},
		{"DELETE", "/api/v1/accounts/{address}/webhooks/{id}", false, s.deleteWebhook},

		{"GET", "/api/v1/rehber/organisations", false, s.rehberOrganisations},
		{"POST", "/api/v1/rehber/persons", false, s.rehberPersons},
	}
}

// Handler serves the API; mount it at /api/ on the HTTPS listener.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	mux.Handle("/api/", s.wrap(route{Public: true, Handle: func(c *call) error {
		return problemf(http.StatusNotFound, "not-found", "No such API route", "Böyle bir API yolu yok: yolları /api/openapi.json listeler.",
			"There is no such API route: /api/openapi.json lists them.")
	}}))
	return mux
}

// call is one request under way.
type call struct {
	s   *Server
	w   http.ResponseWriter
	r   *http.Request
	ctx context.Context
	p   *account.Principal // nil for public routes
	tok *account.TokenRecord
	id  string // the request's id, in logs and in refusals that cite it
}

// actor names the token's principal in the audit trail.
func (c *call) actor() account.Actor {
	name := c.p.Name()
	if c.tok != nil {
		name += " (api token " + c.tok.Hint + ")"
	}
	return account.Actor{Name: name, Remote: account.Source(c.r.RemoteAddr)}
}

func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var idb [8]byte
		rand.Read(idb[:])
		c := &call{s: s, w: w, r: r, ctx: r.Context(), id: "api-" + hex.EncodeToString(idb[:])}
		w.Header().Set("X-Request-Id", c.id)
		w.Header().Set("Cache-Control", "no-store")
		defer func() {
			if v := recover(); v != nil {
				s.log().Error("api: panic", "request", c.id, "panic", v, "stack", string(debug.Stack()))
				c.problem(errors.New("panic"))
			}
		}()
		if !rt.Public {
			if err := s.authenticate(c); err != nil {
				c.problem(err)
				return
			}
			if err := s.spend(c, 1); err != nil {
				c.problem(err)
				return
			}
		}
		if err := rt.Handle(c); err != nil {
			c.problem(err)
		}
	})
}

// authenticate takes the bearer token (RFC 6750 §2.1).
func (s *Server) authenticate(c *call) error {
	h := c.r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		c.w.Header().Set("WWW-Authenticate", `Bearer realm="kep"`)
		return errNoToken
	}
	p, tok, err := s.Accounts.AuthenticateToken(c.ctx, strings.TrimSpace(token))
	if err != nil {
		if errors.Is(err, account.ErrBadToken) {
			c.w.Header().Set("WWW-Authenticate", `Bearer realm="kep", error="invalid_token"`)
			s.log().Info("api: bad token", "request", c.id, "remote", account.Source(c.r.RemoteAddr))
		}
		return err
	}
	c.p, c.tok = p, tok
	return nil
}

// json writes v as the response.
func (c *call) json(status int, v any) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(status)
	enc := json.NewEncoder(c.w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		// The client went away: what was done stays done (a retry with
		// the same idempotency keys finds it).
		c.s.log().Info("api: answer not delivered", "request", c.id, "err", err)
	}
	return nil
}

// bytes writes a file download.
func (c *call) bytes(contentType, filename string, data []byte) error {
	c.w.Header().Set("Content-Type", contentType)
	if filename != "" {
		c.w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	}
	_, err := c.w.Write(data)
	return err
}

// readJSON decodes the request body into v, refusing unknown fields.
func (c *call) readJSON(v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.w, c.r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return problemf(http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large",
				"İstek gövdesi çok büyük: en fazla "+humanBytes(limit)+".", "The request body is larger than "+humanBytes(limit)+".")
		}
		return problemf(http.StatusBadRequest, "bad-json", "The body is not the JSON expected",
			"İstek gövdesi beklenen JSON değil: "+err.Error(), "The request body is not the JSON this call expects: "+err.Error())
	}
	return nil
}
