package evidence

// Verification caching for a verifier that checks many bundles of one
// issuer in a row (a provider receiving another provider's returned
// evidence, docs/relay.md): the bundles of one checkpoint share its signed
// note and its RFC 3161 time stamp, so these are checked once per
// checkpoint, not once per bundle. Each evidence's own XAdES signature,
// certificate chain and inclusion proof are still checked every time.

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/tlog"
	"github.com/kephs/kep/tsa"
)

// VerifyCache remembers checkpoints and time stamps that verified, for
// Anchors.Cache. Only successes are kept, for at most cacheTTL, and at most
// cacheMax of each. The zero value is ready; it is safe for concurrent use.
type VerifyCache struct {
	mu     sync.Mutex
	cps    map[cpKey]cpEntry
	stamps map[stampKey]stampEntry
}

const (
	cacheTTL = 10 * time.Minute
	cacheMax = 256
)

type cpKey struct {
	note [32]byte
	key  string
}

type cpEntry struct {
	origin string
	size   int64
	root   tlog.Hash
	at     time.Time
}

type stampKey struct {
	resp, checkpoint [32]byte
	roots            *x509.CertPool
	policy           cms.Policy
}

type stampEntry struct {
	tok *tsa.Token
	at  time.Time
}

// openCheckpoint is tlog.OpenCheckpoint, remembered when c is not nil.
func (c *VerifyCache) openCheckpoint(signed []byte, vkey string) (string, int64, tlog.Hash, error) {
	if c == nil {
		return tlog.OpenCheckpoint(signed, vkey)
	}
	k := cpKey{sha256.Sum256(signed), vkey}
	now := time.Now()
	c.mu.Lock()
	e, ok := c.cps[k]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < cacheTTL {
		return e.origin, e.size, e.root, nil
	}
	origin, size, root, err := tlog.OpenCheckpoint(signed, vkey)
	if err == nil {
		c.mu.Lock()
		if c.cps == nil || len(c.cps) >= cacheMax {
			c.cps = map[cpKey]cpEntry{}
		}
		c.cps[k] = cpEntry{origin, size, root, now}
		c.mu.Unlock()
	}
	return origin, size, root, err
}

// verifyStamp is verifyStamp, remembered when c is not nil. The token
// returned may be shared: callers only read it.
func (c *VerifyCache) verifyStamp(resp, checkpoint []byte, roots *x509.CertPool, p cms.Policy) (*tsa.Token, error) {
	if c == nil || roots == nil {
		return verifyStamp(resp, checkpoint, roots, p)
	}
	k := stampKey{sha256.Sum256(resp), sha256.Sum256(checkpoint), roots, p}
	now := time.Now()
	c.mu.Lock()
	e, ok := c.stamps[k]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < cacheTTL {
		return e.tok, nil
	}
	tok, err := verifyStamp(resp, checkpoint, roots, p)
	if err == nil {
		c.mu.Lock()
		if c.stamps == nil || len(c.stamps) >= cacheMax {
			c.stamps = map[stampKey]stampEntry{}
		}
		c.stamps[k] = stampEntry{tok, now}
		c.mu.Unlock()
	}
	return tok, err
}
