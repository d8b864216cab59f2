package submission

import (
	"bytes"
	"fmt"
	"net"
	"time"

	"github.com/kephs/kep/connlimit"
)

// Limits bound what one client can hold of the submission service (issue
// 9, "Connections and back-off"). Each phase of a conversation has its own
// timeout, within the session's; a client cut by one gets "421 4.4.2" and
// the connection is closed, and a read that timed out is never followed by
// another, so the rest of a half-sent line is never run as a command.
type Limits struct {
	// Handshake bounds the TLS handshake and the EHLO that follows it
	// (port 465, and after STARTTLS), and the first EHLO on port 587.
	Handshake time.Duration
	// Command bounds the reading of one command line or SASL response
	// (RFC 5321 §4.5.3.2.7 asks servers to wait 5 minutes).
	Command time.Duration
	// Data bounds the whole message after DATA (RFC 5321 §4.5.3.2.6 asks
	// 10 minutes per block; a 100 MB message on a slow line needs more).
	Data time.Duration
	// Session bounds a whole connection.
	Session time.Duration
	// MaxConns and MaxPerAddr cap the connections held at once over both
	// ports, in all and from one IP address; more are refused with
	// "421 4.7.0" and the reason.
	MaxConns   int
	MaxPerAddr int
}

// DefaultLimits are the limits of a zero Limits field.
var DefaultLimits = Limits{Handshake: 30 * time.Second, Command: 5 * time.Minute, Data: 30 * time.Minute, Session: time.Hour,
	MaxConns: 2000, MaxPerAddr: 100}

func (l *Limits) fill() {
	d := DefaultLimits
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&l.Handshake, d.Handshake}, {&l.Command, d.Command}, {&l.Data, d.Data}, {&l.Session, d.Session}} {
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

// limit wraps a listener of the service in its limits.
func (s *Server) limit(l net.Listener, implicitTLS bool) net.Listener {
	lim := s.opts.Limits
	ll := connlimit.Listen(l, connlimit.Limits{MaxConns: lim.MaxConns, MaxPerAddr: lim.MaxPerAddr, Session: lim.Session,
		First: lim.Handshake, FirstName: "handshake", EndOnTimeout: true}, s.pool)
	ll.Refuse = func(c net.Conn, why connlimit.Refusal) {
		s.opts.Metrics.limit(string(why))
		text := fmt.Sprintf("too many connections to this service (%d); try again in a few minutes", lim.MaxConns)
		if why == connlimit.TooManyPerAddr {
			text = fmt.Sprintf("too many connections from your address (%d at once); close some and try again", lim.MaxPerAddr)
		}
		// Info, not Warn: a flood would fill the log; the metric counts.
		remote, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		s.opts.Logger.Info("smtp connection refused", "server", "smtp", "remote", remote, "limit", string(why))
		reply := []byte(fmt.Sprintf("421 4.7.0 %s Service not available: %s\r\n", s.opts.Hostname, text))
		if implicitTLS {
			connlimit.RefuseTLS(c, s.tls, reply)
		} else {
			c.Write(reply)
		}
	}
	ll.OnTimeout = func(c *connlimit.Conn, phase string) {
		s.opts.Metrics.limit(phase)
		s.opts.Logger.Info("smtp timeout", "server", "smtp", "conn", c.ID, "remote", c.Addr, "phase", phase)
	}
	return smtpListener{ll, s}
}

// smtpListener counts sessions and watches each connection for STARTTLS.
type smtpListener struct {
	*connlimit.Listener
	s *Server
}

func (l smtpListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.opts.Metrics.session()
	return &smtpConn{Conn: c.(*connlimit.Conn), handshake: l.s.opts.Limits.Handshake}, nil
}

// smtpConn starts the handshake phase when the server answers STARTTLS:
// go-smtp hands the connection to crypto/tls straight after writing its
// 220, with the deadline of the STARTTLS command still set.
type smtpConn struct {
	*connlimit.Conn
	handshake time.Duration
}

var startTLSReply = []byte("Ready to start TLS")

func (c *smtpConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if bytes.HasPrefix(p, []byte("220 ")) && bytes.Contains(p, startTLSReply) {
		c.Conn.Phase("handshake", c.handshake)
	}
	return n, err
}

// NetConn returns the limited connection (connlimit.Of finds it).
func (c *smtpConn) NetConn() net.Conn { return c.Conn }
