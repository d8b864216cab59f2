package api

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"
)

// Limits are the per-token rate limits (docs/api.md, "Rate limits"): a
// token bucket per token, holding at most Burst units and refilled at Rate
// units a second. Every request costs one unit and every message of a bulk
// call one more, so a bulk call of 1,000 messages needs 1,001 units. A
// request that finds too few is answered 429 with Retry-After: the seconds
// until the bucket holds enough.
type Limits struct {
	Rate  float64 // units a second
	Burst int     // the bucket's size; also bounds one bulk call
}

// DefaultLimits let one token send three full bulk calls (MaxBulk) at
// once and about 1,000 messages a second after that.
var DefaultLimits = Limits{Rate: 1000, Burst: 3 * MaxBulk}

func (s *Server) limits() Limits {
	l := s.Limits
	if l.Rate <= 0 {
		l.Rate = DefaultLimits.Rate
	}
	if l.Burst <= 0 {
		l.Burst = DefaultLimits.Burst
	}
	return l
}

type bucket struct {
	level float64
	at    time.Time
}

// buckets are the token buckets, by token id, on this node.
type buckets struct {
	mu sync.Mutex
	m  map[int64]*bucket
}

// spend takes cost units from the caller's bucket, or answers how long to
// wait.
func (s *Server) spend(c *call, cost int) error {
	if c.tok == nil {
		return nil
	}
	l, now := s.limits(), s.now()
	b := &s.buckets
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[int64]*bucket{}
	}
	k := b.m[c.tok.ID]
	if k == nil {
		k = &bucket{level: float64(l.Burst), at: now}
		b.m[c.tok.ID] = k
	}
	k.level = math.Min(float64(l.Burst), k.level+now.Sub(k.at).Seconds()*l.Rate)
	k.at = now
	if float64(cost) > float64(l.Burst) {
		return problemf(http.StatusRequestEntityTooLarge, "over-burst", "Request larger than the rate limit",
			fmt.Sprintf("Bu istek %d birim ister; anahtarın sınırı %d birim: daha küçük parçalar halinde gönderin.", cost, l.Burst),
			fmt.Sprintf("This request costs %d units and the token's bucket holds %d: send it in smaller parts.", cost, l.Burst))
	}
	if k.level < float64(cost) {
		wait := int(math.Ceil((float64(cost) - k.level) / l.Rate))
		if wait < 1 {
			wait = 1
		}
		p := problemf(http.StatusTooManyRequests, "rate-limited", "Too many requests",
			fmt.Sprintf("Bu API anahtarıyla çok fazla istek yapıldı; %d saniye sonra yeniden deneyin.", wait),
			fmt.Sprintf("Too many requests with this API token (%.0f units a second, %d at once); try again in %d seconds.", l.Rate, l.Burst, wait))
		p.RetryAfter = wait
		return p
	}
	k.level -= float64(cost)
	return nil
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
