package account

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

// verifiedCache remembers, for a short while, that a password matched a
// stored argon2id hash, so that mail clients that connect again and again
// do not pay 19 MiB and tens of milliseconds each time. An entry is keyed by
// an HMAC (with a key made at start and never stored) of the user name, the
// password and the stored hash: a new password or a revoked app password
// has another stored hash, or none, so its old entries can never match.
// Nothing in it reveals a password.
type verifiedCache struct {
	once sync.Once
	key  []byte
	mu   sync.Mutex
	m    map[[32]byte]time.Time
	// flight holds the checks under way: the same user, password and hash
	// checked again meanwhile (sessions opened together) waits for that
	// one hashing instead of hashing again.
	flight map[[32]byte]*flightCheck
}

type flightCheck struct {
	done  chan struct{}
	match bool
	err   error
}

const (
	verifiedTTL = 10 * time.Minute
	verifiedMax = 100000
)

func (c *verifiedCache) sum(user, password, hash string) [32]byte {
	c.once.Do(func() {
		c.key = make([]byte, 32)
		rand.Read(c.key)
		c.m = map[[32]byte]time.Time{}
	})
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	h.Write([]byte{0})
	h.Write([]byte(hash))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// check reports whether password matches hash, from the cache when it can.
func (c *verifiedCache) check(user, password, hash string, now time.Time) (bool, error) {
	k := c.sum(user, password, hash)
	c.mu.Lock()
	exp, ok := c.m[k]
	c.mu.Unlock()
	if ok && now.Before(exp) {
		return true, nil
	}
	c.mu.Lock()
	if f := c.flight[k]; f != nil {
		c.mu.Unlock()
		<-f.done
		return f.match, f.err
	}
	if c.flight == nil {
		c.flight = map[[32]byte]*flightCheck{}
	}
	f := &flightCheck{done: make(chan struct{})}
	c.flight[k] = f
	c.mu.Unlock()
	f.match, f.err = CheckPassword(hash, password)
	c.mu.Lock()
	delete(c.flight, k)
	c.mu.Unlock()
	close(f.done)
	if f.err != nil || !f.match {
		return f.match, f.err
	}
	c.mu.Lock()
	if len(c.m) >= verifiedMax {
		for k, e := range c.m {
			if now.After(e) || len(c.m) >= verifiedMax {
				delete(c.m, k)
			}
		}
	}
	c.m[k] = now.Add(verifiedTTL)
	c.mu.Unlock()
	return true, nil
}
