package web

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/store"
)

// messageData is the message page.
type messageData struct {
	View         *view
	Deleted      bool
	KEP          *mailbox.KEPMessage
	BaseURL      string
	Timeline     []step
	Recipients   []recipientState
	Served       []served
	ETebligat    bool
	ReportPDF    string
	ReportHTML   string
	IletiTip     string
	Subject      string
	From, To     string
	Cc           string
	Date         string
	IsEvidence   bool
	ShowTimeline bool
	Moves        []moveOption
	InTrash      bool
}

type moveOption struct{ Role, Label string }

// step is one evidence of the timeline.
type step struct {
	Code      int
	Label     string
	At        time.Time
	Concerns  string
	Reason    string
	BundleURL string
}

type recipientState struct {
	Address string
	State   string
	Since   time.Time
	Reason  string
}

// served is, for eTebligat, when the notice is legally served: the end of
// the fifth day after it reached the address (7201 sayılı Tebligat Kanunu
// m. 7/a; docs/kep-rules.md "Timing rules"), per recipient.
type served struct {
	Recipient string
	Delivered time.Time
	Day       string // the last day, in Europe/Istanbul
}

// message resolves {addr}/{folder}/{uid} to a message the principal may
// read.
func (s *Server) message(w http.ResponseWriter, r *http.Request, c *reqCtx) (*store.Account, *mailbox.Folder, *mailbox.Message, bool) {
	a, f, ok := s.folder(w, r, c)
	if !ok {
		return nil, nil, nil, false
	}
	uid, err := strconv.ParseUint(r.PathValue("uid"), 10, 32)
	if err != nil {
		s.fail(w, r, c, http.StatusNotFound, c.t("err.notfound"))
		return nil, nil, nil, false
	}
	m, err := mailbox.GetMessage(r.Context(), s.Mailbox.DB.Q(), f.ID, uint32(uid))
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, c, http.StatusNotFound, c.t("err.notfound"))
		return nil, nil, nil, false
	}
	if err != nil {
		s.internal(w, r, c, err)
		return nil, nil, nil, false
	}
	return a, f, m, true
}

// original returns the bytes the page shows: for a KEP message the signed
// original (not the provider's envelope around it), after recording the
// retrieval (evidence 60, reason "web") through the same path as IMAP; for
// everything else the stored or rendered message.
func (s *Server) original(ctx context.Context, c *reqCtx, m *mailbox.Message) ([]byte, *mailbox.KEPMessage, error) {
	var msg *mailbox.KEPMessage
	if m.MessageID != 0 {
		var err error
		if msg, err = mailbox.GetKEPMessage(ctx, s.Mailbox.DB.Q(), m.MessageID); err != nil {
			return nil, nil, err
		}
	}
	if m.Kind == mailbox.KindKEP && msg != nil {
		if err := s.Mailbox.Open(ctx, c.p, m, mailbox.WebOpen); err != nil {
			return nil, msg, err
		}
		b, err := s.Mailbox.Blobs.ReadVerified(msg.Digest)
		return b, msg, err
	}
	b, err := s.Mailbox.Content(ctx, m)
	return b, msg, err
}

func (s *Server) messagePage(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	ctx := r.Context()
	a, f, m, ok := s.message(w, r, c)
	if !ok {
		return
	}
	raw, msg, err := s.original(ctx, c, m)
	d := &messageData{KEP: msg, BaseURL: messageURL(a.Address, f.Role(), m.UID), IsEvidence: m.Kind == mailbox.KindEvidence}
	switch {
	case errors.Is(err, blob.ErrNotFound):
		d.Deleted = true
		d.View = &view{}
	case err != nil:
		s.refused(w, r, c, err)
		return
	default:
		d.View = parseOriginal(raw)
	}
	h := d.View.Header
	if h != nil {
		d.Subject, d.From, d.To, d.Cc, d.Date = decodeWords(h.Get("Subject")), decodeWords(h.Get("From")), decodeWords(h.Get("To")), decodeWords(h.Get("Cc")), h.Get("Date")
		if t, err := mail.ParseDate(d.Date); err == nil {
			d.Date = t.In(s.loc()).Format("02.01.2006 15:04:05") // as the sender's client wrote it, in Turkish time
		}
	}
	if msg != nil {
		d.IletiTip = msg.IletiTip
		if d.From == "" {
			d.From = msg.From
		}
		if err := s.timeline(ctx, c, d, msg); err != nil {
			s.internal(w, r, c, err)
			return
		}
		id := url.PathEscape(strings.TrimSuffix(strings.TrimPrefix(msg.HeaderID, "<"), ">"))
		d.ReportPDF, d.ReportHTML = "/report/"+id+".pdf", "/report/"+id+".html"
	}
	if d.Subject == "" {
		d.Subject = "—"
	}
	for _, role := range moveTargets {
		if role != f.Role() {
			d.Moves = append(d.Moves, moveOption{Role: string(role), Label: c.t("folder." + string(role))})
		}
	}
	d.InTrash = f.Role() == mailbox.RoleTrash
	n, err := s.nav(ctx, c, s.refreshed(ctx, a), f.Role())
	if err != nil {
		s.internal(w, r, c, err)
		return
	}
	s.render(w, r, c, http.StatusOK, "message", &page{Title: d.Subject, Nav: n, Data: d})
}

// refreshed reloads the account (its usage may have changed).
func (s *Server) refreshed(ctx context.Context, a *store.Account) *store.Account {
	if b, err := store.GetAccount(ctx, s.Mailbox.DB.Q(), a.ID); err == nil {
		return b
	}
	return a
}

// timeline fills the evidence the principal may read about the message
// (mailbox.MessageStatus: the sender's side sees every recipient, a
// recipient only its own), oldest first, each linked to its bundle; each
// recipient's state; for eTebligat, the legal service date.
func (s *Server) timeline(ctx context.Context, c *reqCtx, d *messageData, msg *mailbox.KEPMessage) error {
	d.ShowTimeline = true
	st, err := s.Mailbox.MessageStatus(ctx, c.p, strconv.FormatInt(msg.ID, 10))
	var rf *mailbox.Refusal
	if errors.As(err, &rf) {
		return nil
	}
	if err != nil {
		return err
	}
	es := append([]*mailbox.EvidenceEntry{}, st.Evidence...)
	for _, rs := range st.Recipients {
		es = append(es, rs.Evidence...)
		line := recipientState{Address: rs.Address, State: c.t("state." + string(rs.State)), Reason: rs.Reason}
		if !rs.Since.IsZero() {
			line.Since = rs.Since
		}
		d.Recipients = append(d.Recipients, line)
	}
	slices.SortStableFunc(es, func(x, y *mailbox.EvidenceEntry) int { return x.EventTime.Compare(y.EventTime) })
	for _, e := range es {
		label := e.Code.LabelTR()
		if c.lang == "en" {
			label = e.Code.Label()
		}
		d.Timeline = append(d.Timeline, step{Code: int(e.Code), Label: label, At: e.EventTime, Concerns: e.Concerns, Reason: e.Reason,
			BundleURL: d.BaseURL + "/delil/" + strconv.FormatInt(e.Seq, 10)})
		if e.Code == evidence.Delivered && msg.IletiTip == evidence.IletiTipETebligat {
			end, _ := s.Mailbox.Policy.Deadline(msg.IletiTip, e.EventTime)
			d.Served = append(d.Served, served{Recipient: e.Concerns, Delivered: e.EventTime, Day: end.Add(-time.Nanosecond).In(s.loc()).Format("02.01.2006") + " 24:00"})
		}
	}
	d.ETebligat = msg.IletiTip == evidence.IletiTipETebligat
	return nil
}

// timelineEntry finds evidence seq in the message's timeline as the
// principal sees it.
func (s *Server) timelineEntry(ctx context.Context, p *account.Principal, messageID, seq int64) (*mailbox.EvidenceEntry, error) {
	st, err := s.Mailbox.MessageStatus(ctx, p, strconv.FormatInt(messageID, 10))
	if err != nil {
		return nil, err
	}
	es := st.Evidence
	for _, rs := range st.Recipients {
		es = append(es, rs.Evidence...)
	}
	for _, e := range es {
		if e.Seq == seq {
			return e, nil
		}
	}
	return nil, nil
}

// bundle downloads the bundle of one evidence of the message's timeline.
func (s *Server) bundle(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	ctx := r.Context()
	_, _, m, ok := s.message(w, r, c)
	if !ok {
		return
	}
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || m.MessageID == 0 {
		s.fail(w, r, c, http.StatusNotFound, c.t("err.notfound"))
		return
	}
	// Only evidence of this message's timeline, as the page lists it.
	ent, err := s.timelineEntry(ctx, c.p, m.MessageID, seq)
	if err != nil {
		s.refused(w, r, c, err)
		return
	}
	if ent == nil {
		s.fail(w, r, c, http.StatusNotFound, c.t("err.notfound"))
		return
	}
	b, err := s.Mailbox.EvidenceBundle(ctx, c.p, seq)
	if errors.Is(err, evidence.ErrNotYetCheckpointed) {
		w.Header().Set("Retry-After", "5")
		s.fail(w, r, c, http.StatusServiceUnavailable, c.t("err.notcovered"))
		return
	}
	if err != nil {
		s.refused(w, r, c, err)
		return
	}
	w.Header().Set("Content-Type", evidence.BundleMediaType)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="delil-%s.zip"`, ent.ID))
	w.Write(b)
}

// attachment downloads one part of the message, never rendered by the
// browser. Its bytes are the message's content: for a KEP message the
// opening is the retrieval, as on the message page.
func (s *Server) attachment(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	_, _, m, ok := s.message(w, r, c)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		s.fail(w, r, c, http.StatusNotFound, c.t("err.notfound"))
		return
	}
	raw, _, err := s.original(r.Context(), c, m)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			s.fail(w, r, c, http.StatusGone, c.t("msg.deleted"))
			return
		}
		s.refused(w, r, c, err)
		return
	}
	v := parseOriginal(raw)
	if n < 0 || n >= len(v.Attachments) {
		s.fail(w, r, c, http.StatusNotFound, c.t("err.notfound"))
		return
	}
	at := v.Attachments[n]
	w.Header().Set("Content-Type", "application/octet-stream")
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": at.Name})
	if disp == "" {
		disp = "attachment"
	}
	w.Header().Set("Content-Disposition", disp)
	w.Write(at.data)
}
