package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"net/url"
	"strings"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/submission"
)

// The compose page and the send endpoint. The page's script
// (static/compose.js) builds a client.Message from the form, has it signed
// in the browser by static/kepsign.js — with a key file that never leaves
// the browser, or through `kep signer` and a smartcard — and posts the
// signed original, base64, here. The server never sees a private key. The
// signed original then goes through the access point exactly as over SMTP
// (submission.AccessPoint): the same checks, the same acceptance or
// rejection evidence, the same reasons.

type composeData struct {
	From     string
	CanSend  bool
	SendURL  string
	MaxBytes int64
	Types    []string
}

func (s *Server) composePage(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	// An operator with the send grant alone composes for the account
	// without reading it; one who reads but may not send sees why below.
	a, err := s.Mailbox.SendAccount(r.Context(), c.p, r.PathValue("addr"))
	if errors.Is(err, mailbox.ErrNoAccess) {
		a, err = s.Mailbox.Account(r.Context(), c.p, r.PathValue("addr"))
	}
	if err != nil {
		s.refused(w, r, c, err)
		return
	}
	n, err := s.nav(r.Context(), c, a, "")
	if err != nil {
		s.internal(w, r, c, err)
		return
	}
	d := &composeData{From: a.Address, CanSend: c.p.Can(a.ID, account.GrantSend) && s.Access != nil, SendURL: pathCompose + url.PathEscape(a.Address),
		Types: []string{evidence.IletiTipStandart, evidence.IletiTipEYazisma, evidence.IletiTipETebligat}}
	if s.Access != nil {
		d.MaxBytes = s.Access.MaxMessageBytes()
	}
	status := http.StatusOK
	pg := &page{Title: c.t("compose"), Nav: n, Data: d}
	switch {
	case account.Capability(a.Capability) == account.ReceiveOnly:
		// The access point refuses it too; the page says so at once.
		d.CanSend, status, pg.Error = false, http.StatusForbidden, c.t("compose.receiveonly")
	case !d.CanSend:
		status, pg.Error = http.StatusForbidden, c.t("compose.nosend")
	}
	s.render(w, r, c, status, "compose", pg)
}

// sendRequest is what compose.js posts.
type sendRequest struct {
	Signed string `json:"signed"` // the signed original, base64
}

// sendResult is the answer compose.js shows: accepted with the acceptance
// evidence's id, or the refusal's reason and machine code.
type sendResult struct {
	Accepted   bool     `json:"accepted"`
	EvidenceID string   `json:"evidence,omitempty"`
	Message    string   `json:"message"`
	Code       string   `json:"code,omitempty"`
	Temporary  bool     `json:"temporary,omitempty"`
	Recipients []string `json:"recipients,omitempty"`
}

func (s *Server) send(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	ctx := r.Context()
	reply := func(status int, res *sendResult) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(res)
	}
	_, err := s.Mailbox.SendAccount(ctx, c.p, r.PathValue("addr"))
	if err != nil && !errors.Is(err, mailbox.ErrNoAccess) {
		reply(http.StatusNotFound, &sendResult{Message: c.t("err.notfound")})
		return
	}
	if s.Access == nil || err != nil {
		reply(http.StatusForbidden, &sendResult{Message: c.t("compose.nosend")})
		return
	}
	limit := s.Access.MaxMessageBytes()*4/3 + 64<<10
	var req sendRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit)).Decode(&req); err != nil {
		reply(http.StatusBadRequest, &sendResult{Message: "The request is not the signed message as JSON {\"signed\": base64}, or it is too large: " + err.Error()})
		return
	}
	data, err := base64.StdEncoding.DecodeString(req.Signed)
	if err != nil {
		reply(http.StatusBadRequest, &sendResult{Message: "The signed message is not valid base64: " + err.Error()})
		return
	}
	from, rcpts := envelope(data)
	acc, ref := s.Access.SubmitRequest(ctx, &submission.Request{Principal: c.p, From: from, Recipients: rcpts, Data: data,
		AuthMethod: evidence.AuthWebNES, AuthTime: s.now(), Tag: "web-" + randomToken()[:8]})
	if ref != nil {
		status := http.StatusUnprocessableEntity
		if ref.Temporary() {
			status = http.StatusServiceUnavailable
		}
		reply(status, &sendResult{Message: ref.Reason.Text, Code: ref.MachineCode(), Temporary: ref.Temporary()})
		return
	}
	reply(http.StatusOK, &sendResult{Accepted: true, EvidenceID: acc.EvidenceID, Recipients: acc.Recipients, Message: c.t("compose.sent", acc.EvidenceID)})
}

// envelope reads the envelope a mail client would give: the From address
// as the sender, every To and Cc address as a recipient. The access point
// checks them against the signed header (and refuses Bcc).
func envelope(data []byte) (from string, rcpts []string) {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return "", nil
	}
	if l, err := mail.ParseAddressList(m.Header.Get("From")); err == nil && len(l) > 0 {
		from = l[0].Address
	}
	for _, k := range []string{"To", "Cc"} {
		if v := strings.TrimSpace(m.Header.Get(k)); v != "" {
			if l, err := mail.ParseAddressList(v); err == nil {
				for _, ad := range l {
					rcpts = append(rcpts, ad.Address)
				}
			}
		}
	}
	return from, rcpts
}
