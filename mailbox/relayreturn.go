package mailbox

// The receiving side of the relay sends each evidence it issues for a
// message from another provider back to that provider (docs/relay.md,
// "Evidence that crosses"). The Delil courier, which runs once evidence is
// covered by a checkpoint (so that its bundle can be made), enqueues one
// queue item of kind evidence_return per such evidence, in its own
// transaction; package relay claims the items and carries them
// (relay.Returner), with the queue's back-off, across restarts.

import (
	"context"
	"strings"
	"time"

	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// returnHorizon is how long an evidence return is tried before it is
// reported as late (the item's deadline_at; it is still tried after).
const returnHorizon = 7 * 24 * time.Hour

// enqueueReturns adds an evidence_return item for every evidence with leaf
// index in [start, end) about a message from another provider. It runs in
// the courier's transaction, so each is enqueued exactly once.
func enqueueReturns(ctx context.Context, tx *store.Tx, start, end int64, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO queue_items (kind, ref, created_at, attempts, next_at, warn_at, deadline_at, reason)
		SELECT ?, e.seq, ?, 0, ?, NULL, ?, '' FROM evidence e JOIN messages m ON m.id = e.message_id
		WHERE e.seq >= ? AND e.seq < ? AND m.origin_provider IS NOT NULL
		ON CONFLICT (kind, ref) DO NOTHING`,
		string(queue.KindEvidenceReturn), store.Millis(now), store.Millis(now), store.Millis(now.Add(returnHorizon)), start, end)
	return err
}

// ReturnItem is one claimed evidence return.
type ReturnItem struct {
	ID       int64
	Seq      int64 // the evidence's leaf index
	Attempts int
	Deadline time.Time
}

// EvidenceReturn is what travels back for one evidence.
type EvidenceReturn struct {
	Provider         string // the provider the message came from (hsNN)
	To               string // the original sender
	EvidenceID       string
	Code             int
	OriginalEvidence string // the id of that provider's acceptance evidence 10
	Bundle           []byte
}

// ClaimReturns claims up to limit evidence returns due at now for owner,
// for lease: should the node die, they fall due again after it.
func (s *Service) ClaimReturns(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]ReturnItem, error) {
	lock := ""
	if s.DB.Dialect == store.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	rows, err := s.DB.Q().Query(ctx, `UPDATE queue_items SET lease_owner = ?, next_at = ?
		WHERE id IN (SELECT id FROM queue_items WHERE next_at <= ? AND kind = '`+string(queue.KindEvidenceReturn)+`' ORDER BY next_at, id LIMIT ?`+lock+`)
		RETURNING id, ref, attempts, deadline_at`,
		owner, store.Millis(now.Add(lease)), store.Millis(now), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ReturnItem
	for rows.Next() {
		var it ReturnItem
		var dl int64
		if err := rows.Scan(&it.ID, &it.Seq, &it.Attempts, &dl); err != nil {
			return nil, err
		}
		it.Deadline = store.FromMillis(dl)
		out = append(out, it)
	}
	return out, rows.Err()
}

// ReturnLetter gathers what travels back for the evidence at leaf seq.
func (s *Service) ReturnLetter(ctx context.Context, seq int64) (*EvidenceReturn, error) {
	s.init()
	r := &EvidenceReturn{}
	err := s.DB.Q().QueryRow(ctx, `SELECT m.origin_provider, m.origin_evidence, m.from_addr, e.id, e.code
		FROM evidence e JOIN messages m ON m.id = e.message_id WHERE e.seq = ? AND m.origin_provider IS NOT NULL`, seq).
		Scan(&r.Provider, &r.OriginalEvidence, &r.To, &r.EvidenceID, &r.Code)
	if err != nil {
		return nil, store.MapErr(err)
	}
	if s.Bundle == nil {
		return nil, errNoBundler
	}
	if r.Bundle, err = s.Bundle(ctx, seq); err != nil {
		return nil, err
	}
	return r, nil
}

// ReturnDone ends an evidence return (sent, or given up for good).
func (s *Service) ReturnDone(ctx context.Context, id int64) error {
	_, err := s.DB.Q().Exec(ctx, `DELETE FROM queue_items WHERE id = ?`, id)
	return err
}

// ReturnsDone ends several evidence returns in one statement (a batch the
// Returner sent; should the node die before, they are sent again and the
// other provider answers a retransmission 250, storing nothing twice).
func (s *Service) ReturnsDone(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	_, err := s.DB.Q().Exec(ctx, `DELETE FROM queue_items WHERE id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, args...)
	return err
}

// ReturnRetry schedules the next attempt of an evidence return at next,
// with the failure's reason (for people; never personal data).
func (s *Service) ReturnRetry(ctx context.Context, id int64, next time.Time, reason string) error {
	_, err := s.DB.Q().Exec(ctx, `UPDATE queue_items SET attempts = attempts + 1, next_at = ?, lease_owner = NULL, reason = ? WHERE id = ?`,
		store.Millis(next), reason, id)
	return err
}
