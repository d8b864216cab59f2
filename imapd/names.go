package imapd

import (
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/store"
)

// delim is the hierarchy delimiter (RFC 9051 §5.1.1).
const delim = '/'

// errNoMailbox answers a name that does not exist or that the principal may
// not see; the two are indistinguishable on purpose.
var errNoMailbox = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}

// target is a mailbox name resolved to an account's folder. An operator's
// placeholder INBOX has no account (acct nil): an empty, read-only folder,
// so that clients that SELECT INBOX at login work, and no company's mail is
// where an operator's client reads by accident.
type target struct {
	acct   *store.Account
	folder string // the mailbox package's folder name
	name   string // the name the client sees
}

func (t *target) placeholder() bool { return t.acct == nil }

// visible is an account the principal sees, with the prefix of its folders'
// names ("" for the principal's own account, "address/" for an operator).
type visible struct {
	acct   *store.Account
	prefix string
}

// isOperator reports whether the session's principal is an operator.
func (s *session) isOperator() bool { return s.p != nil && s.p.Operator != nil }

// accounts lists the accounts the principal sees (mailbox.Service.Visible).
func (s *session) accounts() ([]visible, error) {
	accts, err := s.srv.mb.Visible(s.ctx, s.p)
	if err != nil {
		return nil, err
	}
	var out []visible
	for _, a := range accts {
		v := visible{acct: a}
		if s.isOperator() {
			v.prefix = a.Address + string(delim)
		}
		out = append(out, v)
	}
	return out, nil
}

// resolve maps a client's mailbox name to an account and folder the
// principal may read. INBOX is case-insensitive (RFC 9051 §5.1); so is the
// address part of an operator's names.
func (s *session) resolve(name string) (*target, error) {
	t, err := s.parseName(name)
	if err != nil || t.placeholder() {
		return t, err
	}
	if _, err := s.srv.mb.OpenFolder(s.ctx, s.p, t.acct, t.folder); err != nil {
		return nil, imapErr(err)
	}
	return t, nil
}

// parseName maps a name to its account and folder name without checking
// that the folder exists (CREATE names one that does not).
func (s *session) parseName(name string) (*target, error) {
	if s.p == nil {
		return nil, errNoMailbox
	}
	if !s.isOperator() {
		folder := name
		if strings.EqualFold(folder, mailbox.Inbox) {
			folder = mailbox.Inbox
		}
		a, err := store.GetAccount(s.ctx, s.srv.mb.DB.Q(), s.p.Account.ID)
		if err != nil {
			return nil, err
		}
		return &target{acct: a, folder: folder, name: folder}, nil
	}
	if strings.EqualFold(name, mailbox.Inbox) {
		return &target{folder: mailbox.Inbox, name: mailbox.Inbox}, nil
	}
	addr, folder, ok := strings.Cut(name, string(delim))
	if !ok || addr == "" {
		return nil, errNoMailbox
	}
	if strings.EqualFold(folder, mailbox.Inbox) {
		folder = mailbox.Inbox
	}
	a, err := s.srv.mb.Account(s.ctx, s.p, addr)
	if err != nil {
		return nil, imapErr(err)
	}
	return &target{acct: a, folder: folder, name: a.Address + string(delim) + folder}, nil
}

// specialUse gives the RFC 6154 attribute of a folder.
func specialUse(folder string) imap.MailboxAttr {
	switch mailbox.RoleOf(folder) {
	case mailbox.RoleSent:
		return imap.MailboxAttrSent
	case mailbox.RoleDrafts:
		return imap.MailboxAttrDrafts
	case mailbox.RoleTrash:
		return imap.MailboxAttrTrash
	case mailbox.RoleArchive:
		return imap.MailboxAttrArchive
	}
	return ""
}

// imapErr translates the mailbox's refusals into IMAP responses (RFC 5530
// response codes); other errors pass unchanged.
func imapErr(err error) error {
	var r *mailbox.Refusal
	if !errors.As(err, &r) {
		return err
	}
	code := imap.ResponseCodeCannot
	switch r.Kind {
	case mailbox.NoPermission:
		code = imap.ResponseCodeNoPerm
	case mailbox.OverQuota:
		code = imap.ResponseCodeOverQuota
	case mailbox.NotFound:
		return errNoMailbox
	case mailbox.OverLimit:
		code = imap.ResponseCodeLimit
	case mailbox.AlreadyExists:
		code = imap.ResponseCodeAlreadyExists
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: r.Reason}
}

// Namespace implements NAMESPACE (RFC 2342 §5; RFC 9051 §6.3.10): see the
// package comment.
func (s *session) Namespace() (*imap.NamespaceData, error) {
	ns := []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}}
	if s.isOperator() {
		return &imap.NamespaceData{Shared: ns}, nil
	}
	return &imap.NamespaceData{Personal: ns}, nil
}

// List implements LIST and LSUB (RFC 9051 §6.3.9, RFC 5258 LIST-EXTENDED,
// RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE). Every folder is always
// subscribed.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, o *imap.ListOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(patterns) == 0 {
		// LIST "" "": the hierarchy delimiter and root (RFC 9051 §6.3.9).
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	accts, err := s.accounts()
	if err != nil {
		return err
	}
	var match func(string) bool
	match = func(name string) bool {
		for _, p := range patterns {
			if ref == "" && strings.EqualFold(p, mailbox.Inbox) {
				p = mailbox.Inbox // INBOX in any case (RFC 9051 §5.1)
			}
			if imapserver.MatchList(name, delim, ref, p) {
				return true
			}
		}
		return false
	}
	if s.isOperator() && match(mailbox.Inbox) && !o.SelectSpecialUse {
		attrs := []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}
		if o.SelectSubscribed || o.ReturnSubscribed {
			attrs = append(attrs, imap.MailboxAttrSubscribed)
		}
		data := &imap.ListData{Attrs: attrs, Delim: delim, Mailbox: mailbox.Inbox}
		if o.ReturnStatus != nil {
			st, err := s.status(&target{folder: mailbox.Inbox, name: mailbox.Inbox}, o.ReturnStatus)
			if err != nil {
				return err
			}
			data.Status = st
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	for _, v := range accts {
		if v.prefix != "" {
			parent := strings.TrimSuffix(v.prefix, string(delim))
			if match(parent) && !o.SelectSubscribed && !o.SelectSpecialUse {
				attrs := []imap.MailboxAttr{imap.MailboxAttrNoSelect, imap.MailboxAttrHasChildren}
				if err := w.WriteList(&imap.ListData{Attrs: attrs, Delim: delim, Mailbox: parent}); err != nil {
					return err
				}
			}
		}
		folders, err := s.srv.mb.Folders(s.ctx, s.p, v.acct)
		if err != nil {
			return err
		}
		for _, f := range folders {
			name := v.prefix + f.Name
			if !match(name) {
				continue
			}
			use := specialUse(f.Name)
			if o.SelectSpecialUse && use == "" {
				continue
			}
			attrs := []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}
			if use != "" {
				attrs = append(attrs, use)
			}
			if o.SelectSubscribed || o.ReturnSubscribed {
				attrs = append(attrs, imap.MailboxAttrSubscribed)
			}
			data := &imap.ListData{Attrs: attrs, Delim: delim, Mailbox: name}
			if o.ReturnStatus != nil {
				st, err := s.status(&target{acct: v.acct, folder: f.Name, name: name}, o.ReturnStatus)
				if err != nil {
					return err
				}
				data.Status = st
			}
			if err := w.WriteList(data); err != nil {
				return err
			}
		}
	}
	return nil
}

// Create, Delete and Rename manage user folders (RFC 9051 §6.3.4–6.3.6)
// through mailbox.Service, within its limits; the standard folders are
// fixed. An operator's names are "address/Folder".
func (s *session) Create(name string, _ *imap.CreateOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.TrimSuffix(name, string(delim)) // a trailing delimiter only announces children (RFC 9051 §6.3.4)
	t, err := s.parseName(name)
	if err != nil {
		return err
	}
	if t.placeholder() {
		return errPlaceholder
	}
	_, err = s.srv.mb.CreateFolder(s.ctx, s.p, t.acct, t.folder)
	return imapErr(err)
}

func (s *session) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.parseName(name)
	if err != nil {
		return err
	}
	if t.placeholder() {
		return errPlaceholder
	}
	return imapErr(s.srv.mb.DeleteFolder(s.ctx, s.p, t.acct, t.folder))
}

func (s *session) Rename(name, newName string, _ *imap.RenameOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, err := s.parseName(name)
	if err != nil {
		return err
	}
	to, err := s.parseName(newName)
	if err != nil {
		return err
	}
	if from.placeholder() || to.placeholder() {
		return errPlaceholder
	}
	if from.acct.ID != to.acct.ID {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Folders cannot move between KEP accounts"}
	}
	return imapErr(s.srv.mb.RenameFolder(s.ctx, s.p, from.acct, from.folder, to.folder))
}

var errPlaceholder = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
	Text: "An operator's INBOX is an empty placeholder: the accounts you act for are listed as ADDRESS/INBOX and so on"}

// Subscribe accepts the folders that exist; they are always subscribed.
func (s *session) Subscribe(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.resolve(name)
	return err
}

// Unsubscribe is accepted and changes nothing: every folder stays listed.
func (s *session) Unsubscribe(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.resolve(name)
	return err
}
