package imapd

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/kephs/kep/connlimit"
)

// Limits bound what one client can hold of the IMAP server (issue 9,
// "Connections and back-off"). Zero fields take DefaultLimits'.
//
// The timeouts are the patched imapserver's (third_party/go-imap/README.md,
// change 4): a client silent for too long, or one that stops in the middle
// of a line or a literal, is told `* BYE Autologout: …` and disconnected,
// and the half-read line is never run. The caps count the connections of
// both ports together, per source address and in all; a connection beyond
// them is answered `* BYE [UNAVAILABLE]` with the reason (over TLS on the
// implicit-TLS port) and closed.
type Limits struct {
	// Handshake bounds the TLS handshake: on the implicit-TLS port before
	// the greeting, and after STARTTLS.
	Handshake time.Duration
	// Unauthenticated bounds silence before login.
	Unauthenticated time.Duration
	// Idle bounds silence once logged in, IDLE included; RFC 9051 §5.4
	// asks for at least 30 minutes.
	Idle time.Duration
	// Command bounds the rest of a command line once its first byte came.
	Command time.Duration
	// Literal bounds the reading of an APPEND literal.
	Literal time.Duration

	MaxConns   int // connections held at once, over both ports
	MaxPerAddr int // connections held at once from one IP address
}

// DefaultLimits are the limits of a server whose Options leave them zero.
// A mail client holds a few connections per account (Thunderbird up to 5);
// MaxPerAddr leaves room for an office behind one NAT address.
var DefaultLimits = Limits{Handshake: 30 * time.Second, Unauthenticated: 60 * time.Second, Idle: 35 * time.Minute,
	Command: 60 * time.Second, Literal: 10 * time.Minute, MaxConns: 2000, MaxPerAddr: 50}

func (l *Limits) fill() {
	d := DefaultLimits
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&l.Handshake, d.Handshake}, {&l.Unauthenticated, d.Unauthenticated}, {&l.Idle, d.Idle},
		{&l.Command, d.Command}, {&l.Literal, d.Literal}} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxPerAddr <= 0 {
		l.MaxPerAddr = d.MaxPerAddr
	}
}

// limit puts l under the server's connection caps; a refused connection
// gets `* BYE [UNAVAILABLE]` and the reason, over TLS when implicitTLS
// (RFC 9051 §7.1.5: BYE may be sent instead of the greeting).
func (s *Server) limit(l net.Listener, implicitTLS bool) net.Listener {
	lim := s.opts.Limits
	ll := connlimit.Listen(l, connlimit.Limits{MaxConns: lim.MaxConns, MaxPerAddr: lim.MaxPerAddr}, s.pool)
	ll.Refuse = func(c net.Conn, why connlimit.Refusal) {
		text := fmt.Sprintf("Too many connections to this server (%d); try again in a minute", lim.MaxConns)
		if why == connlimit.TooManyPerAddr {
			text = fmt.Sprintf("Too many connections from your address (%d at once); close some and try again", lim.MaxPerAddr)
		}
		s.log.Warn("imap connection refused", "cap", string(why))
		s.opts.Metrics.refused(string(why))
		reply := []byte("* BYE [UNAVAILABLE] " + text + "\r\n")
		if implicitTLS {
			connlimit.RefuseTLS(c, s.tls, reply)
			return
		}
		c.Write(reply)
	}
	if implicitTLS {
		return tls.NewListener(ll, s.tls)
	}
	return ll
}
