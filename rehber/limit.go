package rehber

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kephs/kep/store"
)

// Budget is how many lookups one key may make per window.
type Budget struct {
	Max    int
	Window time.Duration
}

// Limits are the lookup budgets. They are apart from the login back-off
// (account.Limiter): a person who looks up many numbers is not locked out
// of their mailbox, and a guessed password does not spend Rehber budget.
type Limits struct {
	Principal Budget // TCKN lookups per authenticated principal
	Source    Budget // TCKN lookups per source address (IP, IPv6 /64), over all principals
	Peer      Budget // queries per peer provider (organisations and persons)
	Public    Budget // organisation queries per source address
}

// DefaultLimits: 30 TCKN lookups an hour per principal and 100 per source
// address; 6000 queries an hour per peer provider; 600 organisation
// queries an hour per source address.
var DefaultLimits = Limits{
	Principal: Budget{Max: 30, Window: time.Hour},
	Source:    Budget{Max: 100, Window: time.Hour},
	Peer:      Budget{Max: 6000, Window: time.Hour},
	Public:    Budget{Max: 600, Window: time.Hour},
}

// ErrRateLimited is matched by every *RateLimitedError.
var ErrRateLimited = errors.New("rehber: lookup budget spent")

// RateLimitedError says which budget is spent and when it refills.
type RateLimitedError struct {
	Budget string // "principal", "source", "peer", "public"
	Wait   time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many KEP Rehberi lookups (%s budget): try again in %s", e.Budget, e.RetryAfter())
}

func (e *RateLimitedError) Unwrap() error { return ErrRateLimited }

// RetryAfter is the wait rounded up to whole seconds.
func (e *RateLimitedError) RetryAfter() time.Duration {
	return (e.Wait + time.Second - 1).Truncate(time.Second)
}

func limitKey(kind, id string) []byte {
	h := sha256.Sum256([]byte("rehber\x00" + kind + "\x00" + strings.ToLower(id)))
	return h[:16]
}

// spend takes one lookup from the budget of (kind, id). The counter is a
// fixed window, bumped in one statement so that nodes sharing PostgreSQL
// count together. A refused attempt counts too: hammering does not refill
// the budget sooner, the window's end does.
func spend(ctx context.Context, db *store.DB, now time.Time, kind, id string, b Budget) error {
	if b.Max <= 0 {
		return nil
	}
	n := store.Millis(now)
	expired := store.Millis(now.Add(-b.Window))
	var used int
	var start int64
	err := db.Q().QueryRow(ctx, `INSERT INTO rehber_limits (key, window_start, used) VALUES (?, ?, 1)
		ON CONFLICT (key) DO UPDATE SET
			used = CASE WHEN rehber_limits.window_start <= ? THEN 1 ELSE rehber_limits.used + 1 END,
			window_start = CASE WHEN rehber_limits.window_start <= ? THEN ? ELSE rehber_limits.window_start END
		RETURNING used, window_start`, limitKey(kind, id), n, expired, expired, n).Scan(&used, &start)
	if err != nil {
		return fmt.Errorf("rehber: rate limit: %w", err)
	}
	if used > b.Max {
		return &RateLimitedError{Budget: kind, Wait: store.FromMillis(start).Add(b.Window).Sub(now)}
	}
	return nil
}
