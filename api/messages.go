package api

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/rehber"
	"github.com/kephs/kep/store"
)

// me: GET /api/v1/me — whom the token acts as.
func (s *Server) me(c *call) error {
	out := map[string]any{"acts_as": c.tok.ActsAs(), "token": map[string]any{"id": c.tok.ID, "name": c.tok.Name, "hint": c.tok.Hint}}
	if c.p.Operator != nil {
		out["operator"] = map[string]any{"name": c.p.Operator.Name, "tckn": identity.Mask(c.p.Operator.TCKN)}
	}
	list, err := s.accountList(c)
	if err != nil {
		return err
	}
	out["accounts"] = list
	return c.json(http.StatusOK, out)
}

// accountList is the accounts the token may read, then those it may only
// send for (an operator with the send grant alone: its "grants" say
// "send", and only POST /api/v1/messages works for it).
func (s *Server) accountList(c *call) ([]map[string]any, error) {
	accts, err := s.Mailbox.Visible(c.ctx, c.p)
	if err != nil {
		return nil, err
	}
	sendOnly, err := s.Mailbox.SendOnly(c.ctx, c.p)
	if err != nil {
		return nil, err
	}
	list := []map[string]any{}
	for _, a := range append(accts, sendOnly...) {
		list = append(list, accountJSON(c.p, a))
	}
	return list, nil
}

func accountJSON(p *account.Principal, a *store.Account) map[string]any {
	return map[string]any{"address": a.Address, "kind": a.Kind, "capability": a.Capability, "status": a.Status, "name": a.OwnerName,
		"quota_bytes": a.QuotaBytes, "used_bytes": a.UsedBytes, "grants": p.Grants(a.ID).String()}
}

// account resolves {address} to an account the principal may read.
func (c *call) account() (*store.Account, error) {
	return c.s.Mailbox.Account(c.ctx, c.p, c.r.PathValue("address"))
}

// listAccounts: GET /api/v1/accounts.
func (s *Server) listAccounts(c *call) error {
	list, err := s.accountList(c)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"accounts": list})
}

// getAccount: GET /api/v1/accounts/{address} — with its quota.
func (s *Server) getAccount(c *call) error {
	a, err := c.account()
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, accountJSON(c.p, a))
}

// usage: GET /api/v1/accounts/{address}/usage?from=YYYY-MM-DD&to=YYYY-MM-DD
func (s *Server) usage(c *call) error {
	a, err := c.account()
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	to := s.now().Add(time.Second) // up to now
	from := to.AddDate(0, -1, 0)
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(f.name); v != "" {
			t, err := time.Parse(time.DateOnly, v)
			if err != nil {
				return problemf(http.StatusBadRequest, "bad-date", "Bad date", f.name+" bir tarih olmalı: YYYY-AA-GG.", f.name+" must be a date: YYYY-MM-DD.")
			}
			*f.t = t.Add(-3 * time.Hour) // the day in Europe/Istanbul
		}
	}
	if !to.After(from) || to.Sub(from) > 366*24*time.Hour {
		return problemf(http.StatusBadRequest, "bad-period", "Bad period", "Dönem en az bir gün, en fazla bir yıl olmalı ve from, to'dan önce gelmeli.",
			"The period must run forward, from before to, and span at most a year.")
	}
	u, err := s.Mailbox.AccountUsage(c.ctx, c.p, a, from, to)
	if err != nil {
		return err
	}
	days := u.Days
	if days == nil {
		days = []mailbox.DayUsage{}
	}
	return c.json(http.StatusOK, map[string]any{"address": a.Address, "from": u.From, "to": u.To, "messages": u.Messages,
		"recipients": u.Recipients, "bytes": u.Bytes, "days": days, "quota_bytes": a.QuotaBytes, "used_bytes": a.UsedBytes})
}

// listFolders: GET /api/v1/accounts/{address}/folders.
func (s *Server) listFolders(c *call) error {
	a, err := c.account()
	if err != nil {
		return err
	}
	fs, err := s.Mailbox.Folders(c.ctx, c.p, a)
	if err != nil {
		return err
	}
	list := []map[string]any{}
	for _, f := range fs {
		n, unseen, _, err := mailbox.Counts(c.ctx, s.Mailbox.DB.Q(), f.ID)
		if err != nil {
			return err
		}
		list = append(list, map[string]any{"name": f.Name, "messages": n, "unseen": unseen})
	}
	return c.json(http.StatusOK, map[string]any{"folders": list})
}

func (c *call) folder() (*store.Account, *mailbox.Folder, error) {
	a, err := c.account()
	if err != nil {
		return nil, nil, err
	}
	f, err := c.s.Mailbox.OpenFolder(c.ctx, c.p, a, c.r.PathValue("folder"))
	return a, f, err
}

// messageJSON describes a message of a folder: never its body, nor a
// snippet of it.
func (c *call) messageJSON(a *store.Account, f *mailbox.Folder, m *mailbox.Message) (map[string]any, error) {
	out := map[string]any{"uid": m.UID, "kind": string(m.Kind), "size": m.Size, "internal_date": m.InternalDate, "flags": m.Flags}
	if out["flags"] == nil {
		out["flags"] = []string{}
	}
	base := "/api/v1/accounts/" + a.Address + "/folders/" + f.Name + "/messages/" + strconv.FormatUint(uint64(m.UID), 10)
	links := map[string]string{"self": base, "content": base + "/content"}
	if m.MessageID != 0 {
		k, err := mailbox.GetKEPMessage(c.ctx, c.s.Mailbox.DB.Q(), m.MessageID)
		if err != nil {
			return nil, err
		}
		out["kep"] = map[string]any{"message_id": k.ID, "from": k.From, "sender_name": k.SenderName, "header_id": k.HeaderID,
			"ileti_id": k.IletiID, "ileti_tip": k.IletiTip, "submitted_at": k.SubmittedAt, "evidence_id": k.EvidenceID}
		ref := "/api/v1/messages/" + strconv.FormatInt(k.ID, 10)
		links["status"], links["evidence"] = ref+"/status", ref+"/evidence"
	}
	if m.Kind == mailbox.KindEvidence {
		out["evidence_seq"] = m.Ref
	}
	out["links"] = links
	return out, nil
}

// listMessages: GET …/folders/{folder}/messages?after=UID&limit=N — in
// UID order, a page at a time.
func (s *Server) listMessages(c *call) error {
	a, f, err := c.folder()
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	after, limit := uint64(0), 50
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 32); err != nil {
			return problemf(http.StatusBadRequest, "bad-cursor", "Bad cursor", "after bir UID olmalı.", "after must be a UID (a whole number).")
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return problemf(http.StatusBadRequest, "bad-limit", "Bad limit", "limit 1 ile 200 arasında olmalı.", "limit must be between 1 and 200.")
		}
		limit = n
	}
	ms, err := s.Mailbox.Messages(c.ctx, c.p, f)
	if err != nil {
		return err
	}
	list := []map[string]any{}
	next := ""
	for _, m := range ms {
		if uint64(m.UID) <= after {
			continue
		}
		if len(list) == limit {
			next = strconv.FormatUint(uint64(list[len(list)-1]["uid"].(uint32)), 10)
			break
		}
		j, err := c.messageJSON(a, f, m)
		if err != nil {
			return err
		}
		list = append(list, j)
	}
	out := map[string]any{"folder": f.Name, "messages": list}
	if next != "" {
		out["next"] = "?after=" + next + "&limit=" + strconv.Itoa(limit)
	}
	return c.json(http.StatusOK, out)
}

func (c *call) folderMessage() (*store.Account, *mailbox.Folder, *mailbox.Message, error) {
	a, f, err := c.folder()
	if err != nil {
		return nil, nil, nil, err
	}
	uid, err := strconv.ParseUint(c.r.PathValue("uid"), 10, 32)
	if err != nil {
		return nil, nil, nil, problemf(http.StatusNotFound, "not-found", "Not found", "Böyle bir ileti yok.", "No such message: the UID is a whole number.")
	}
	m, err := mailbox.GetMessage(c.ctx, c.s.Mailbox.DB.Q(), f.ID, uint32(uid))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, problemf(http.StatusNotFound, "not-found", "Not found", "Böyle bir ileti yok.", "No message with UID "+c.r.PathValue("uid")+" in "+f.Name+".")
	}
	return a, f, m, err
}

// getMessage: GET …/messages/{uid} — what a listing shows of one.
func (s *Server) getMessage(c *call) error {
	a, f, m, err := c.folderMessage()
	if err != nil {
		return err
	}
	j, err := c.messageJSON(a, f, m)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, j)
}

// messageContent: GET …/messages/{uid}/content — the message as IMAP
// serves it. For a KEP message in the recipient's mailbox it is a
// retrieval (evidence 60), exactly as an IMAP body fetch without PEEK.
func (s *Server) messageContent(c *call) error {
	_, _, m, err := c.folderMessage()
	if err != nil {
		return err
	}
	if err := s.Mailbox.Serve(c.ctx, c.p, m, false); err != nil {
		return err
	}
	data, err := s.Mailbox.Content(c.ctx, m)
	if err != nil {
		return err
	}
	return c.bytes("message/rfc822", strconv.FormatUint(uint64(m.UID), 10)+".eml", data)
}

// evidenceJSON is one evidence of a list.
func evidenceJSON(e *mailbox.EvidenceEntry) map[string]any {
	out := map[string]any{"id": e.ID, "code": int(e.Code), "event": e.Code.Label(), "event_tr": e.Code.LabelTR(), "event_time": e.EventTime,
		"links": map[string]string{"bundle": "/api/v1/evidence/" + e.ID + "/bundle"}}
	if e.Concerns != "" {
		out["recipient"] = e.Concerns
	}
	if e.Reason != "" {
		out["reason"] = e.Reason
	}
	if e.Foreign {
		out["issued_by_recipient_provider"] = true
	}
	return out
}

func evidenceList(es []*mailbox.EvidenceEntry) []map[string]any {
	out := []map[string]any{}
	for _, e := range es {
		out = append(out, evidenceJSON(e))
	}
	return out
}

// messageStatus: GET /api/v1/messages/{ref}/status.
func (s *Server) messageStatus(c *call) error {
	st, err := s.Mailbox.MessageStatus(c.ctx, c.p, c.r.PathValue("ref"))
	if err != nil {
		return err
	}
	m := st.Message
	rs := []map[string]any{}
	for _, r := range st.Recipients {
		j := map[string]any{"address": r.Address, "local": r.Local, "provider": r.Provider, "state": string(r.State), "since": r.Since, "evidence": evidenceList(r.Evidence)}
		if r.Reason != "" {
			j["reason"] = r.Reason
		}
		rs = append(rs, j)
	}
	return c.json(http.StatusOK, map[string]any{
		"message": map[string]any{"message_id": m.ID, "from": m.From, "header_id": m.HeaderID, "ileti_id": m.IletiID, "ileti_tip": m.IletiTip,
			"submitted_at": m.SubmittedAt, "size": m.Size, "evidence_id": m.EvidenceID},
		"recipients": rs, "evidence": evidenceList(st.Evidence)})
}

// messageEvidence: GET /api/v1/messages/{ref}/evidence — every evidence
// of the message the principal may read, oldest first.
func (s *Server) messageEvidence(c *call) error {
	st, err := s.Mailbox.MessageStatus(c.ctx, c.p, c.r.PathValue("ref"))
	if err != nil {
		return err
	}
	all := append([]*mailbox.EvidenceEntry(nil), st.Evidence...)
	for _, r := range st.Recipients {
		all = append(all, r.Evidence...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	return c.json(http.StatusOK, map[string]any{"message_id": st.Message.ID, "evidence": evidenceList(all)})
}

// messageOriginal: GET /api/v1/messages/{ref}/original — the signed
// original, byte for byte. As a recipient it is a retrieval (evidence 60).
func (s *Server) messageOriginal(c *call) error {
	m, asSender, err := s.Mailbox.FindMessage(c.ctx, c.p, c.r.PathValue("ref"))
	if err != nil {
		return err
	}
	data, err := s.Mailbox.Original(c.ctx, c.p, m, asSender)
	if err != nil {
		return err
	}
	return c.bytes("message/rfc822", "original-"+strconv.FormatInt(m.ID, 10)+".eml", data)
}

// evidenceBundle: GET /api/v1/evidence/{id}/bundle — what `kep evidence
// bundle` writes; for evidence another provider returned, its bundle as
// received.
func (s *Server) evidenceBundle(c *call) error {
	id := c.r.PathValue("id")
	st, err := s.Mailbox.GetEvidence(c.ctx, c.p, id)
	var b []byte
	switch {
	case err == nil:
		if s.Mailbox.Bundle == nil {
			return errors.New("no bundler wired")
		}
		b, err = s.Mailbox.Bundle(c.ctx, st.Seq)
		if err != nil {
			// Not covered by a checkpoint yet: a few seconds after issue.
			p := problemf(http.StatusServiceUnavailable, "bundle-not-ready", "Bundle not ready yet",
				"Delil henüz imzalı bir kontrol noktasına bağlanmadı; birkaç saniye sonra yeniden deneyin.",
				"The evidence is not yet covered by a signed checkpoint; try again in a few seconds.")
			p.RetryAfter = 5
			c.s.log().Info("api: bundle not ready", "request", c.id, "err", err)
			return p
		}
	default:
		var ref *mailbox.Refusal
		if !errors.As(err, &ref) {
			return err
		}
		if b, err = s.Mailbox.ForeignBundle(c.ctx, c.p, id); err != nil {
			return err
		}
	}
	return c.bytes(evidence.BundleMediaType, id+".kepdelil", b)
}

// verify: POST /api/v1/verify — a bundle, and optionally the original,
// as multipart/form-data parts "bundle" and "original", or the bundle
// alone as the body.
func (s *Server) verify(c *call) error {
	const limit = 200 << 20
	var bundle, original []byte
	mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		c.r.Body = http.MaxBytesReader(c.w, c.r.Body, limit)
		if err := c.r.ParseMultipartForm(32 << 20); err != nil {
			return problemf(http.StatusBadRequest, "bad-form", "Bad form", "Form okunamadı: bundle (ve isteğe bağlı original) dosya alanlarını gönderin.",
				"The form could not be read: send file fields bundle and, optionally, original.")
		}
		read := func(name string) ([]byte, error) {
			f, _, err := c.r.FormFile(name)
			if errors.Is(err, http.ErrMissingFile) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return io.ReadAll(f)
		}
		var err error
		if bundle, err = read("bundle"); err != nil {
			return err
		}
		if original, err = read("original"); err != nil {
			return err
		}
	} else {
		var err error
		if bundle, err = io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, limit)); err != nil {
			return problemf(http.StatusRequestEntityTooLarge, "body-too-large", "Body too large", "Gövde çok büyük.", "The body is larger than "+humanBytes(limit)+".")
		}
	}
	if !bytes.HasPrefix(bundle, []byte("PK\x03\x04")) || len(bundle) < 30 || !bytes.HasPrefix(bundle[30:], []byte(evidence.MemberMimetype+evidence.BundleMediaType)) {
		return problemf(http.StatusBadRequest, "not-a-bundle", "Not an evidence bundle",
			"Gönderilen dosya bir delil paketi değil (kep evidence bundle ya da bu API'nin verdiği ZIP).",
			"The file is not an evidence bundle (the ZIP `kep evidence bundle` and this API give).")
	}
	var d *directory.Directory
	if s.Directory != nil {
		d = s.Directory()
	}
	rep, via := evidence.VerifyTrusted(bundle, s.Anchors, s.ProviderID, d, original)
	out := map[string]any{"valid": rep.Valid, "checks": rep.Checks, "original_checked": original != nil, "verified_with": "provider"}
	if via != nil {
		out["verified_with"], out["issuer_provider"] = "directory", via.ID
	}
	if rep.Evidence != nil {
		out["evidence"] = map[string]any{"id": rep.Evidence.ID, "code": int(rep.Evidence.Code), "event": rep.Evidence.Code.Label(), "event_time": rep.Evidence.EventTime}
	}
	return c.json(http.StatusOK, out)
}

// rehberOrganisations and rehberPersons: the KEP Rehberi as the
// /rehber/v1/ endpoints answer it, with the API token's principal.
func (s *Server) rehberOrganisations(c *call) error { return s.rehber(c, "/organisations") }
func (s *Server) rehberPersons(c *call) error       { return s.rehber(c, "/persons") }

func (s *Server) rehber(c *call, path string) error {
	if s.Rehber == nil {
		return problemf(http.StatusNotFound, "not-found", "No Rehberi here", "Bu sağlayıcıda KEP Rehberi sorgusu yok.", "This provider does not serve KEP Rehberi lookups.")
	}
	p := c.p
	h := s.Rehber.Handler(func(*http.Request) (rehber.Principal, error) { return p, nil }, s.log())
	r := c.r.Clone(c.ctx)
	r.URL.Path = path
	r.URL.RawPath = ""
	h.ServeHTTP(c.w, r)
	return nil
}
