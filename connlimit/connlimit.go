// Package connlimit is in charge of bounding what one client connection
// can hold of a server (issue 9, "Connections and back-off"): a cap on
// connections in all and per source address, each refused with a reply the
// protocol defines (the caller's Refuse), and deadlines per phase of a
// conversation on top of the whole session's, so that a client that
// trickles bytes or stops talking is cut at a known time.
//
// A read that timed out ends the conversation when Limits.EndOnTimeout is
// set: later reads fail too, so that the rest of a half-sent line is never
// read as a new command (the SMTP library reads the next line after a
// timeout in AUTH and answers DATA's timeout without closing).
//
// Every accepted connection carries an ID for the logs of its session.
package connlimit

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// Limits bound the connections of one listener. Zero values mean no limit.
type Limits struct {
	MaxConns   int // connections held at once, in all
	MaxPerAddr int // connections held at once from one IP address
	// Session bounds a whole connection, from accept to close.
	Session time.Duration
	// First bounds the first phase, from accept until the server starts
	// another (Conn.Phase): the TLS handshake of an implicit-TLS port, or
	// whatever the protocol requires before the first command.
	First     time.Duration
	FirstName string // the first phase's name in metrics and logs ("handshake")
	// EndOnTimeout makes a read timeout final: later reads fail.
	EndOnTimeout bool
}

// Refusal says which cap refused a connection.
type Refusal string

const (
	TooManyConns   Refusal = "total"       // MaxConns
	TooManyPerAddr Refusal = "per_address" // MaxPerAddr
)

// Listener applies Limits to the connections it accepts.
type Listener struct {
	net.Listener
	lim Limits
	// Refuse answers a refused connection in the protocol's words and
	// closes it; it runs on a goroutine of its own, with a deadline of
	// RefuseTimeout already set on c. Nil closes without a reply.
	Refuse func(c net.Conn, why Refusal)
	// OnTimeout, when set, is told of each connection cut by a timeout and
	// of the phase it was in ("session" when the whole session's ran out).
	OnTimeout func(c *Conn, phase string)

	pool *Pool
}

// Pool counts the connections held by one or more listeners (a service's
// ports share their caps).
type Pool struct {
	mu       sync.Mutex
	total    int
	perAddr  map[string]int
	refusing int
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{perAddr: map[string]int{}} }

// RefuseTimeout bounds the refusal of one connection (a TLS handshake
// and one reply).
const RefuseTimeout = 5 * time.Second

// maxRefusing bounds the refusals under way; beyond it a refused
// connection is closed without a reply.
const maxRefusing = 64

// Listen wraps l, counting its connections in pool (a new one when nil).
func Listen(l net.Listener, lim Limits, pool *Pool) *Listener {
	if lim.FirstName == "" {
		lim.FirstName = "handshake"
	}
	if pool == nil {
		pool = NewPool()
	}
	return &Listener{Listener: l, lim: lim, pool: pool}
}

// Accept returns the next connection within the caps, as a *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := hostOf(c.RemoteAddr())
		l.pool.mu.Lock()
		var why Refusal
		switch {
		case l.lim.MaxConns > 0 && l.pool.total >= l.lim.MaxConns:
			why = TooManyConns
		case l.lim.MaxPerAddr > 0 && l.pool.perAddr[addr] >= l.lim.MaxPerAddr:
			why = TooManyPerAddr
		}
		if why != "" {
			reply := l.Refuse != nil && l.pool.refusing < maxRefusing
			if reply {
				l.pool.refusing++
			}
			l.pool.mu.Unlock()
			if !reply {
				c.Close()
				continue
			}
			go func() {
				c.SetDeadline(time.Now().Add(RefuseTimeout))
				l.Refuse(c, why)
				c.Close()
				l.pool.mu.Lock()
				l.pool.refusing--
				l.pool.mu.Unlock()
			}()
			continue
		}
		l.pool.total++
		l.pool.perAddr[addr]++
		l.pool.mu.Unlock()
		now := time.Now()
		lc := &Conn{Conn: c, ID: newID(), Addr: addr, l: l, phase: l.lim.FirstName}
		if l.lim.Session > 0 {
			lc.sessionEnd = now.Add(l.lim.Session)
		}
		if l.lim.First > 0 {
			lc.phaseEnd = now.Add(l.lim.First)
		}
		lc.apply()
		return lc, nil
	}
}

func (l *Listener) release(addr string) {
	l.pool.mu.Lock()
	l.pool.total--
	if l.pool.perAddr[addr]--; l.pool.perAddr[addr] <= 0 {
		delete(l.pool.perAddr, addr)
	}
	l.pool.mu.Unlock()
}

// Held returns the connections held at once, in all and from addr.
func (l *Listener) Held(addr string) (total, fromAddr int) {
	l.pool.mu.Lock()
	defer l.pool.mu.Unlock()
	return l.pool.total, l.pool.perAddr[addr]
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	if a == nil {
		return ""
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func newID() string { return fmt.Sprintf("%08x", rand.Uint32()) }

// Conn is an accepted connection under its listener's limits. Read
// deadlines its server sets are kept within the current phase's and the
// session's.
type Conn struct {
	net.Conn
	ID   string // for the logs of this connection's session
	Addr string // the source IP address

	l         *Listener
	closeOnce sync.Once

	mu         sync.Mutex
	sessionEnd time.Time // zero: none
	phase      string
	phaseEnd   time.Time // zero: none
	asked      time.Time // the read deadline the server last asked for
	timedOut   error     // the timeout that ended the conversation
	ended      bool      // the server has answered the timeout: reads see EOF
}

// Of returns the *Conn under c (through TLS and wrappers that have a
// NetConn method), or nil.
func Of(c net.Conn) *Conn {
	for c != nil {
		switch x := c.(type) {
		case *Conn:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// Phase starts a phase of the conversation: reads must be done within d
// from now (0: only the session's bound), whatever deadline the server
// asked for before. The server's next SetReadDeadline is kept within it.
func (c *Conn) Phase(name string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.phase = name
	c.phaseEnd = time.Time{}
	c.asked = time.Time{}
	if d > 0 {
		c.phaseEnd = time.Now().Add(d)
	}
	c.applyLocked()
}

// CurrentPhase returns the phase's name.
func (c *Conn) CurrentPhase() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.phase
}

// SetReadDeadline sets the read deadline, within the phase's and the
// session's.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = t
	return c.applyLocked()
}

// SetDeadline sets the read deadline as SetReadDeadline and the write
// deadline as asked.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *Conn) apply() {
	c.mu.Lock()
	c.applyLocked()
	c.mu.Unlock()
}

func (c *Conn) applyLocked() error {
	return c.Conn.SetReadDeadline(earliest(c.asked, c.phaseEnd, c.sessionEnd))
}

// earliest returns the earliest non-zero time, or zero.
func earliest(ts ...time.Time) time.Time {
	var e time.Time
	for _, t := range ts {
		if !t.IsZero() && (e.IsZero() || t.Before(e)) {
			e = t
		}
	}
	return e
}

// Read reads, noting a timeout; with EndOnTimeout a timed-out
// conversation reads nothing more.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.timedOut != nil && c.l.lim.EndOnTimeout {
		err := c.timedOut
		if c.ended {
			err = io.EOF
		}
		c.mu.Unlock()
		return 0, err
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	if err != nil && isTimeout(err) {
		c.mu.Lock()
		first := c.timedOut == nil
		phase := c.phase
		if !c.sessionEnd.IsZero() && !time.Now().Before(c.sessionEnd) {
			phase = "session"
		}
		err = &TimeoutError{Phase: phase, err: err}
		c.timedOut = err
		c.mu.Unlock()
		if first && c.l.OnTimeout != nil {
			c.l.OnTimeout(c, phase)
		}
	}
	return n, err
}

// TimeoutError is a read that met a deadline. Its text names the phase
// and nothing of the connection (libraries put it in replies).
type TimeoutError struct {
	Phase string
	err   error
}

func (e *TimeoutError) Error() string   { return "timed out (" + e.Phase + ")" }
func (e *TimeoutError) Unwrap() error   { return e.err }
func (e *TimeoutError) Timeout() bool   { return true }
func (e *TimeoutError) Temporary() bool { return true }

// TimedOut reports whether a read timed out, and in which phase.
func (c *Conn) TimedOut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timedOut != nil
}

// End records that the server has answered the timeout: later reads see
// the end of the stream, so that the server closes without a second reply.
func (c *Conn) End() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
}

// SessionLeft returns the time left in the session (0 when unbounded).
func (c *Conn) SessionLeft() time.Duration {
	if c.sessionEnd.IsZero() {
		return 0
	}
	return time.Until(c.sessionEnd)
}

// Close closes the connection and frees its place under the caps.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.l.release(c.Addr) })
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// RefuseTLS completes a TLS handshake on c (within the deadline the
// listener set) and writes reply: for refusals on implicit-TLS ports,
// where a reply in clear would mean nothing to the client.
func RefuseTLS(c net.Conn, conf *tls.Config, reply []byte) {
	tc := tls.Server(c, conf)
	if err := tc.Handshake(); err != nil {
		return
	}
	tc.Write(reply)
	tc.Close()
}
