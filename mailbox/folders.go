// Package mailbox is in charge of what accounts hold: their folders (INBOX,
// Sent, Delil, Drafts, Trash, Archive), the messages in them with stable
// IMAP UIDs and flags, quota accounting and notices, content deletion that
// keeps evidence, delivery of accepted messages into recipients' mailboxes
// with delivery evidence (40/41), and the retrieval events — read (60) and
// deemed read (61) — that every front-end (IMAP, web, API) reports through
// the same calls.
//
// It is also where the rules live about what a principal (account.Principal:
// a holder, an operator with grants, an API token) may do with a folder, a
// message or an evidence: list, read, set flags, copy, move, delete,
// archive, append, user folders, evidence lists. Front-ends call the
// principal-taking methods (access.go, actions.go, retrieve.go,
// evidencelist.go) and only translate their answers; the grant each change
// needs, and the decisions behind them, are in access.go and
// docs/mailbox-rules.md. Folders are identified by Role.
package mailbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/store"
)

// Folder names. Delil (the evidence box, "Delil Kutusu") holds the evidence
// of what the account sent, never mixed into the INBOX.
const (
	Inbox   = "INBOX"
	Sent    = "Sent"
	Delil   = "Delil"
	Drafts  = "Drafts"
	Trash   = "Trash"
	Archive = "Archive"
)

// Folders lists the folders every account has, in display order.
var Folders = []string{Inbox, Sent, Delil, Drafts, Trash, Archive}

// Kind says what a mailbox message is.
type Kind string

const (
	KindKEP      Kind = "kep"      // a KEP message delivered in the provider's envelope
	KindSent     Kind = "sent"     // the sender's copy of their signed original
	KindEvidence Kind = "evidence" // an evidence item in Delil, rendered from the evidence store
	KindNotice   Kind = "notice"   // a notice from the provider (quota)
	KindDraft    Kind = "draft"    // a draft appended by a client
	// KindCopy is a message a client appended to Sent or a user folder
	// that matches no KEP message of the account: a plain user copy, not
	// attested by the provider.
	KindCopy Kind = "copy"
)

// Folder is one mailbox of an account.
type Folder struct {
	ID          int64
	AccountID   int64
	Name        string
	UIDValidity uint32
	UIDNext     uint32
	ModSeq      int64
}

// ErrNoFolder is returned for a folder that does not exist.
var ErrNoFolder = errors.New("no such folder")

// EnsureFolders creates the standard folders of an account when missing.
// UIDVALIDITY is taken from the clock once and never changes afterwards, so
// UIDs stay valid across restarts (RFC 9051 §2.3.1.1).
func EnsureFolders(ctx context.Context, q store.Querier, accountID int64, now time.Time) error {
	var n int
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM mailboxes WHERE account_id = ?`, accountID).Scan(&n); err != nil {
		return store.MapErr(err)
	}
	if n >= len(Folders) {
		return nil
	}
	validity := uint32(now.Unix())
	for _, name := range Folders {
		if _, err := q.Exec(ctx, `INSERT INTO mailboxes (account_id, name, uidvalidity, uidnext, modseq) VALUES (?, ?, ?, 1, 1) ON CONFLICT DO NOTHING`,
			accountID, name, int64(validity)); err != nil {
			return err
		}
	}
	return nil
}

func scanFolder(s interface{ Scan(...any) error }) (*Folder, error) {
	var f Folder
	var validity, next int64
	if err := s.Scan(&f.ID, &f.AccountID, &f.Name, &validity, &next, &f.ModSeq); err != nil {
		return nil, store.MapErr(err)
	}
	f.UIDValidity, f.UIDNext = uint32(validity), uint32(next)
	return &f, nil
}

const folderCols = `id, account_id, name, uidvalidity, uidnext, modseq FROM mailboxes`

// GetFolder returns an account's folder by name (INBOX case-insensitively).
func GetFolder(ctx context.Context, q store.Querier, accountID int64, name string) (*Folder, error) {
	if strings.EqualFold(name, Inbox) {
		name = Inbox
	}
	f, err := scanFolder(q.QueryRow(ctx, `SELECT `+folderCols+` WHERE account_id = ? AND name = ?`, accountID, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoFolder, name)
	}
	return f, err
}

// GetFolderByID returns a folder by id.
func GetFolderByID(ctx context.Context, q store.Querier, id int64) (*Folder, error) {
	return scanFolder(q.QueryRow(ctx, `SELECT `+folderCols+` WHERE id = ?`, id))
}

// ListFolders returns an account's folders in display order.
func ListFolders(ctx context.Context, q store.Querier, accountID int64) ([]*Folder, error) {
	rows, err := q.Query(ctx, `SELECT `+folderCols+` WHERE account_id = ?`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byName := map[string]*Folder{}
	var extra []*Folder
	for rows.Next() {
		f, err := scanFolder(rows)
		if err != nil {
			return nil, err
		}
		byName[f.Name] = f
		extra = append(extra, f)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []*Folder
	for _, n := range Folders {
		if f := byName[n]; f != nil {
			out = append(out, f)
		}
	}
	for _, f := range extra {
		if !isStandard(f.Name) {
			out = append(out, f)
		}
	}
	return out, nil
}

func isStandard(name string) bool {
	for _, n := range Folders {
		if n == name {
			return true
		}
	}
	return false
}

// Message is one message in a folder.
type Message struct {
	ID         int64
	FolderID   int64
	UID        uint32
	Kind       Kind
	MessageID  int64 // the KEP message (messages.id), 0 for notices and drafts
	DeliveryID int64 // the recipient's delivery row, for KEP messages in INBOX
	// Ref is, for an evidence item, the evidence's leaf index; for a
	// quota notice, the level (80, 90, 100); -1 otherwise.
	Ref          int64
	Content      blob.Digest
	HasContent   bool
	Size         int64 // -1 for an evidence item not rendered yet
	InternalDate time.Time
	Flags        []string
	ModSeq       int64
}

// New describes a message to put into a folder.
type New struct {
	Kind         Kind
	MessageID    int64
	DeliveryID   int64
	Ref          int64 // see Message.Ref
	Content      *blob.Digest
	Size         int64
	InternalDate time.Time
	Flags        []string
	// Charged says the caller charged the account's quota already.
	Charged bool
}

// countsToQuota says which kinds use the account's quota: what the account
// holds of its own or received; evidence items and provider notices do not.
func countsToQuota(k Kind) bool {
	return k == KindKEP || k == KindSent || k == KindDraft || k == KindCopy
}

// Append puts a message into a folder and returns its UID. It takes a
// reference on the content blob and charges the account's quota.
func Append(ctx context.Context, q store.Querier, f *Folder, m New) (uint32, error) {
	var uid int64
	var modseq int64
	if err := q.QueryRow(ctx, `UPDATE mailboxes SET uidnext = uidnext + 1, modseq = modseq + 1 WHERE id = ? RETURNING uidnext - 1, modseq`, f.ID).Scan(&uid, &modseq); err != nil {
		return 0, store.MapErr(err)
	}
	var content any
	if m.Content != nil {
		content = m.Content[:]
	}
	var seq any
	if m.Kind == KindEvidence || m.Kind == KindNotice {
		seq = m.Ref
	}
	if _, err := q.Exec(ctx, `INSERT INTO mailbox_messages (mailbox_id, uid, kind, message_id, delivery_id, ref, content, size, internal_date, flags, modseq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, uid, string(m.Kind), nullID(m.MessageID), nullID(m.DeliveryID), seq, content, m.Size, store.Millis(m.InternalDate), joinFlags(m.Flags), modseq); err != nil {
		return 0, err
	}
	if countsToQuota(m.Kind) && !m.Charged {
		if _, err := store.AddAccountUsage(ctx, q, f.AccountID, m.Size); err != nil {
			return 0, err
		}
	}
	return uint32(uid), nil
}

// AppendEvidence puts evidence items (leaf indexes seqs, at their event
// times) into a folder with consecutive UIDs: one statement takes the UIDs,
// one inserts the rows, whatever their number.
func AppendEvidence(ctx context.Context, q store.Querier, f *Folder, seqs []int64, at []time.Time) error {
	if len(seqs) == 0 {
		return nil
	}
	var first, modseq int64
	if err := q.QueryRow(ctx, `UPDATE mailboxes SET uidnext = uidnext + ?, modseq = modseq + 1 WHERE id = ? RETURNING uidnext - ?, modseq`,
		len(seqs), f.ID, len(seqs)).Scan(&first, &modseq); err != nil {
		return store.MapErr(err)
	}
	const chunk = 100
	for start := 0; start < len(seqs); start += chunk {
		end := min(start+chunk, len(seqs))
		var b strings.Builder
		b.WriteString(`INSERT INTO mailbox_messages (mailbox_id, uid, kind, ref, size, internal_date, flags, modseq) VALUES `)
		args := make([]any, 0, 8*(end-start))
		for i := start; i < end; i++ {
			if i > start {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, ?, ?, -1, ?, '', ?)")
			args = append(args, f.ID, first+int64(i), string(KindEvidence), seqs[i], store.Millis(at[i]), modseq)
		}
		if _, err := q.Exec(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Unused reports whether no folder holds the blob d and no queued
// delivery needs it: it may leave the content store. Use counts are not
// kept: they are read from the rows that hold the blob (an index on
// mailbox_messages.content and one on messages.digest).
func Unused(ctx context.Context, q store.Querier, d blob.Digest) (bool, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM mailbox_messages WHERE content = ? LIMIT 1) x`, d[:]).Scan(&n)
	if err != nil || n > 0 {
		return false, store.MapErr(err)
	}
	err = q.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM messages m JOIN deliveries d ON d.message_id = m.id WHERE m.digest = ? AND d.state = 'queued' LIMIT 1) x`, d[:]).Scan(&n)
	return err == nil && n == 0, store.MapErr(err)
}

func joinFlags(fs []string) string { return strings.Join(fs, " ") }

func splitFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

const msgCols = `id, mailbox_id, uid, kind, COALESCE(message_id, 0), COALESCE(delivery_id, 0), COALESCE(ref, -1), content, size, internal_date, flags, modseq FROM mailbox_messages`

func scanMessage(s interface{ Scan(...any) error }) (*Message, error) {
	var m Message
	var uid, date int64
	var kind, flags string
	var content []byte
	if err := s.Scan(&m.ID, &m.FolderID, &uid, &kind, &m.MessageID, &m.DeliveryID, &m.Ref, &content, &m.Size, &date, &flags, &m.ModSeq); err != nil {
		return nil, store.MapErr(err)
	}
	m.UID, m.Kind, m.InternalDate, m.Flags = uint32(uid), Kind(kind), store.FromMillis(date), splitFlags(flags)
	if len(content) == len(m.Content) {
		copy(m.Content[:], content)
		m.HasContent = true
	}
	return &m, nil
}

// ListMessages returns a folder's messages in UID order.
func ListMessages(ctx context.Context, q store.Querier, folderID int64) ([]*Message, error) {
	rows, err := q.Query(ctx, `SELECT `+msgCols+` WHERE mailbox_id = ? ORDER BY uid`, folderID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// GetMessage returns one message by folder and UID.
func GetMessage(ctx context.Context, q store.Querier, folderID int64, uid uint32) (*Message, error) {
	return scanMessage(q.QueryRow(ctx, `SELECT `+msgCols+` WHERE mailbox_id = ? AND uid = ?`, folderID, int64(uid)))
}

// SetFlags replaces a message's flags.
func SetFlags(ctx context.Context, q store.Querier, folderID int64, uid uint32, flags []string) error {
	var modseq int64
	if err := q.QueryRow(ctx, `UPDATE mailboxes SET modseq = modseq + 1 WHERE id = ? RETURNING modseq`, folderID).Scan(&modseq); err != nil {
		return store.MapErr(err)
	}
	_, err := q.Exec(ctx, `UPDATE mailbox_messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?`, joinFlags(flags), modseq, folderID, int64(uid))
	return err
}

// Counts returns the number of messages, unseen messages and their size in
// a folder.
func Counts(ctx context.Context, q store.Querier, folderID int64) (total, unseen int, size int64, err error) {
	err = q.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN flags LIKE '%\Seen%' THEN 0 ELSE 1 END), 0), COALESCE(SUM(size), 0) FROM mailbox_messages WHERE mailbox_id = ?`, folderID).
		Scan(&total, &unseen, &size)
	return total, unseen, size, store.MapErr(err)
}

// Remove deletes messages from a folder (EXPUNGE): their rows go, the
// account's usage drops, and content blobs no folder holds any more are
// returned for deletion from the content store after the transaction
// commits. Evidence about the messages is untouched.
func Remove(ctx context.Context, q store.Querier, f *Folder, uids []uint32) (unused []blob.Digest, err error) {
	for _, uid := range uids {
		m, err := GetMessage(ctx, q, f.ID, uid)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if _, err := q.Exec(ctx, `DELETE FROM mailbox_messages WHERE id = ?`, m.ID); err != nil {
			return nil, err
		}
		if countsToQuota(m.Kind) {
			if _, err := store.AddAccountUsage(ctx, q, f.AccountID, -m.Size); err != nil {
				return nil, err
			}
		}
		if m.HasContent {
			free, err := Unused(ctx, q, m.Content)
			if err != nil {
				return nil, err
			}
			if free {
				unused = append(unused, m.Content)
			}
		}
	}
	if len(uids) > 0 {
		if _, err := q.Exec(ctx, `UPDATE mailboxes SET modseq = modseq + 1 WHERE id = ?`, f.ID); err != nil {
			return nil, err
		}
	}
	return unused, nil
}

// CopyMessage copies a message into another folder of the same account and
// returns the new UID.
func CopyMessage(ctx context.Context, q store.Querier, m *Message, to *Folder) (uint32, error) {
	n := New{Kind: m.Kind, MessageID: m.MessageID, DeliveryID: m.DeliveryID, Ref: m.Ref, Size: m.Size, InternalDate: m.InternalDate, Flags: m.Flags}
	if m.HasContent {
		c := m.Content
		n.Content = &c
	}
	return Append(ctx, q, to, n)
}
