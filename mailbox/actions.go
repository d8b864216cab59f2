package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/store"
)

// The principal-taking methods that change a mailbox: flags, copy, move,
// append and user folders. Each checks its grants (access.go) before it
// changes anything, and changes everything in one transaction, so that a
// refused request leaves the store as it was.

// MaxFlags bounds the flags and keywords one message may carry.
const MaxFlags = 64

// Limits of user folders.
const (
	MaxUserFolders    = 100
	MaxFolderNameSize = 100 // bytes of UTF-8
)

// FlagOp says how StoreFlags combines the given flags with a message's.
type FlagOp int

const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

func applyFlags(cur, flags []string, op FlagOp) []string {
	switch op {
	case FlagsReplace:
		return append([]string{}, flags...)
	case FlagsAdd:
		out := append([]string{}, cur...)
		for _, f := range flags {
			if !hasString(out, f) {
				out = append(out, f)
			}
		}
		return out
	default:
		var out []string
		for _, f := range cur {
			if !hasString(flags, f) {
				out = append(out, f)
			}
		}
		return out
	}
}

func hasString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// checkFlagChange refuses a change from cur to next that p holds no grant
// for.
func checkFlagChange(p *account.Principal, a *store.Account, cur, next []string) error {
	for _, f := range next {
		if !hasString(cur, f) {
			if err := mayChangeFlag(p, a, f, true); err != nil {
				return err
			}
		}
	}
	for _, f := range cur {
		if !hasString(next, f) {
			if err := mayChangeFlag(p, a, f, false); err != nil {
				return err
			}
		}
	}
	if len(next) > MaxFlags {
		return refuse(OverLimit, "A message carries at most %d flags", MaxFlags)
	}
	return nil
}

// StoreFlags changes the flags of the messages with the given UIDs (IMAP
// STORE, the web's and API's mark-as). Every flag added or removed needs its
// grant (access.go); one missing grant refuses the whole request and
// nothing changes. Setting \Seen on a KEP message whose body was served to
// the same principal before is a retrieval (evidence 60, retrieve.go).
// It returns the messages as they are after the change (those that still
// exist), and whether any changed.
func (s *Service) StoreFlags(ctx context.Context, p *account.Principal, f *Folder, uids []uint32, op FlagOp, flags []string) ([]*Message, bool, error) {
	return s.storeFlags(ctx, p, f, uids, op, flags, true)
}

// MarkSeen sets \Seen on one message as a side effect of a fetch (IMAP
// FETCH BODY[...] without PEEK, RFC 9051 §6.4.5). It needs the read grant
// and is never a retrieval by itself: the fetch decides that (Serve).
func (s *Service) MarkSeen(ctx context.Context, p *account.Principal, f *Folder, uid uint32) (*Message, error) {
	ms, _, err := s.storeFlags(ctx, p, f, []uint32{uid}, FlagsAdd, []string{`\Seen`}, false)
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return ms[0], nil
}

func (s *Service) storeFlags(ctx context.Context, p *account.Principal, f *Folder, uids []uint32, op FlagOp, flags []string, retrieval bool) ([]*Message, bool, error) {
	s.init()
	q := s.DB.Q()
	a, err := store.GetAccount(ctx, q, f.AccountID)
	if err != nil {
		return nil, false, err
	}
	if !p.Can(a.ID, account.GrantRead) {
		return nil, false, refuse(NotFound, "No such folder: %s", f.Name)
	}
	// Check every change before making any.
	var seen []*Message
	for _, uid := range uids {
		m, err := GetMessage(ctx, q, f.ID, uid)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		next := applyFlags(m.Flags, flags, op)
		if err := checkFlagChange(p, a, m.Flags, next); err != nil {
			return nil, false, err
		}
		if retrieval && op != FlagsRemove && hasString(flags, `\Seen`) {
			seen = append(seen, m)
		}
	}
	// Retrievals first: a \Seen that is a retrieval is set only once its
	// evidence is recorded.
	for _, m := range seen {
		if _, err := s.retrieveOnSeen(ctx, p, m); err != nil {
			return nil, false, err
		}
	}
	var out []*Message
	changed := false
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		out, changed = out[:0], false
		for _, uid := range uids {
			m, err := GetMessage(ctx, tx, f.ID, uid)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			next := applyFlags(m.Flags, flags, op)
			if sameFlags(next, m.Flags) {
				out = append(out, m)
				continue
			}
			if err := checkFlagChange(p, a, m.Flags, next); err != nil {
				return err
			}
			if err := SetFlags(ctx, tx, f.ID, uid, next); err != nil {
				return err
			}
			if m, err = GetMessage(ctx, tx, f.ID, uid); err != nil {
				return err
			}
			out, changed = append(out, m), true
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if changed {
		s.Hub.Notify(f.AccountID, f.ID)
	}
	return out, changed, nil
}

func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !hasString(b, f) {
			return false
		}
	}
	return true
}

// CopyResult says where copied or moved messages went.
type CopyResult struct {
	Dest       *Folder
	SourceUIDs []uint32
	DestUIDs   []uint32
}

// Copy copies messages into another folder of the same account (IMAP COPY).
func (s *Service) Copy(ctx context.Context, p *account.Principal, src *Folder, uids []uint32, dst *Folder) (*CopyResult, error) {
	return s.copyMessages(ctx, p, src, uids, dst, false)
}

// Move moves messages into another folder of the same account (IMAP MOVE,
// the web's "move to"): the copy and the removal commit together. Moving
// out of a folder needs the delete grant, except into Archive, which needs
// the archive grant alone: the message stays in the account, archived.
func (s *Service) Move(ctx context.Context, p *account.Principal, src *Folder, uids []uint32, dst *Folder) (*CopyResult, error) {
	return s.copyMessages(ctx, p, src, uids, dst, true)
}

func (s *Service) copyMessages(ctx context.Context, p *account.Principal, src *Folder, uids []uint32, dst *Folder, move bool) (*CopyResult, error) {
	s.init()
	q := s.DB.Q()
	a, err := store.GetAccount(ctx, q, src.AccountID)
	if err != nil {
		return nil, err
	}
	if !p.Can(a.ID, account.GrantRead) {
		return nil, refuse(NotFound, "No such folder: %s", src.Name)
	}
	if dst.AccountID != src.AccountID {
		return nil, refuse(NotPossible, "Messages cannot be copied or moved between KEP accounts")
	}
	verb := "Copying"
	if move {
		verb = "Moving"
	}
	switch {
	case dst.Role() == RoleTrash:
		err = needGrant(p, a, account.GrantDelete, verb+" messages to Trash")
	case move && dst.Role() == RoleArchive:
		err = needGrant(p, a, account.GrantArchive, "Archiving messages")
	case move:
		if err = needGrant(p, a, account.GrantDelete, "Moving messages out of "+src.Name); err == nil {
			err = needGrant(p, a, account.GrantArchive, verb+" messages between folders")
		}
	default:
		err = needGrant(p, a, account.GrantArchive, verb+" messages between folders")
	}
	if err != nil {
		return nil, err
	}
	var msgs []*Message
	var charge int64
	for _, uid := range uids {
		m, err := GetMessage(ctx, q, src.ID, uid)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !canHold(dst.Role(), m.Kind) {
			return nil, refuse(NotPossible, "%s cannot hold this message (UID %d): evidence items stay in Delil, Archive or Trash, and only evidence enters Delil", dst.Name, m.UID)
		}
		if countsToQuota(m.Kind) {
			charge += m.Size
		}
		msgs = append(msgs, m)
	}
	res := &CopyResult{Dest: dst}
	if len(msgs) == 0 {
		return res, nil
	}
	if move {
		charge = 0 // the sizes leave the source as they enter the destination
	}
	var unused []blob.Digest
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		res.SourceUIDs, res.DestUIDs, unused = nil, nil, nil
		if err := checkQuota(ctx, tx, a.ID, charge); err != nil {
			return err
		}
		var moved []uint32
		for _, m := range msgs {
			uid, err := CopyMessage(ctx, tx, m, dst)
			if err != nil {
				return err
			}
			res.SourceUIDs, res.DestUIDs, moved = append(res.SourceUIDs, m.UID), append(res.DestUIDs, uid), append(moved, m.UID)
		}
		if move {
			var err error
			unused, err = Remove(ctx, tx, src, moved)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.dropBlobs(unused) // none in practice: the copies hold the content
	if d, err := GetFolderByID(ctx, q, dst.ID); err == nil {
		res.Dest = d
	}
	s.Hub.Notify(a.ID, dst.ID)
	if move {
		s.Hub.Notify(a.ID, src.ID)
	}
	return res, nil
}

func (s *Service) dropBlobs(ds []blob.Digest) {
	for _, d := range ds {
		if err := s.Blobs.Delete(d); err != nil {
			s.Log.Error("delete content", "digest", d.String(), "err", err)
		}
	}
}

// checkQuota refuses to add bytes beyond the account's quota, with the
// figures delivery enforces.
func checkQuota(ctx context.Context, q store.Querier, accountID, add int64) error {
	if add <= 0 {
		return nil
	}
	a, err := store.GetAccount(ctx, q, accountID)
	if err != nil {
		return err
	}
	if a.QuotaBytes > 0 && a.UsedBytes+add > a.QuotaBytes {
		return refuse(OverQuota, "Over quota: %s uses %d of %d KiB, this needs %d KiB more", a.Address, a.UsedBytes/1024, a.QuotaBytes/1024, (add+1023)/1024)
	}
	return nil
}

// AppendRequest is a message a client stores into a folder.
type AppendRequest struct {
	Content io.Reader
	Size    int64
	Flags   []string
	Date    time.Time // zero: now
}

// Appended says where an appended message is.
type Appended struct {
	Folder *Folder
	UID    uint32
	Kind   Kind
	// Deduplicated says the message is the account's own KEP message, whose
	// provider-made Sent copy (UID) stands for it; nothing was stored.
	Deduplicated bool
}

// headerScan is how much of an appended message is read to find its
// Message-ID before deciding where its bytes go.
const headerScan = 64 << 10

// AppendMessage stores a message a client gives (IMAP APPEND; the web's
// "save draft"):
//   - into Drafts (send grant): a draft;
//   - into Sent (send grant): mail clients append a copy of what they sent.
//     When its Message-ID names a KEP message of this account, the
//     provider's own Sent copy stands for it (recreated if it was deleted):
//     no error and no duplicate. Otherwise it is kept as a plain user copy
//     (KindCopy), which front-ends show as not attested by the provider;
//   - into a user folder (archive grant): a user copy.
//
// INBOX, Delil, Archive and Trash take no APPEND: KEP messages and evidence
// reach a mailbox only through the provider. Evidence never comes from an
// APPEND. The literal is checked against the quota before it is stored.
func (s *Service) AppendMessage(ctx context.Context, p *account.Principal, f *Folder, r AppendRequest) (*Appended, error) {
	s.init()
	q := s.DB.Q()
	a, err := store.GetAccount(ctx, q, f.AccountID)
	if err != nil {
		return nil, err
	}
	if !p.Can(a.ID, account.GrantRead) {
		return nil, refuse(NotFound, "No such folder: %s", f.Name)
	}
	kind := KindCopy
	switch f.Role() {
	case RoleDrafts, RoleSent:
		what := "Saving drafts"
		if f.Role() == RoleSent {
			what = "Saving sent messages"
		}
		if err := needGrant(p, a, account.GrantSend, what); err != nil {
			return nil, err
		}
		if account.Capability(a.Capability) == account.ReceiveOnly {
			return nil, refuse(NotPossible, "%s is a receive-only account: it has no drafts or sent messages", a.Address)
		}
		if f.Role() == RoleDrafts {
			kind = KindDraft
		}
	case RoleUser:
		if err := needGrant(p, a, account.GrantArchive, "Saving messages into "+f.Name); err != nil {
			return nil, err
		}
	default:
		return nil, refuse(NotPossible, "%s takes no APPEND: KEP messages and evidence reach a mailbox only through the provider (Drafts, Sent and your own folders accept messages)", f.Name)
	}
	// The flags a message arrives with need their grants as if set later.
	if err := checkFlagChange(p, a, nil, r.Flags); err != nil {
		return nil, err
	}
	if err := checkQuota(ctx, q, a.ID, r.Size); err != nil {
		return nil, err
	}
	head := make([]byte, min(r.Size, headerScan))
	if _, err := io.ReadFull(r.Content, head); err != nil {
		return nil, fmt.Errorf("append: read: %w", err)
	}
	rest := io.LimitReader(r.Content, r.Size-int64(len(head)))
	date := r.Date
	if date.IsZero() {
		date = s.now()
	}
	if f.Role() == RoleSent {
		if msg := s.ownKEPMessage(ctx, a.ID, head); msg != nil {
			if _, err := io.Copy(io.Discard, rest); err != nil {
				return nil, err
			}
			return s.sentCopy(ctx, f, msg, date)
		}
	}
	bw, err := s.Blobs.Create()
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(bw, io.MultiReader(bytes.NewReader(head), rest))
	if err != nil || n != r.Size {
		bw.Abort()
		return nil, fmt.Errorf("append: read %d of %d bytes: %v", n, r.Size, err)
	}
	d, gen, err := bw.CommitDeferred()
	if err != nil {
		return nil, err
	}
	if err := s.Blobs.Sync(gen); err != nil {
		return nil, err
	}
	out := &Appended{Kind: kind}
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		if err := checkQuota(ctx, tx, a.ID, n); err != nil {
			return err
		}
		cur, err := GetFolderByID(ctx, tx, f.ID)
		if err != nil {
			return err
		}
		out.Folder = cur
		out.UID, err = Append(ctx, tx, cur, New{Kind: kind, Ref: -1, Content: &d, Size: n, InternalDate: date.UTC(), Flags: r.Flags})
		return err
	})
	if err != nil {
		// The stored bytes stay unreferenced: deleting them could race with
		// another APPEND of the same bytes.
		return nil, err
	}
	s.Hub.Notify(a.ID, f.ID)
	return out, nil
}

// ownKEPMessage returns the KEP message of the account whose Message-ID
// the header names, or nil.
func (s *Service) ownKEPMessage(ctx context.Context, accountID int64, head []byte) *KEPMessage {
	end := bytes.Index(head, []byte("\r\n\r\n"))
	if end < 0 {
		end = bytes.Index(head, []byte("\n\n"))
	}
	if end < 0 {
		return nil
	}
	m, err := mail.ReadMessage(bytes.NewReader(append(head[:end:end], "\r\n\r\n"...)))
	if err != nil {
		return nil
	}
	id := strings.TrimSpace(m.Header.Get("Message-Id"))
	bare := strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if bare == "" {
		return nil
	}
	var mid int64
	err = s.DB.Q().QueryRow(ctx, `SELECT id FROM messages WHERE sender_account = ? AND header_id IN (?, ?) ORDER BY id DESC LIMIT 1`,
		accountID, "<"+bare+">", bare).Scan(&mid)
	if err != nil {
		return nil
	}
	msg, err := GetKEPMessage(ctx, s.DB.Q(), mid)
	if err != nil {
		return nil
	}
	return msg
}

// sentCopy returns the provider's Sent copy of msg in f, putting it back
// when the holder deleted it.
func (s *Service) sentCopy(ctx context.Context, f *Folder, msg *KEPMessage, date time.Time) (*Appended, error) {
	out := &Appended{Kind: KindSent, Deduplicated: true}
	var restored bool
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		cur, err := GetFolderByID(ctx, tx, f.ID)
		if err != nil {
			return err
		}
		out.Folder, restored = cur, false
		var uid int64
		err = tx.QueryRow(ctx, `SELECT uid FROM mailbox_messages WHERE mailbox_id = ? AND message_id = ? AND kind = 'sent' ORDER BY uid LIMIT 1`, f.ID, msg.ID).Scan(&uid)
		if err == nil {
			out.UID = uint32(uid)
			return nil
		}
		if !errors.Is(store.MapErr(err), store.ErrNotFound) {
			return err
		}
		if !s.Blobs.Has(msg.Digest) {
			return refuse(NotPossible, "The original of this KEP message is no longer kept, so its Sent copy cannot be restored")
		}
		if err := checkQuota(ctx, tx, f.AccountID, msg.Size); err != nil {
			return err
		}
		d := msg.Digest
		out.UID, err = Append(ctx, tx, cur, New{Kind: KindSent, MessageID: msg.ID, Ref: -1, Content: &d, Size: msg.Size, InternalDate: msg.SubmittedAt, Flags: []string{`\Seen`}})
		restored = true
		return err
	})
	if err != nil {
		return nil, err
	}
	if restored {
		s.Hub.Notify(f.AccountID, f.ID)
	}
	return out, nil
}

// checkFolderName refuses a user folder name outside the limits: at most
// MaxFolderNameSize bytes of UTF-8, no control characters, no "/" (the
// hierarchy delimiter: user folders are flat), no leading or trailing
// space, and not the name of a standard folder in any letter case.
func checkFolderName(name string) error {
	switch {
	case name == "":
		return refuse(NotPossible, "A folder needs a name")
	case !utf8.ValidString(name):
		return refuse(NotPossible, "Folder names are UTF-8 text")
	case len(name) > MaxFolderNameSize:
		return refuse(OverLimit, "Folder names are limited to %d bytes", MaxFolderNameSize)
	case strings.TrimSpace(name) != name:
		return refuse(NotPossible, "Folder names cannot begin or end with a space")
	case strings.ContainsRune(name, '/'):
		return refuse(NotPossible, "Folder names cannot contain \"/\": user folders are not nested")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return refuse(NotPossible, "Folder names cannot contain control characters")
		}
	}
	for _, std := range Folders {
		if strings.EqualFold(name, std) {
			return refuse(AlreadyExists, "%s is a standard KEP folder", std)
		}
	}
	return nil
}

// CreateFolder creates a user folder (archive grant), within the limits
// (MaxUserFolders per account, checkFolderName). Its UIDVALIDITY is new,
// so that a folder deleted and created again never reuses UIDs
// (RFC 9051 §2.3.1.1).
func (s *Service) CreateFolder(ctx context.Context, p *account.Principal, a *store.Account, name string) (*Folder, error) {
	s.init()
	if !p.Can(a.ID, account.GrantRead) {
		return nil, refuse(NotFound, "No such account: %s", a.Address)
	}
	if err := needGrant(p, a, account.GrantArchive, "Creating folders"); err != nil {
		return nil, err
	}
	if err := checkFolderName(name); err != nil {
		return nil, err
	}
	var f *Folder
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		var n int
		var validity int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(uidvalidity), 0) FROM mailboxes WHERE account_id = ?`, a.ID).Scan(&n, &validity); err != nil {
			return err
		}
		if n-len(Folders) >= MaxUserFolders {
			return refuse(OverLimit, "An account has at most %d folders of its own", MaxUserFolders)
		}
		if _, err := GetFolder(ctx, tx, a.ID, name); err == nil {
			return refuse(AlreadyExists, "A folder named %s exists", name)
		}
		validity = max(validity+1, s.now().Unix())
		if _, err := tx.Exec(ctx, `INSERT INTO mailboxes (account_id, name, uidvalidity, uidnext, modseq) VALUES (?, ?, ?, 1, 1)`, a.ID, name, validity); err != nil {
			return err
		}
		var err error
		f, err = GetFolder(ctx, tx, a.ID, name)
		return err
	})
	return f, err
}

// RenameFolder renames a user folder (archive grant). Standard folders keep
// their names.
func (s *Service) RenameFolder(ctx context.Context, p *account.Principal, a *store.Account, from, to string) error {
	s.init()
	f, err := s.OpenFolder(ctx, p, a, from)
	if err != nil {
		return err
	}
	if f.Role() != RoleUser {
		return refuse(NotPossible, "%s is a standard KEP folder: it cannot be renamed", f.Name)
	}
	if err := needGrant(p, a, account.GrantArchive, "Renaming folders"); err != nil {
		return err
	}
	if err := checkFolderName(to); err != nil {
		return err
	}
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		if _, err := GetFolder(ctx, tx, a.ID, to); err == nil {
			return refuse(AlreadyExists, "A folder named %s exists", to)
		}
		_, err := tx.Exec(ctx, `UPDATE mailboxes SET name = ? WHERE id = ?`, to, f.ID)
		return err
	})
}

// DeleteFolder deletes an empty user folder (delete grant). A folder that
// still holds messages is refused: they are deleted or moved first, each
// under its own rule.
func (s *Service) DeleteFolder(ctx context.Context, p *account.Principal, a *store.Account, name string) error {
	s.init()
	f, err := s.OpenFolder(ctx, p, a, name)
	if err != nil {
		return err
	}
	if f.Role() != RoleUser {
		return refuse(NotPossible, "%s is a standard KEP folder: it cannot be deleted", f.Name)
	}
	if err := needGrant(p, a, account.GrantDelete, "Deleting folders"); err != nil {
		return err
	}
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM mailbox_messages WHERE mailbox_id = ?`, f.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return refuse(NotPossible, "%s holds %d message(s): delete or move them first", f.Name, n)
		}
		_, err := tx.Exec(ctx, `DELETE FROM mailboxes WHERE id = ?`, f.ID)
		return err
	})
	if err == nil {
		s.Hub.Notify(a.ID, f.ID)
	}
	return err
}
