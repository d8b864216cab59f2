package relay

// Relay sessions kept open between messages (docs/relay.md, "Sessions"):
// a mutual-TLS handshake costs more CPU on both sides than the SMTP
// transaction it opens, so the sending side keeps a few sessions per peer
// and carries several envelopes over each (RFC 5321 §3.3: a new MAIL after
// a completed transaction; RSET before reuse, §4.1.1.5).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/directory"
)

// Pool defaults.
const (
	// poolIdle is how long an unused session is kept. Short, so that a
	// pin withdrawn from the directory stops being used soon even without
	// the re-check at each reuse, and so that the peer (whose SMTP read
	// time-out is minutes) never closes it first.
	poolIdle = 30 * time.Second
	// poolMaxAge bounds a session's life, uses aside.
	poolMaxAge = 10 * time.Minute
	// poolMaxIdle is the number of idle sessions kept per peer.
	poolMaxIdle = 32
)

// peerConn is one open relay session to a peer: TLS done, EHLO said.
type peerConn struct {
	c      *smtp.Client
	conn   net.Conn
	leaf   *x509.Certificate // the peer's certificate, pinned at the handshake
	key    string
	opened time.Time
	used   time.Time
}

// close ends the session politely (QUIT) when it can, and closes it.
func (pc *peerConn) close() {
	pc.conn.SetDeadline(time.Now().Add(2 * time.Second))
	_ = pc.c.Quit()
	pc.c.Close()
}

// peerPool keeps idle relay sessions by peer. The zero value is ready.
type peerPool struct {
	mu   sync.Mutex
	idle map[string][]*peerConn
}

// poolKey names a peer's sessions: its id and its endpoint, so that a
// directory that moves the reception point is followed at once.
func poolKey(p *directory.Provider) string { return p.ID + "\x00" + p.Relay }

// get returns a session to p ready for a new transaction: an idle one
// whose peer certificate the directory still pins for p at now, that
// answers RSET, or a new one (dialPeer, EHLO helo).
func (pp *peerPool) get(ctx context.Context, cert tls.Certificate, p *directory.Provider, now func() time.Time, timeout time.Duration, helo string) (*peerConn, error) {
	if timeout == 0 {
		timeout = time.Minute
	}
	key := poolKey(p)
	for {
		pc := pp.take(key)
		if pc == nil {
			break
		}
		t := time.Now()
		if t.Sub(pc.used) > poolIdle || t.Sub(pc.opened) > poolMaxAge || pc.leaf == nil || !p.PinMatches(pc.leaf, now()) {
			pc.close()
			continue
		}
		pc.conn.SetDeadline(t.Add(timeout))
		if err := pc.c.Reset(); err != nil {
			pc.c.Close()
			continue
		}
		return pc, nil
	}
	c, conn, leaf, err := dialSession(ctx, cert, p, now, timeout)
	if err != nil {
		return nil, err
	}
	if err := c.Hello(helo); err != nil {
		c.Close()
		return nil, err
	}
	t := time.Now()
	return &peerConn{c: c, conn: conn, leaf: leaf, key: key, opened: t, used: t}, nil
}

func (pp *peerPool) take(key string) *peerConn {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	l := pp.idle[key]
	if len(l) == 0 {
		return nil
	}
	pc := l[len(l)-1]
	pp.idle[key] = l[:len(l)-1]
	return pc
}

// put gives back a session whose last transaction ended with a reply (any
// reply: the dialogue is in step). A session that failed on the network
// is closed by the caller instead.
func (pp *peerPool) put(pc *peerConn) {
	pc.used = time.Now()
	key := pc.key
	pp.mu.Lock()
	if pp.idle == nil {
		pp.idle = map[string][]*peerConn{}
	}
	l := pp.idle[pc.key]
	// Drop what has been idle too long on the way.
	kept := l[:0]
	var stale []*peerConn
	for _, x := range l {
		if pc.used.Sub(x.used) > poolIdle {
			stale = append(stale, x)
		} else {
			kept = append(kept, x)
		}
	}
	if len(kept) < poolMaxIdle {
		kept = append(kept, pc)
		pc = nil
	}
	pp.idle[key] = kept
	pp.mu.Unlock()
	for _, x := range stale {
		x.close()
	}
	if pc != nil {
		pc.close()
	}
}

// closeAll ends every idle session.
func (pp *peerPool) closeAll() {
	pp.mu.Lock()
	idle := pp.idle
	pp.idle = nil
	pp.mu.Unlock()
	for _, l := range idle {
		for _, pc := range l {
			pc.close()
		}
	}
}

// answered reports whether err is an SMTP reply of the peer (the dialogue
// is still in step and the session can be reused), not a network fault.
func answered(err error) bool {
	_, ok := err.(*smtp.SMTPError)
	return err == nil || ok
}
