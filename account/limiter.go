package account

import (
	"sync"
	"time"
)

// Limiter slows down password guessing: after a few failed logins for one
// user name or from one remote address, further attempts are refused for a
// period that doubles with each failure (capped), whether the password is
// right or not. A success clears the user name's record.
type Limiter struct {
	Free    int           // failures allowed before back-off starts
	Base    time.Duration // first back-off
	Max     time.Duration // longest back-off
	mu      sync.Mutex
	entries map[string]*limitEntry
	now     func() time.Time
}

type limitEntry struct {
	failures int
	until    time.Time
	last     time.Time
}

// NewLimiter returns a limiter with the defaults: 5 free failures, then 1 s,
// 2 s, 4 s … up to 15 minutes.
func NewLimiter(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{Free: 5, Base: time.Second, Max: 15 * time.Minute, entries: map[string]*limitEntry{}, now: now}
}

// Wait returns how long the keys must still wait; zero means try now.
func (l *Limiter) Wait(keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var d time.Duration
	for _, k := range keys {
		if e := l.entries[k]; e != nil && e.until.After(now) {
			if w := e.until.Sub(now); w > d {
				d = w
			}
		}
	}
	return d
}

// Fail records a failed attempt for each key.
func (l *Limiter) Fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		e := l.entries[k]
		if e == nil || now.Sub(e.last) > l.Max*2 {
			e = &limitEntry{}
			l.entries[k] = e
		}
		e.failures++
		e.last = now
		if over := e.failures - l.Free; over > 0 {
			d := l.Base << min(over-1, 20)
			if d > l.Max || d <= 0 {
				d = l.Max
			}
			e.until = now.Add(d)
		}
	}
	if len(l.entries) > 100000 { // forget stale entries
		for k, e := range l.entries {
			if now.Sub(e.last) > l.Max*2 {
				delete(l.entries, k)
			}
		}
	}
}

// Succeed clears the record of key.
func (l *Limiter) Succeed(key string) {
	l.mu.Lock()
	delete(l.entries, key)
	l.mu.Unlock()
}
