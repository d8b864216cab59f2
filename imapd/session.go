package imapd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/store"
)

// session is one client connection.
type session struct {
	srv    *Server
	conn   *imapserver.Conn
	remote string // the client's IP address, for throttling and logs
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards what follows: imapserver calls the session from the
	// connection's goroutine, and during IDLE from another one that may
	// still be finishing when the next command (or Close) arrives.
	mu        sync.Mutex
	p         *account.Principal
	sel       *selected
	searchRes []uint32 // UIDs saved by SEARCH RETURN (SAVE) (RFC 5182)
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

// selected is the session's view of its selected folder: the UIDs the
// client knows, in order (message sequence number = index + 1), and what
// it has been told about them.
type selected struct {
	t        *target
	folder   *mailbox.Folder
	readOnly bool
	msgs     []viewMsg
	modseq   int64           // the folder's modseq when last compared
	gone     map[uint32]bool // expunged by others, not yet announced
	updates  <-chan int64    // mailbox.Hub: folder ids of the account that changed
	stop     func()
}

type viewMsg struct {
	uid    uint32
	modseq int64 // of the flags the client was last sent (or loaded)
}

// seqOf returns the message sequence number of uid, or 0.
func (v *selected) seqOf(uid uint32) uint32 {
	i := sort.Search(len(v.msgs), func(i int) bool { return v.msgs[i].uid >= uid })
	if i < len(v.msgs) && v.msgs[i].uid == uid {
		return uint32(i + 1)
	}
	return 0
}

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	remote := ""
	if a := c.NetConn().RemoteAddr(); a != nil {
		remote = a.String()
		if h, _, err := net.SplitHostPort(remote); err == nil {
			remote = h
		}
	}
	s.opts.Metrics.session()
	return &session{srv: s, conn: c, remote: remote, ctx: ctx, cancel: cancel}, nil, nil
}

func (s *Server) now() time.Time {
	if s.mb.Now != nil {
		return s.mb.Now().UTC()
	}
	return time.Now().UTC()
}

// Close ends the session.
func (s *session) Close() error {
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unselect()
	return nil
}

// Login checks a user name (a KEP address, or an operator's TCKN) and a
// password or app password (RFC 9051 §6.2.3; AUTHENTICATE PLAIN, RFC 4616,
// arrives here too). imapserver refuses both before TLS. Failures never
// say whether the user exists; repeated failures are throttled by
// account.Service, and a throttled attempt is refused whatever the password
// (NO [UNAVAILABLE], RFC 5530 §3).
func (s *session) Login(username, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	log := s.srv.log.With("remote", s.remote)
	p, err := s.srv.accounts.Authenticate(s.ctx, username, password, s.remote)
	switch {
	case err == nil:
	case errors.Is(err, account.ErrThrottled):
		log.Warn("imap login throttled")
		s.srv.opts.Metrics.authFailed()
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
			Text: fmt.Sprintf("Too many failed logins for this user from your address: try again in %s", account.RetryAfter(err))}
	case errors.Is(err, account.ErrBadCredentials):
		log.Info("imap login failed")
		s.srv.opts.Metrics.authFailed()
		return imapserver.ErrAuthFailed
	case errors.Is(err, account.ErrAccountNotActive):
		// Only someone who knows the password learns this.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeContactAdmin,
			Text: "This KEP account is not active (suspended or closed): contact your provider"}
	default:
		log.Error("imap login", "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
			Text: "Authentication is temporarily unavailable"}
	}
	if p.Account != nil {
		if err := mailbox.EnsureFolders(s.ctx, s.srv.mb.DB.Q(), p.Account.ID, s.srv.now()); err != nil {
			log.Error("imap login: folders", "err", err)
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Mailbox temporarily unavailable"}
		}
	}
	s.p = p
	// No user name in the log: a TCKN is personal data (docs/kep-rules.md,
	// "Standards": personal data minimised in logs).
	if p.Operator != nil {
		log.Info("imap login", "operator", p.Operator.ID, "app_password", p.AppPassword != "")
	} else {
		log.Info("imap login", "account", p.Account.ID, "app_password", p.AppPassword != "")
	}
	return nil
}

// AppendLimit is the APPENDLIMIT (RFC 7889) the library advertises and
// enforces on the APPEND literal before reading it.
func (s *session) AppendLimit() uint32 { return uint32(s.srv.opts.MaxMessageBytes) }

// Select implements SELECT and EXAMINE (RFC 9051 §6.3.2, §6.3.3). UIDVALIDITY
// and UIDNEXT are the folder's, from the store.
func (s *session) Select(name string, o *imap.SelectOptions) (*imap.SelectData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unselect()
	t, err := s.resolve(name)
	if err != nil {
		return nil, err
	}
	if t.placeholder() {
		s.sel = &selected{t: t, folder: &mailbox.Folder{Name: mailbox.Inbox, UIDValidity: 1, UIDNext: 1}, readOnly: true,
			gone: map[uint32]bool{}, stop: func() {}}
		return &imap.SelectData{Flags: systemFlags, PermanentFlags: []imap.Flag{}, UIDNext: 1, UIDValidity: 1}, nil
	}
	f, err := s.srv.mb.OpenFolder(s.ctx, s.p, t.acct, t.folder)
	if err != nil {
		return nil, imapErr(err)
	}
	updates, stop := s.srv.mb.Notifications().Subscribe(t.acct.ID)
	ms, err := s.srv.mb.Messages(s.ctx, s.p, f)
	if err != nil {
		stop()
		return nil, imapErr(err)
	}
	sel := &selected{t: t, folder: f, readOnly: o.ReadOnly, modseq: f.ModSeq, gone: map[uint32]bool{}, updates: updates, stop: stop}
	var firstUnseen uint32
	for i, m := range ms {
		sel.msgs = append(sel.msgs, viewMsg{uid: m.UID, modseq: m.ModSeq})
		if firstUnseen == 0 && !hasFlag(m.Flags, imap.FlagSeen) {
			firstUnseen = uint32(i + 1)
		}
	}
	s.sel = sel
	s.searchRes = nil
	next := f.UIDNext
	if n := len(ms); n > 0 && ms[n-1].UID >= next { // appended since the folder was read
		next = ms[n-1].UID + 1
	}
	data := &imap.SelectData{
		Flags:             systemFlags,
		NumMessages:       uint32(len(ms)),
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           imap.UID(next),
		UIDValidity:       f.UIDValidity,
	}
	if s.conn.EnabledCaps().Has(imap.CapIMAP4rev2) {
		// IMAP4rev2 clients get the mailbox's name as the server spells it
		// (RFC 9051 §6.3.2).
		attrs := []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}
		if use := specialUse(t.folder); use != "" {
			attrs = append(attrs, use)
		}
		data.List = &imap.ListData{Attrs: attrs, Delim: delim, Mailbox: t.name}
	}
	if !o.ReadOnly {
		data.PermanentFlags = append(append([]imap.Flag{}, systemFlags...), imap.FlagWildcard)
	} else {
		data.PermanentFlags = []imap.Flag{}
	}
	return data, nil
}

// Unselect implements UNSELECT and the end of CLOSE (RFC 9051 §6.4.1-2).
func (s *session) Unselect() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unselect()
	return nil
}

func (s *session) unselect() {
	if s.sel != nil {
		s.sel.stop()
		s.sel = nil
	}
	s.searchRes = nil
}

// Status implements STATUS (RFC 9051 §6.3.11; SIZE, RFC 8438).
func (s *session) Status(name string, o *imap.StatusOptions) (*imap.StatusData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.resolve(name)
	if err != nil {
		return nil, err
	}
	return s.status(t, o)
}

func (s *session) status(t *target, o *imap.StatusOptions) (*imap.StatusData, error) {
	q := s.srv.mb.DB.Q()
	u32 := func(n int) *uint32 { v := uint32(n); return &v }
	if t.placeholder() {
		data := &imap.StatusData{Mailbox: t.name, UIDNext: 1, UIDValidity: 1}
		var zero int64
		if o.NumMessages {
			data.NumMessages = u32(0)
		}
		if o.NumUnseen {
			data.NumUnseen = u32(0)
		}
		if o.NumDeleted {
			data.NumDeleted = u32(0)
		}
		if o.Size {
			data.Size = &zero
		}
		if o.DeletedStorage {
			data.DeletedStorage = &zero
		}
		if o.AppendLimit {
			data.AppendLimit = new(uint32)
		}
		if o.NumRecent {
			data.NumRecent = u32(0)
		}
		return data, nil
	}
	f, err := s.srv.mb.OpenFolder(s.ctx, s.p, t.acct, t.folder)
	if err != nil {
		return nil, imapErr(err)
	}
	data := &imap.StatusData{Mailbox: t.name, UIDNext: imap.UID(f.UIDNext), UIDValidity: f.UIDValidity}
	if o.NumMessages || o.NumUnseen {
		total, unseen, _, err := mailbox.Counts(s.ctx, q, f.ID)
		if err != nil {
			return nil, err
		}
		data.NumMessages, data.NumUnseen = u32(total), u32(unseen)
	}
	if o.NumDeleted || o.Size || o.DeletedStorage {
		ms, err := mailbox.ListMessages(s.ctx, q, f.ID)
		if err != nil {
			return nil, err
		}
		var deleted int
		var size, deletedSize int64
		for _, m := range ms {
			if o.Size || o.DeletedStorage {
				// Counting an evidence item needs its size, hence its bytes.
				if err := s.srv.mb.Materialize(s.ctx, m); err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, err
				}
			}
			size += max(m.Size, 0)
			if hasFlag(m.Flags, imap.FlagDeleted) {
				deleted++
				deletedSize += max(m.Size, 0)
			}
		}
		data.NumDeleted, data.Size, data.DeletedStorage = u32(deleted), &size, &deletedSize
	}
	if o.AppendLimit {
		data.AppendLimit = new(uint32)
		if r := f.Role(); r == mailbox.RoleDrafts || r == mailbox.RoleSent || r == mailbox.RoleUser {
			*data.AppendLimit = uint32(s.srv.opts.MaxMessageBytes)
		}
	}
	if o.NumRecent {
		data.NumRecent = u32(0) // \Recent (RFC 3501 §2.3.2) is not kept: RFC 9051 removed it
	}
	return data, nil
}

// Poll sends the changes other sessions and the mailbox made to the
// selected folder since the last command (RFC 9051 §7.5.1 EXPUNGE, §7.4.1
// EXISTS, §7.5.2 FETCH FLAGS); EXPUNGE only where the command allows it
// (not during FETCH, STORE, SEARCH: RFC 9051 §7.5.1).
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.poll(w, allowExpunge)
}

func (s *session) poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	sel := s.sel
	if sel == nil || sel.t.placeholder() {
		return nil
	}
	q := s.srv.mb.DB.Q()
	f, err := mailbox.GetFolderByID(s.ctx, q, sel.folder.ID)
	if err != nil {
		return err
	}
	var changed []uint32
	added := false
	if f.ModSeq != sel.modseq {
		rows, err := mailbox.ListMessages(s.ctx, q, f.ID)
		if err != nil {
			return err
		}
		cur := make(map[uint32]*mailbox.Message, len(rows))
		for _, m := range rows {
			cur[m.UID] = m
		}
		for i := range sel.msgs {
			v := &sel.msgs[i]
			m := cur[v.uid]
			switch {
			case m == nil:
				sel.gone[v.uid] = true
			case m.ModSeq != v.modseq && !sel.gone[v.uid]:
				v.modseq = m.ModSeq
				changed = append(changed, v.uid)
			}
		}
		var last uint32
		if n := len(sel.msgs); n > 0 {
			last = sel.msgs[n-1].uid
		}
		for _, m := range rows { // UIDs only grow (RFC 9051 §2.3.1.1)
			if m.UID > last {
				sel.msgs = append(sel.msgs, viewMsg{uid: m.UID, modseq: m.ModSeq})
				added = true
			}
		}
		sel.modseq, sel.folder = f.ModSeq, f
		defer func() {
			for _, uid := range changed {
				if seq := sel.seqOf(uid); seq != 0 {
					w.WriteMessageFlags(seq, imap.UID(uid), toFlags(cur[uid].Flags))
				}
			}
		}()
	}
	if allowExpunge && len(sel.gone) > 0 {
		// From the highest sequence number down, so that each number is
		// still valid when the client applies it.
		for i := len(sel.msgs) - 1; i >= 0; i-- {
			if sel.gone[sel.msgs[i].uid] {
				if err := w.WriteExpunge(uint32(i + 1)); err != nil {
					return err
				}
				sel.msgs = append(sel.msgs[:i], sel.msgs[i+1:]...)
			}
		}
		clear(sel.gone)
	}
	if added {
		if err := w.WriteNumMessages(uint32(len(sel.msgs))); err != nil {
			return err
		}
	}
	return nil
}

// Idle implements IDLE (RFC 2177; RFC 9051 §6.3.13): it waits for the
// mailbox hub to report a change of the selected folder and sends it. It
// also looks every idleRecheck, for changes made by another node.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.mu.Lock()
	var updates <-chan int64
	var folderID int64
	if s.sel != nil {
		updates, folderID = s.sel.updates, s.sel.folder.ID
	}
	err := s.poll(w, true)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	t := time.NewTicker(idleRecheck)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-s.ctx.Done():
			return nil
		case id := <-updates:
			if id != folderID {
				continue
			}
		case <-t.C:
			if updates == nil {
				continue
			}
		}
		s.mu.Lock()
		err := s.poll(w, true)
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// idleRecheck is how often IDLE re-reads the folder without a notification
// (the hub is per process; another node's changes arrive this way).
const idleRecheck = 30 * time.Second

var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

func hasFlag(flags []string, f imap.Flag) bool {
	for _, x := range flags {
		if x == string(f) {
			return true
		}
	}
	return false
}

func toFlags(fs []string) []imap.Flag {
	out := make([]imap.Flag, 0, len(fs))
	for _, f := range fs {
		out = append(out, imap.Flag(f))
	}
	return out
}
