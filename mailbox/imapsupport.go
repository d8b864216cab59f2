package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/store"
)

// Helpers for front-ends that keep a view of a folder (IMAP): range
// listing, the quota rule by kind, and making rendered messages immutable.

// CountsToQuota reports whether messages of this kind use the account's
// quota (what the account holds of its own or received; evidence items and
// provider notices do not).
func (k Kind) CountsToQuota() bool { return countsToQuota(k) }

// ListMessagesBetween returns a folder's messages with UIDs in [from, to],
// in UID order.
func ListMessagesBetween(ctx context.Context, q store.Querier, folderID int64, from, to uint32) ([]*Message, error) {
	rows, err := q.Query(ctx, `SELECT `+msgCols+` WHERE mailbox_id = ? AND uid >= ? AND uid <= ? ORDER BY uid`, folderID, int64(from), int64(to))
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

// GetMessageByID returns a mailbox message by its row id.
func GetMessageByID(ctx context.Context, q store.Querier, id int64) (*Message, error) {
	return scanMessage(q.QueryRow(ctx, `SELECT `+msgCols+` WHERE id = ?`, id))
}

// Materialize makes a rendered message — an evidence item in Delil or a
// provider notice, which have no stored content — immutable: the first
// time a front-end needs its bytes or size, they are rendered once, put in
// the content store and referenced from the row, and every later read
// returns exactly those bytes. IMAP requires it (RFC 9051 §2.3.1.1: a UID
// names one immutable message forever), and rendering alone does not
// guarantee it across configuration changes (the provider's name, the time
// zone, which the rendering shows). Messages that already have
// content are left as they are. When two front-ends materialize the same
// message at once, the first one's bytes win and m is reloaded.
func (s *Service) Materialize(ctx context.Context, m *Message) error {
	s.init()
	if m.HasContent {
		return nil
	}
	b, err := s.Content(ctx, m)
	if err != nil {
		return err
	}
	w, err := s.Blobs.Create()
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.Abort()
		return fmt.Errorf("store rendered message: %w", err)
	}
	d, gen, err := w.CommitDeferred()
	if err != nil {
		return err
	}
	if err := s.Blobs.Sync(gen); err != nil {
		return err
	}
	won := false
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE mailbox_messages SET content = ?, size = ? WHERE id = ? AND content IS NULL`, d[:], int64(len(b)), m.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		won = true
		return nil
	})
	if err != nil {
		return err
	}
	if won {
		m.Content, m.HasContent, m.Size = d, true, int64(len(b))
		return nil
	}
	// Someone else stored it first, or the message is gone. (Our blob is
	// the same bytes in the usual case; otherwise it stays unreferenced
	// rather than risk deleting a blob another writer is about to use.)
	cur, err := GetMessageByID(ctx, s.DB.Q(), m.ID)
	if err != nil {
		return err
	}
	if !cur.HasContent {
		return errors.New("mailbox: materialize: the message still has no content")
	}
	*m = *cur
	return nil
}

// Notifications returns the service's hub, creating it when the service
// has not run yet, for listeners that start before anything else (IMAP
// IDLE).
func (s *Service) Notifications() *Hub {
	s.init()
	return s.Hub
}

// ContentReader is a message's bytes, readable at any offset.
type ContentReader interface {
	io.ReaderAt
	io.Closer
}

// OpenContent returns the bytes Content returns for m, and their size,
// without loading stored messages into memory: a message kept as it is
// (a draft, the sender's copy, a materialized evidence item) is read from
// the content store; a KEP message's envelope is rendered in memory. Evidence
// items and notices are materialized first, so that their bytes never
// change.
func (s *Service) OpenContent(ctx context.Context, m *Message) (ContentReader, int64, error) {
	s.init()
	if rendersEnvelope(m) {
		b, err := s.Content(ctx, m)
		if err != nil {
			return nil, 0, err
		}
		return nopCloser{bytes.NewReader(b)}, int64(len(b)), nil
	}
	if err := s.Materialize(ctx, m); err != nil {
		return nil, 0, err
	}
	// Checked against its digest on every serve (blob.ErrMismatch).
	f, size, err := s.Blobs.OpenVerifiedAt(m.Content)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, 0, fmt.Errorf("the content of this message was deleted: %w", err)
	}
	if err != nil {
		return nil, 0, err
	}
	return f, size, nil
}

// ContentID names the bytes Content returns for m, for caches keyed by
// content: equal IDs are equal bytes. It is empty for a message not
// materialized yet.
func ContentID(m *Message) string {
	switch {
	case rendersEnvelope(m):
		return fmt.Sprintf("envelope:%d", m.MessageID)
	case m.HasContent:
		return "blob:" + m.Content.String()
	}
	return ""
}

// rendersEnvelope says whether Content renders m as the provider's
// envelope of a KEP message (the row holds the original).
func rendersEnvelope(m *Message) bool { return m.Kind == KindKEP && m.MessageID != 0 }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
