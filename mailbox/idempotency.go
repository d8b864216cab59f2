package mailbox

// Idempotency keys of submissions (the REST API's bulk call; docs/api.md,
// "Retrying safely"): a client names each message with a key of its own;
// the key is recorded in the acceptance transaction (Accept), for the
// sending account, so that a retry finds the message accepted the first
// time instead of sending it twice. Keys are kept IdempotencyRetention.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/store"
)

// IdempotencyRetention is how long an idempotency key is remembered: a
// retry within it is answered with the first result; after it, the key
// may name a new message.
const IdempotencyRetention = 7 * 24 * time.Hour

// MaxIdempotencyKey is the longest key accepted, in bytes.
const MaxIdempotencyKey = 200

func recordIdempotencyKey(ctx context.Context, tx *store.Tx, sub *Submission, messageID int64, now time.Time) error {
	// One statement: a key past its retention that ExpireIdempotencyKeys
	// has not removed yet names nothing any more and is taken over; a live
	// one is a conflict.
	r, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (account_id, key, digest, message_id, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (account_id, key) DO UPDATE SET digest = excluded.digest, message_id = excluded.message_id, created_at = excluded.created_at
		WHERE idempotency_keys.created_at < ?`,
		sub.Sender.ID, sub.IdempotencyKey, sub.Original[:], messageID, store.Millis(now), store.Millis(now.Add(-IdempotencyRetention)))
	if err != nil {
		return err
	}
	if n, err := r.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("%w: idempotency key already used by the account", store.ErrConflict)
	}
	return nil
}

// Idempotent is a message accepted earlier under an idempotency key.
type Idempotent struct {
	Message *KEPMessage
	Digest  blob.Digest // of the bytes accepted under the key
}

// IdempotentSubmission returns the message account accountID sent under
// key within IdempotencyRetention, or nil when there is none.
func (s *Service) IdempotentSubmission(ctx context.Context, accountID int64, key string) (*Idempotent, error) {
	s.init()
	q := s.DB.Q()
	var id int64
	var digest []byte
	err := q.QueryRow(ctx, `SELECT message_id, digest FROM idempotency_keys WHERE account_id = ? AND key = ? AND created_at >= ?`,
		accountID, key, store.Millis(s.now().Add(-IdempotencyRetention))).Scan(&id, &digest)
	if errors.Is(store.MapErr(err), store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := GetKEPMessage(ctx, q, id)
	if err != nil {
		return nil, err
	}
	out := &Idempotent{Message: m}
	copy(out.Digest[:], digest)
	return out, nil
}

// ExpireIdempotencyKeys forgets keys older than IdempotencyRetention and
// says how many.
func (s *Service) ExpireIdempotencyKeys(ctx context.Context) (int64, error) {
	s.init()
	r, err := s.DB.Q().Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, store.Millis(s.now().Add(-IdempotencyRetention)))
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}
