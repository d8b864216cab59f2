package imapd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/store"
)

// delim is the hierarchy delimiter (RFC 9051 §5.1.1).
const delim = '/'

// errNoMailbox answers a name that does not exist or that the principal may
// not see; the two are indistinguishable on purpose.
var errNoMailbox = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}

// target is a mailbox name resolved to an account's folder.
type target struct {
	acct   *store.Account
	folder string // the mailbox package's folder name
	name   string // the name the client sees
}

// visible is an account the principal sees, with the prefix of its folders'
// names ("" for the principal's own account, "address/" for an operator).
type visible struct {
	acct   *store.Account
	prefix string
}

// isOperator reports whether the session's principal is an operator.
func (s *session) isOperator() bool { return s.p != nil && s.p.Operator != nil }

// refreshRoles re-reads an operator's live roles on active accounts, so that
// grants changed since login apply from the next command that lists,
// selects or queries a mailbox.
func (s *session) refreshRoles() error {
	if !s.isOperator() {
		return nil
	}
	q := s.srv.mb.DB.Q()
	roles, err := store.ListRolesOfOperator(s.ctx, q, s.p.Operator.ID)
	if err != nil {
		return err
	}
	var live []*store.OperatorRole
	for _, r := range roles {
		if a, err := store.GetAccount(s.ctx, q, r.AccountID); err == nil && account.Status(a.Status) == account.Active {
			live = append(live, r)
		}
	}
	s.p.Roles = live
	return nil
}

// accounts lists the accounts the principal sees: their own, or for an
// operator every active account they hold the read grant on, each with its
// folders created when missing.
func (s *session) accounts() ([]visible, error) {
	q := s.srv.mb.DB.Q()
	if !s.isOperator() {
		a, err := store.GetAccount(s.ctx, q, s.p.Account.ID)
		if err != nil {
			return nil, err
		}
		return []visible{{acct: a}}, nil
	}
	if err := s.refreshRoles(); err != nil {
		return nil, err
	}
	var out []visible
	for _, r := range s.p.Roles {
		if !s.p.Can(r.AccountID, account.GrantRead) {
			continue // operators without the read grant do not see the account
		}
		a, err := store.GetAccount(s.ctx, q, r.AccountID)
		if err != nil {
			return nil, err
		}
		if err := mailbox.EnsureFolders(s.ctx, q, a.ID, s.srv.now()); err != nil {
			return nil, err
		}
		out = append(out, visible{acct: a, prefix: a.Address + string(delim)})
	}
	return out, nil
}

// resolve maps a client's mailbox name to an account and folder the
// principal may read. INBOX is case-insensitive (RFC 9051 §5.1); so is the
// address part of an operator's names.
func (s *session) resolve(name string) (*target, error) {
	if s.p == nil {
		return nil, errNoMailbox
	}
	if !s.isOperator() {
		folder := name
		if strings.EqualFold(folder, mailbox.Inbox) {
			folder = mailbox.Inbox
		}
		if !isFolder(folder) {
			return nil, errNoMailbox
		}
		a, err := store.GetAccount(s.ctx, s.srv.mb.DB.Q(), s.p.Account.ID)
		if err != nil {
			return nil, err
		}
		return &target{acct: a, folder: folder, name: folder}, nil
	}
	addr, folder, ok := strings.Cut(name, string(delim))
	if !ok || addr == "" {
		return nil, errNoMailbox
	}
	addr = strings.ToLower(addr)
	if strings.EqualFold(folder, mailbox.Inbox) {
		folder = mailbox.Inbox
	}
	if !isFolder(folder) {
		return nil, errNoMailbox
	}
	if err := s.refreshRoles(); err != nil {
		return nil, err
	}
	q := s.srv.mb.DB.Q()
	a, err := store.GetAccountByAddress(s.ctx, q, addr)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoMailbox
	}
	if err != nil {
		return nil, err
	}
	if !s.p.Can(a.ID, account.GrantRead) {
		return nil, errNoMailbox
	}
	if err := mailbox.EnsureFolders(s.ctx, q, a.ID, s.srv.now()); err != nil {
		return nil, err
	}
	return &target{acct: a, folder: folder, name: a.Address + string(delim) + folder}, nil
}

func isFolder(name string) bool {
	for _, f := range mailbox.Folders {
		if f == name {
			return true
		}
	}
	return false
}

// specialUse gives the RFC 6154 attribute of a folder.
func specialUse(folder string) imap.MailboxAttr {
	switch folder {
	case mailbox.Sent:
		return imap.MailboxAttrSent
	case mailbox.Drafts:
		return imap.MailboxAttrDrafts
	case mailbox.Trash:
		return imap.MailboxAttrTrash
	case mailbox.Archive:
		return imap.MailboxAttrArchive
	}
	return ""
}

// needGrant returns NO [NOPERM] unless the principal holds g on the
// account (always true for the account's holder).
func (s *session) needGrant(a *store.Account, g account.Grant, what string) error {
	if s.p.Can(a.ID, g) {
		return nil
	}
	have := "none"
	if r := s.p.RoleOn(a.ID); r != nil {
		have = account.Grant(r.Grants).String()
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNoPerm,
		Text: fmt.Sprintf("%s needs the %s grant on %s (your grants: %s)", what, g, a.Address, have)}
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
	match := func(name string) bool {
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
		folders, err := mailbox.ListFolders(s.ctx, s.srv.mb.DB.Q(), v.acct.ID)
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

// Create, Delete and Rename refuse: every account has the same fixed
// folders (RFC 9051 §6.3.4–6.3.6 allow a server to refuse).
func (s *session) Create(name string, _ *imap.CreateOptions) error { return errFixedFolders }

func (s *session) Delete(name string) error { return errFixedFolders }

func (s *session) Rename(name, newName string, _ *imap.RenameOptions) error {
	return errFixedFolders
}

var errFixedFolders = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
	Text: "KEP folders are fixed (INBOX, Sent, Delil, Drafts, Trash, Archive): they cannot be created, deleted or renamed"}

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
