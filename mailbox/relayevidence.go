package mailbox

// Evidence from another provider about a message of ours (docs/relay.md,
// "At the sender's provider"): kept unchanged in foreign_evidence, its
// receipt logged as a leaf of our own log (kind receipt, tlog.ReceiptDocument),
// the recipient's transport state moved on, and an item placed in the
// sender's Delil folder — all in one transaction of the log's group commit.
// Package relay verifies the bundle against the directory before it calls
// here.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

var errNoBundler = errors.New("mailbox: no bundle maker configured (Service.Bundle)")

// ForeignEvidence is an evidence bundle another provider returned,
// verified by the reception point.
type ForeignEvidence struct {
	Provider         string             // the issuing provider (hsNN)
	Bundle           []byte             // exactly as received
	Evidence         *evidence.Evidence // parsed from the verified bundle
	OriginalEvidence string             // our acceptance evidence 10 it concerns (X-KEP-Original-Evidence)
	To               string             // the original sender (RCPT TO)
}

// ForeignResult says where a returned evidence went.
type ForeignResult struct {
	Seq       int64 // leaf index of its receipt
	MessageID int64
	Duplicate bool // received before: nothing new was stored
}

// ErrForeignUnknown: the returned evidence names no message of ours sent
// by its addressee, or a recipient that message does not have.
var ErrForeignUnknown = errors.New("mailbox: the returned evidence concerns no message of ours")

// StoreForeignEvidence stores a returned evidence. A second copy of the
// same evidence (a retransmission) stores nothing.
func (s *Service) StoreForeignEvidence(ctx context.Context, fe *ForeignEvidence) (*ForeignResult, error) {
	s.init()
	e := fe.Evidence
	q := s.DB.Q()
	var prev ForeignResult
	err := q.QueryRow(ctx, `SELECT seq, message_id FROM foreign_evidence WHERE evidence_id = ?`, e.ID).Scan(&prev.Seq, &prev.MessageID)
	if err == nil {
		prev.Duplicate = true
		return &prev, nil
	} else if !errors.Is(store.MapErr(err), store.ErrNotFound) {
		return nil, err
	}
	var msgID, accountID int64
	var from string
	var digest []byte
	// Through the evidence table's unique id (messages.evidence_id has no
	// index: a scan per returned evidence grew with the table).
	err = q.QueryRow(ctx, `SELECT m.id, m.sender_account, m.from_addr, m.digest FROM evidence e JOIN messages m ON m.id = e.message_id
		WHERE e.id = ? AND m.evidence_id = e.id AND m.sender_account IS NOT NULL`,
		fe.OriginalEvidence).Scan(&msgID, &accountID, &from, &digest)
	if errors.Is(store.MapErr(err), store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no message accepted here with evidence %s", ErrForeignUnknown, fe.OriginalEvidence)
	}
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(from, fe.To) || !strings.EqualFold(e.Sender.Address, from) {
		return nil, fmt.Errorf("%w: message %s was sent by another address than <%s>", ErrForeignUnknown, fe.OriginalEvidence, fe.To)
	}
	if len(e.Message.Digest) > 0 && !bytes.Equal(e.Message.Digest, digest) {
		return nil, fmt.Errorf("%w: the evidence states another digest of the original than message %s has", ErrForeignUnknown, fe.OriginalEvidence)
	}
	if len(e.Recipients) != 1 {
		return nil, fmt.Errorf("%w: the evidence names %d recipients, not one", ErrForeignUnknown, len(e.Recipients))
	}
	rcpt := strings.ToLower(e.Recipients[0].Address)
	var deliveryID int64
	err = q.QueryRow(ctx, `SELECT id FROM deliveries WHERE message_id = ? AND recipient = ?`, msgID, rcpt).Scan(&deliveryID)
	if errors.Is(store.MapErr(err), store.ErrNotFound) {
		return nil, fmt.Errorf("%w: message %s has no recipient <%s>", ErrForeignUnknown, fe.OriginalEvidence, rcpt)
	}
	if err != nil {
		return nil, err
	}
	now := s.now().Truncate(time.Millisecond)
	doc := tlog.ReceiptDocument(fe.Provider, e.ID, fe.Bundle, now)
	res := &ForeignResult{MessageID: msgID}
	var folderID int64
	seq, err := s.Issuer.Log.Append(ctx, [][32]byte{tlog.EntryFor(doc)}, func(ctx context.Context, tx *store.Tx, first int64) error {
		if _, err := tx.Exec(ctx, `INSERT INTO foreign_evidence (seq, evidence_id, code, provider, message_id, account_id, recipient, event_time, received_at, bundle)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			first, e.ID, int(e.Code), fe.Provider, msgID, accountID, rcpt, store.Millis(e.EventTime), store.Millis(now), fe.Bundle); err != nil {
			return err
		}
		// A 31 of ours stands: what arrives after it is stored and shown,
		// but a settled recipient does not move (docs/relay.md, "Time-outs").
		switch e.Code {
		case evidence.Delivered:
			if _, err := tx.Exec(ctx, `UPDATE deliveries SET transport_state = ? WHERE id = ? AND transport_state IN (?, ?)`,
				string(queue.Delivered), deliveryID, string(queue.Pending), string(queue.Awaiting)); err != nil {
				return err
			}
		case evidence.RelayRejected, evidence.NotDelivered:
			reason := ""
			if len(e.Reasons) > 0 {
				reason = e.Reasons[0].Code
			}
			if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = ?, transport_state = ?, reason = ? WHERE id = ? AND transport_state IN (?, ?)`,
				string(Failed), string(queue.Failed), reason, deliveryID, string(queue.Pending), string(queue.Awaiting)); err != nil {
				return err
			}
		}
		f, err := s.folder(ctx, tx, accountID, Delil)
		if err != nil {
			return err
		}
		folderID = f.ID
		return AppendEvidence(ctx, tx, f, []int64{first}, []time.Time{e.EventTime})
	})
	if err != nil {
		return nil, err
	}
	res.Seq = seq
	s.Hub.Notify(accountID, folderID)
	return res, nil
}

// foreignItem is the evidence row and bundle of a Delil item whose leaf
// is the receipt of a returned evidence, for renderEvidenceItem.
func (s *Service) foreignItem(ctx context.Context, seq int64) (*evidence.Stored, []byte, error) {
	st := &evidence.Stored{Seq: seq}
	var code int
	var at int64
	var bundle []byte
	err := s.DB.Q().QueryRow(ctx, `SELECT evidence_id, code, account_id, message_id, recipient, event_time, bundle FROM foreign_evidence WHERE seq = ?`, seq).
		Scan(&st.ID, &code, &st.AccountID, &st.MessageID, &st.Subject, &at, &bundle)
	if err != nil {
		return nil, nil, store.MapErr(err)
	}
	st.Code, st.EventTime = evidence.Code(code), store.FromMillis(at)
	b, err := evidence.ParseBundle(bundle)
	if err != nil {
		return nil, nil, err
	}
	st.Document = b.Evidence
	return st, bundle, nil
}

// ForeignAuditEntries returns the receipt leaves with indexes in [start,
// end), recomputed from foreign_evidence, for `kep log verify` (merged with
// the evidence rows of the same range: tlog.AuditReader).
func ForeignAuditEntries(ctx context.Context, q store.Querier, start, end int64) ([]tlog.AuditEntry, error) {
	rows, err := q.Query(ctx, `SELECT seq, evidence_id, provider, received_at, bundle FROM foreign_evidence WHERE seq >= ? AND seq < ? ORDER BY seq`, start, end)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tlog.AuditEntry
	for rows.Next() {
		var e tlog.AuditEntry
		var provider string
		var at int64
		var bundle []byte
		if err := rows.Scan(&e.Seq, &e.ID, &provider, &at, &bundle); err != nil {
			return nil, err
		}
		e.Time = store.FromMillis(at)
		e.Document, e.Kind = tlog.ReceiptDocument(provider, e.ID, bundle, e.Time), tlog.LeafReceipt
		out = append(out, e)
	}
	return out, rows.Err()
}

// LogEntries returns the log entries of [start, end) of every leaf kind:
// evidence documents' digests and receipts' (ForeignAuditEntries), for the
// log's public entry bundles (tlog.Handler) in place of evidence.Entries
// once receipts are logged.
func LogEntries(ctx context.Context, q store.Querier, start, end int64) ([][]byte, error) {
	sts, err := evidence.Range(ctx, q, start, end)
	if err != nil {
		return nil, err
	}
	rs, err := ForeignAuditEntries(ctx, q, start, end)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, end-start)
	for _, st := range sts {
		e := tlog.EntryFor(st.Document)
		out[st.Seq-start] = e[:]
	}
	for _, r := range rs {
		e := tlog.EntryFor(r.Document)
		out[r.Seq-start] = e[:]
	}
	for i, e := range out {
		if e == nil {
			return nil, fmt.Errorf("mailbox: leaf %d is missing from the store", start+int64(i))
		}
	}
	return out, nil
}
