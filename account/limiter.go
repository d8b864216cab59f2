package account

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/kephs/kep/store"
)

// Limiter slows down password guessing without becoming a way to lock
// people out (docs/security.md, "Login back-off"). Its state lives in the
// store, so that it survives restarts and is shared by every node of a
// provider. Three counters see each wrong password:
//
//   - the pair (user, source address): after PairFree failures every
//     further attempt of that pair waits, the wait doubling from Base up to
//     Max. One person's typos therefore slow down only that person at that
//     address: a colleague behind the same NAT is not touched.
//   - the user, over all sources (UserFree, much higher): distributed
//     guessing against one named user;
//   - the source, over all users (SourceFree, much higher still): one
//     address guessing many users.
//
// The user and source limits never apply to a user logging in from an
// address they have logged in from successfully before ("known"), and a
// known pair in back-off may still try its correct password until
// KnownHard failures: an attacker elsewhere cannot lock a user out, and an
// attacker at the same address gets a bounded number of guesses.
//
// A source is the IP address; IPv6 addresses count by their /64. Keys are
// stored as truncated SHA-256 digests, never as user names or addresses.
type Limiter struct {
	DB         *store.DB
	PairFree   int           // failures of one (user, source) before back-off
	UserFree   int           // failures of one user from unknown sources before back-off
	SourceFree int           // failures from one source before back-off
	KnownHard  int           // failures after which even a known pair waits
	Base       time.Duration // first back-off
	Max        time.Duration // longest back-off; failures older than 2×Max are forgotten
	// Write runs the limiter's writes. The node passes its log's group
	// commit, through which every frequent write goes, so that a login
	// never races the log's writer for SQLite's lock (a deferred write
	// there fails at once with SQLITE_BUSY instead of waiting). Nil writes
	// straight to DB. The writes are idempotent: a retried batch may run
	// them twice.
	Write func(ctx context.Context, fn func(ctx context.Context, tx *store.Tx) error) error
	now   func() time.Time
	known sync.Map // string(pair key) → struct{}: pairs known to have logged in (never forgotten)
}

// NewLimiter returns a limiter over db with the defaults: 5 failures per
// (user, source), 50 per user and 200 per source before back-off, which
// starts at 1 s and doubles up to 15 minutes; a known pair is cut off after
// 30.
func NewLimiter(db *store.DB, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{DB: db, PairFree: 5, UserFree: 50, SourceFree: 200, KnownHard: 30,
		Base: time.Second, Max: 15 * time.Minute, now: now}
}

// ThrottledError says how long a login must wait.
type ThrottledError struct {
	Wait time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins: try again in %s", e.RetryAfter())
}

// RetryAfter is how long a throttled login must wait (rounded up to whole
// seconds), or zero when err is not a throttled login.
func RetryAfter(err error) time.Duration {
	var te *ThrottledError
	if errors.As(err, &te) {
		return te.RetryAfter()
	}
	return 0
}

func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// RetryAfter is the wait rounded up to whole seconds, as replies show it.
func (e *ThrottledError) RetryAfter() time.Duration {
	return (e.Wait + time.Second - 1).Truncate(time.Second)
}

// Source is the part of a remote address (host:port or host) that the
// limiter counts by: the IP address, or its /64 for IPv6.
func Source(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

type limitKeys struct{ pair, user, source []byte }

func keyOf(parts ...string) []byte {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return h[:16]
}

func makeKeys(user, source string) limitKeys {
	return limitKeys{pair: keyOf("pair", user, source), user: keyOf("user", user), source: keyOf("source", source)}
}

type counter struct {
	failures int
	last     time.Time
	until    time.Time
}

func (l *Limiter) read(ctx context.Context, key []byte) (counter, error) {
	var c counter
	var last, until int64
	err := l.DB.Q().QueryRow(ctx, `SELECT failures, last_at, until_at FROM login_failures WHERE key = ?`, key).Scan(&c.failures, &last, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return counter{}, nil
	}
	if err != nil {
		return counter{}, err
	}
	c.last, c.until = store.FromMillis(last), store.FromMillis(until)
	if l.now().Sub(c.last) > 2*l.Max {
		return counter{}, nil // forgotten
	}
	return c, nil
}

func (l *Limiter) isKnown(ctx context.Context, k limitKeys) (bool, error) {
	if _, ok := l.known.Load(string(k.pair)); ok {
		return true, nil
	}
	var n int
	if err := l.DB.Q().QueryRow(ctx, `SELECT COUNT(*) FROM login_known WHERE key = ?`, k.pair).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		l.known.Store(string(k.pair), struct{}{})
	}
	return n > 0, nil
}

func (l *Limiter) write(ctx context.Context, fn func(ctx context.Context, tx *store.Tx) error) error {
	if l.Write != nil {
		return l.Write(ctx, fn)
	}
	return l.DB.InTx(ctx, func(tx *store.Tx) error { return fn(ctx, tx) })
}

// gate is what the limiter knows of a login attempt before its password
// is verified.
type gate struct {
	wait   time.Duration // zero: go ahead
	known  bool          // the pair has logged in before
	failed bool          // the pair has failures on record
}

// check is the decision before a password is verified.
func (l *Limiter) check(ctx context.Context, k limitKeys) (gate, error) {
	now := l.now()
	known, err := l.isKnown(ctx, k)
	if err != nil {
		return gate{}, err
	}
	pair, err := l.read(ctx, k.pair)
	if err != nil {
		return gate{}, err
	}
	wait := time.Duration(0)
	if pair.until.After(now) && (!known || pair.failures >= l.KnownHard) {
		wait = pair.until.Sub(now)
	}
	if !known {
		for _, key := range [][]byte{k.user, k.source} {
			c, err := l.read(ctx, key)
			if err != nil {
				return gate{}, err
			}
			if c.until.After(now) && c.until.Sub(now) > wait {
				wait = c.until.Sub(now)
			}
		}
	}
	return gate{wait: wait, known: known, failed: pair.failures > 0}, nil
}

// fail counts a wrong password against the pair, and, for an unknown pair,
// against the user and the source.
func (l *Limiter) fail(ctx context.Context, k limitKeys, g gate) error {
	if err := l.bump(ctx, k.pair, l.PairFree); err != nil {
		return err
	}
	if g.known {
		return nil
	}
	if err := l.bump(ctx, k.user, l.UserFree); err != nil {
		return err
	}
	return l.bump(ctx, k.source, l.SourceFree)
}

func (l *Limiter) bump(ctx context.Context, key []byte, free int) error {
	now := l.now()
	c, err := l.read(ctx, key)
	if err != nil {
		return err
	}
	c.failures++
	c.last = now
	if over := c.failures - free; over > 0 {
		d := l.Base << min(over-1, 20)
		if d > l.Max || d <= 0 {
			d = l.Max
		}
		c.until = now.Add(d)
	}
	return l.write(ctx, func(ctx context.Context, q *store.Tx) error {
		_, err := q.Exec(ctx, `INSERT INTO login_failures (key, failures, last_at, until_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at, until_at = excluded.until_at`,
			key, c.failures, store.Millis(c.last), store.Millis(c.until))
		return err
	})
}

// succeed clears the pair's failures and remembers the pair as known.
func (l *Limiter) succeed(ctx context.Context, k limitKeys, g gate) error {
	if !g.failed && g.known {
		return nil // the common case writes nothing
	}
	now := store.Millis(l.now())
	err := l.write(ctx, func(ctx context.Context, q *store.Tx) error {
		if g.failed {
			if _, err := q.Exec(ctx, `DELETE FROM login_failures WHERE key = ?`, k.pair); err != nil {
				return err
			}
		}
		if !g.known {
			if _, err := q.Exec(ctx, `INSERT INTO login_known (key, at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, k.pair, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		l.known.Store(string(k.pair), struct{}{})
	}
	return err
}
