package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/store"
)

// The folders the web shows, by role, and how their URLs name them.
var folderRoles = []mailbox.Role{mailbox.RoleInbox, mailbox.RoleSent, mailbox.RoleDelil, mailbox.RoleDrafts, mailbox.RoleArchive, mailbox.RoleTrash}

func folderURL(addr string, role mailbox.Role) string {
	return pathMail + url.PathEscape(addr) + "/" + string(role)
}

func messageURL(addr string, role mailbox.Role, uid uint32) string {
	return folderURL(addr, role) + "/" + strconv.FormatUint(uint64(uid), 10)
}

// nav is the mailbox frame: the accounts the principal sees (the operator's
// switcher), the current account's folders, its quota.
type nav struct {
	Accounts   []navAccount
	Addr       string
	Folders    []navFolder
	Quota      quota
	CanSend    bool
	ComposeURL string
}

type navAccount struct {
	Address, Name, URL string
	Current            bool
}

type navFolder struct {
	Label, URL string
	Unseen     int
	Current    bool
}

// quota is the account's usage, with the warnings of docs/kep-rules.md
// ("Warn at 80/90/100 %").
type quota struct {
	Used, Limit string
	Percent     int
	Level       int // 0, 80, 90 or 100
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func quotaOf(a *store.Account) quota {
	q := quota{Used: humanBytes(a.UsedBytes), Limit: humanBytes(a.QuotaBytes)}
	if a.QuotaBytes > 0 {
		q.Percent = int(a.UsedBytes * 100 / a.QuotaBytes)
	}
	for _, l := range []int{100, 90, 80} {
		if q.Percent >= l {
			q.Level = l
			break
		}
	}
	return q
}

// account resolves the {addr} of a URL to an account the principal may
// read; any other is not found.
func (s *Server) account(w http.ResponseWriter, r *http.Request, c *reqCtx) (*store.Account, bool) {
	a, err := s.Mailbox.Account(r.Context(), c.p, r.PathValue("addr"))
	if err != nil {
		s.refused(w, r, c, err)
		return nil, false
	}
	return a, true
}

// folder resolves {addr} and {folder} (a role name).
func (s *Server) folder(w http.ResponseWriter, r *http.Request, c *reqCtx) (*store.Account, *mailbox.Folder, bool) {
	a, ok := s.account(w, r, c)
	if !ok {
		return nil, nil, false
	}
	role := mailbox.Role(r.PathValue("folder"))
	if !slices.Contains(folderRoles, role) {
		s.fail(w, r, c, http.StatusNotFound, c.t("err.notfound"))
		return nil, nil, false
	}
	f, err := s.Mailbox.FolderByRole(r.Context(), c.p, a, role)
	if err != nil {
		s.refused(w, r, c, err)
		return nil, nil, false
	}
	return a, f, true
}

func (s *Server) nav(ctx context.Context, c *reqCtx, a *store.Account, current mailbox.Role) (*nav, error) {
	accts, err := s.Mailbox.Visible(ctx, c.p)
	if err != nil {
		return nil, err
	}
	n := &nav{Addr: a.Address, Quota: quotaOf(a), CanSend: c.p.Can(a.ID, account.GrantSend), ComposeURL: pathCompose + url.PathEscape(a.Address)}
	for _, v := range accts {
		n.Accounts = append(n.Accounts, navAccount{Address: v.Address, Name: v.OwnerName, URL: folderURL(v.Address, mailbox.RoleInbox), Current: v.ID == a.ID})
	}
	// Accounts the principal sends for without reading: for compose only.
	sendOnly, err := s.Mailbox.SendOnly(ctx, c.p)
	if err != nil {
		return nil, err
	}
	for _, v := range sendOnly {
		n.Accounts = append(n.Accounts, navAccount{Address: v.Address, Name: v.OwnerName, URL: pathCompose + url.PathEscape(v.Address), Current: v.ID == a.ID})
	}
	if !c.p.Can(a.ID, account.GrantRead) {
		return n, nil // no folders to show
	}
	fs, err := s.Mailbox.Folders(ctx, c.p, a)
	if err != nil {
		return nil, err
	}
	for _, role := range folderRoles {
		nf := navFolder{Label: c.t("folder." + string(role)), URL: folderURL(a.Address, role), Current: role == current}
		for _, f := range fs {
			if f.Role() == role {
				_, nf.Unseen, _, _ = mailbox.Counts(ctx, s.Mailbox.DB.Q(), f.ID)
			}
		}
		n.Folders = append(n.Folders, nf)
	}
	return n, nil
}

// summary is one line of a folder list: header fields only, never a
// snippet of the body (reading a list is not a retrieval).
type summary struct {
	URL, From, To, Subject string
	Date                   time.Time
	Unread                 bool
}

type folderData struct {
	Role          mailbox.Role
	Query         string
	List          []summary
	Page, Pages   int
	PrevURL       string
	NextURL       string
	ScanLimitHits bool
}

// maxSearchScan bounds how many messages one search reads the headers of.
const maxSearchScan = 5000

func (s *Server) folderPage(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	ctx := r.Context()
	a, f, ok := s.folder(w, r, c)
	if !ok {
		return
	}
	msgs, err := s.Mailbox.Messages(ctx, c.p, f)
	if err != nil {
		s.refused(w, r, c, err)
		return
	}
	slices.Reverse(msgs) // newest first
	d := &folderData{Role: f.Role(), Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	var all []summary
	if d.Query != "" {
		q := strings.ToLower(d.Query)
		for i, m := range msgs {
			if i >= maxSearchScan {
				d.ScanLimitHits = true
				break
			}
			sm := s.summarize(ctx, a, f, m)
			if strings.Contains(strings.ToLower(sm.Subject), q) || strings.Contains(strings.ToLower(sm.From), q) {
				all = append(all, sm)
			}
		}
	}
	total := len(msgs)
	if d.Query != "" {
		total = len(all)
	}
	size := s.pageSize()
	d.Pages = max(1, (total+size-1)/size)
	d.Page, _ = strconv.Atoi(r.URL.Query().Get("sayfa"))
	d.Page = min(max(d.Page, 1), d.Pages)
	lo, hi := (d.Page-1)*size, min(d.Page*size, total)
	if d.Query != "" {
		d.List = all[lo:hi]
	} else {
		for _, m := range msgs[lo:hi] {
			d.List = append(d.List, s.summarize(ctx, a, f, m))
		}
	}
	link := func(p int) string {
		v := url.Values{"sayfa": {strconv.Itoa(p)}}
		if d.Query != "" {
			v.Set("q", d.Query)
		}
		return folderURL(a.Address, f.Role()) + "?" + v.Encode()
	}
	if d.Page > 1 {
		d.PrevURL = link(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.NextURL = link(d.Page + 1)
	}
	n, err := s.nav(ctx, c, a, f.Role())
	if err != nil {
		s.internal(w, r, c, err)
		return
	}
	s.render(w, r, c, http.StatusOK, "folder", &page{Title: c.t("folder." + string(f.Role())), Nav: n, Data: d})
}

func (s *Server) summarize(ctx context.Context, a *store.Account, f *mailbox.Folder, m *mailbox.Message) summary {
	sm := summary{URL: messageURL(a.Address, f.Role(), m.UID), Date: m.InternalDate, Unread: !slices.Contains(m.Flags, `\Seen`)}
	h, err := s.header(ctx, m)
	if err != nil {
		sm.Subject = "—"
		return sm
	}
	sm.From, sm.To, sm.Subject = decodeWords(h.Get("From")), decodeWords(h.Get("To")), decodeWords(h.Get("Subject"))
	return sm
}

func decodeWords(s string) string {
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// header reads a message's header without its body: for a KEP message the
// signed original's (the envelope the provider wraps it in says who sent
// it, but the subject is the sender's); for anything else the stored or
// rendered message's.
func (s *Server) header(ctx context.Context, m *mailbox.Message) (mail.Header, error) {
	var r io.Reader
	if m.Kind == mailbox.KindKEP && m.MessageID != 0 {
		msg, err := mailbox.GetKEPMessage(ctx, s.Mailbox.DB.Q(), m.MessageID)
		if err != nil {
			return nil, err
		}
		f, err := s.Mailbox.Blobs.Open(msg.Digest)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	} else {
		rc, size, err := s.Mailbox.OpenContent(ctx, m)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		r = io.NewSectionReader(rc, 0, size)
	}
	mm, err := mail.ReadMessage(io.LimitReader(r, 256<<10))
	if err != nil {
		return nil, errors.Join(errors.New("read header"), err)
	}
	return mm.Header, nil
}
