package mailbox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/store"
)

// This file holds the rules about what a principal may do with a folder or
// a message. Every front-end (IMAP today, the REST API and the web later)
// calls the principal-taking methods of Service and only translates their
// answers; none of them decides a rule of its own.
//
// Grants (docs/kep-rules.md "Accounts": read, send, delete, archive). An
// account's holder holds them all on their own account. Every change of
// state needs the grant it serves:
//
//	list folders, list messages, fetch     read
//	set \Seen                              read (and it is a retrieval when the body was served first: retrieve.go)
//	clear \Seen                            archive (marking unread is keeping the mailbox, not reading)
//	set or clear \Deleted                  delete
//	set or clear \Flagged, \Draft,
//	  keywords                             archive (they organise the mailbox for everyone who shares it)
//	set or clear \Answered                 send or archive (a client sets it after sending a reply)
//	expunge, move out of a folder          delete
//	move into Archive                      archive (the message stays in the account: that is archiving)
//	copy within the account                archive; into Trash: delete
//	append to Drafts or Sent               send; to a user folder: archive
//	create or rename a user folder         archive; delete a user folder: delete
//
// A Delil item is a mailbox copy of an evidence: the holder, or an
// operator with the delete grant, may remove it like any message. The
// evidence itself stays in the evidence store and the log for the retention
// period and nobody can delete it (the store's triggers refuse).

// Role is what a folder is for. Front-ends identify folders by role, so that
// user folders and localised names can follow; Name is only how a role is
// spelled today.
type Role string

const (
	RoleInbox   Role = "inbox"
	RoleSent    Role = "sent"
	RoleDelil   Role = "delil"
	RoleDrafts  Role = "drafts"
	RoleTrash   Role = "trash"
	RoleArchive Role = "archive"
	RoleUser    Role = "user" // a folder the user created
)

var roleNames = map[Role]string{RoleInbox: Inbox, RoleSent: Sent, RoleDelil: Delil, RoleDrafts: Drafts, RoleTrash: Trash, RoleArchive: Archive}

// RoleOf returns the role of a folder name: a standard folder's, or
// RoleUser.
func RoleOf(name string) Role {
	if strings.EqualFold(name, Inbox) {
		return RoleInbox
	}
	for r, n := range roleNames {
		if n == name {
			return r
		}
	}
	return RoleUser
}

// Role returns the folder's role.
func (f *Folder) Role() Role { return RoleOf(f.Name) }

// NameOf returns the folder name of a standard role ("" for RoleUser).
func NameOf(r Role) string { return roleNames[r] }

// RefusalKind classifies a refusal so that each front-end can answer in its
// own terms (IMAP response codes, HTTP statuses).
type RefusalKind string

const (
	NoPermission  RefusalKind = "no-permission"  // a grant is missing
	NotPossible   RefusalKind = "not-possible"   // the rule forbids it for everyone
	OverQuota     RefusalKind = "over-quota"     // the account's quota would be exceeded
	NotFound      RefusalKind = "not-found"      // no such folder or message (or not visible to the principal)
	OverLimit     RefusalKind = "over-limit"     // a count or length limit
	AlreadyExists RefusalKind = "already-exists" // a folder of that name exists
)

// Refusal is a refused request with the reason a person can act on.
// A refused request changes nothing in the store.
type Refusal struct {
	Kind   RefusalKind
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }

// Unwrap makes a missing grant errors.Is(err, ErrNoAccess).
func (r *Refusal) Unwrap() error {
	if r.Kind == NoPermission {
		return ErrNoAccess
	}
	return nil
}

func refuse(k RefusalKind, format string, args ...any) *Refusal {
	return &Refusal{Kind: k, Reason: fmt.Sprintf(format, args...)}
}

// needGrant refuses unless p holds g on the account, naming what is
// missing and what the principal holds.
func needGrant(p *account.Principal, a *store.Account, g account.Grant, what string) error {
	if p.Can(a.ID, g) {
		return nil
	}
	return refuse(NoPermission, "%s needs the %s grant on %s (your grants: %s)", what, g, a.Address, grantNames(p.Grants(a.ID)))
}

func grantNames(g account.Grant) string {
	if g == 0 {
		return "none"
	}
	return g.String()
}

// flagGrants returns the grants any one of which allows adding (or, with
// add false, removing) a flag; see the table above.
func flagGrants(flag string, add bool) []account.Grant {
	switch flag {
	case `\Seen`:
		if add {
			return []account.Grant{account.GrantRead}
		}
		return []account.Grant{account.GrantArchive}
	case `\Deleted`:
		return []account.Grant{account.GrantDelete}
	case `\Answered`:
		return []account.Grant{account.GrantSend, account.GrantArchive}
	}
	return []account.Grant{account.GrantArchive}
}

// mayChangeFlag refuses a flag change the principal holds no grant for.
func mayChangeFlag(p *account.Principal, a *store.Account, flag string, add bool) error {
	gs := flagGrants(flag, add)
	for _, g := range gs {
		if p.Can(a.ID, g) {
			return nil
		}
	}
	verb := "Setting"
	if !add {
		verb = "Clearing"
	}
	var names []string
	for _, g := range gs {
		names = append(names, g.String())
	}
	return refuse(NoPermission, "%s %s needs the %s grant on %s (your grants: %s)", verb, flag, strings.Join(names, " or "), a.Address, grantNames(p.Grants(a.ID)))
}

// canHold says whether a folder may receive a message of kind k: evidence
// items live in Delil, Archive and Trash, and nothing else enters Delil
// (docs/kep-rules.md: evidence is "not mixed into the inbox").
func canHold(r Role, k Kind) bool {
	if k == KindEvidence {
		return r == RoleDelil || r == RoleArchive || r == RoleTrash
	}
	return r != RoleDelil
}

// Visible returns the active accounts whose mailboxes the principal sees:
// the holder's own, an operator's or a token's where it holds the read
// grant. Each has its standard folders.
func (s *Service) Visible(ctx context.Context, p *account.Principal) ([]*store.Account, error) {
	return s.accountsWith(ctx, p, func(id int64) bool { return p.Can(id, account.GrantRead) })
}

// SendOnly returns the active accounts the principal may send for but not
// read: an operator's (or its token's) with the send grant and without the
// read grant (KEP: an işlem yetkilisi with send authority only). A
// front-end offers these for composing only (SendAccount).
func (s *Service) SendOnly(ctx context.Context, p *account.Principal) ([]*store.Account, error) {
	return s.accountsWith(ctx, p, func(id int64) bool { return p.Can(id, account.GrantSend) && !p.Can(id, account.GrantRead) })
}

// accountsWith returns the active accounts the principal has a role on
// (the holder its own) that keep passes, with their standard folders.
func (s *Service) accountsWith(ctx context.Context, p *account.Principal, keep func(id int64) bool) ([]*store.Account, error) {
	s.init()
	q := s.DB.Q()
	var ids []int64
	switch p.Kind() {
	case account.Holder:
		ids = []int64{p.Account.ID}
	case account.Operator:
		if err := s.RefreshRoles(ctx, p); err != nil {
			return nil, err
		}
		for _, r := range p.Roles {
			ids = append(ids, r.AccountID)
		}
	case account.Token:
		ids = []int64{p.Token.AccountID}
	}
	var out []*store.Account
	for _, id := range ids {
		if !keep(id) {
			continue
		}
		a, err := store.GetAccount(ctx, q, id)
		if err != nil {
			return nil, err
		}
		if err := EnsureFolders(ctx, q, a.ID, s.now()); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// RefreshRoles re-reads an operator's live roles on active accounts, so
// that grants changed since login apply from the next request.
func (s *Service) RefreshRoles(ctx context.Context, p *account.Principal) error {
	if p.Kind() != account.Operator {
		return nil
	}
	q := s.DB.Q()
	roles, err := store.ListRolesOfOperator(ctx, q, p.Operator.ID)
	if err != nil {
		return err
	}
	var live []*store.OperatorRole
	for _, r := range roles {
		if p.Within != 0 && r.AccountID != p.Within {
			continue // a token made for one account (account/tokens.go)
		}
		if a, err := store.GetAccount(ctx, q, r.AccountID); err == nil && account.Status(a.Status) == account.Active {
			live = append(live, r)
		}
	}
	p.Roles = live
	return nil
}

// Account returns an account the principal may read, by address; an
// account it may not read is not found, so that the two cannot be told
// apart.
func (s *Service) Account(ctx context.Context, p *account.Principal, addr string) (*store.Account, error) {
	s.init()
	if err := s.RefreshRoles(ctx, p); err != nil {
		return nil, err
	}
	a, err := store.GetAccountByAddress(ctx, s.DB.Q(), strings.ToLower(addr))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.Can(a.ID, account.GrantRead)) {
		return nil, refuse(NotFound, "No such account: %s", addr)
	}
	if err != nil {
		return nil, err
	}
	if err := EnsureFolders(ctx, s.DB.Q(), a.ID, s.now()); err != nil {
		return nil, err
	}
	return a, nil
}

// SendAccount returns an account the principal may send for, by address:
// with the send grant, read grant or not (an operator with send only
// sends for the company without reading its mail; the access point checks
// the send grant again on each message). An account it may not send for
// is not found when it may not read it either, so that the two cannot be
// told apart; one it reads but may not send for is refused with the
// missing grant.
func (s *Service) SendAccount(ctx context.Context, p *account.Principal, addr string) (*store.Account, error) {
	s.init()
	if err := s.RefreshRoles(ctx, p); err != nil {
		return nil, err
	}
	a, err := store.GetAccountByAddress(ctx, s.DB.Q(), strings.ToLower(addr))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.Can(a.ID, account.GrantSend) && !p.Can(a.ID, account.GrantRead)) {
		return nil, refuse(NotFound, "No such account: %s", addr)
	}
	if err != nil {
		return nil, err
	}
	if err := needGrant(p, a, account.GrantSend, "Sending for this account"); err != nil {
		return nil, err
	}
	if err := EnsureFolders(ctx, s.DB.Q(), a.ID, s.now()); err != nil {
		return nil, err
	}
	return a, nil
}

// OpenFolder returns an account's folder by name for a principal with the
// read grant.
func (s *Service) OpenFolder(ctx context.Context, p *account.Principal, a *store.Account, name string) (*Folder, error) {
	s.init()
	if !p.Can(a.ID, account.GrantRead) {
		return nil, refuse(NotFound, "No such folder: %s", name)
	}
	f, err := GetFolder(ctx, s.DB.Q(), a.ID, name)
	if errors.Is(err, ErrNoFolder) {
		return nil, refuse(NotFound, "No such folder: %s", name)
	}
	return f, err
}

// FolderByRole returns an account's standard folder of a role, for a
// principal with the read grant (user folders are opened by name).
func (s *Service) FolderByRole(ctx context.Context, p *account.Principal, a *store.Account, r Role) (*Folder, error) {
	name := NameOf(r)
	if name == "" {
		return nil, refuse(NotPossible, "Folders of role %s are opened by name", r)
	}
	return s.OpenFolder(ctx, p, a, name)
}

// Folders lists an account's folders in display order, for a principal
// with the read grant.
func (s *Service) Folders(ctx context.Context, p *account.Principal, a *store.Account) ([]*Folder, error) {
	s.init()
	if !p.Can(a.ID, account.GrantRead) {
		return nil, refuse(NotFound, "No such account: %s", a.Address)
	}
	return ListFolders(ctx, s.DB.Q(), a.ID)
}

// Messages lists a folder's messages in UID order, for a principal with
// the read grant.
func (s *Service) Messages(ctx context.Context, p *account.Principal, f *Folder) ([]*Message, error) {
	s.init()
	if !p.Can(f.AccountID, account.GrantRead) {
		return nil, refuse(NotFound, "No such folder: %s", f.Name)
	}
	return ListMessages(ctx, s.DB.Q(), f.ID)
}
