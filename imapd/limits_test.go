package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
)

// startLimited starts a server with the given limits.
func startLimited(t *testing.T, w *providertest.World, lim Limits) *env {
	t.Helper()
	e := &env{t: t, w: w, log: &recorder{}, clientTLS: clientTLS(t, w), limits: lim}
	e.start()
	return e
}

// rawConn is a client speaking IMAP by hand, to stop where a real client
// never would.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (e *env) dialRaw(t *testing.T, implicitTLS bool) *rawConn {
	t.Helper()
	var c net.Conn
	var err error
	if implicitTLS {
		c, err = tls.Dial("tcp", e.tlsAddr, e.clientTLS)
	} else {
		c, err = net.Dial("tcp", e.plainAddr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// line reads one response line.
func (r *rawConn) line() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (got %q)", err, l)
	}
	return l
}

// until reads lines up to the one starting with prefix.
func (r *rawConn) until(prefix string) string {
	r.t.Helper()
	for {
		if l := r.line(); strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// rest reads what the server sends until it closes the connection, and
// how long that took; it fails if the server is still there after max.
func (r *rawConn) rest(max time.Duration) (string, time.Duration) {
	r.t.Helper()
	start := time.Now()
	r.c.SetReadDeadline(start.Add(max))
	b, err := io.ReadAll(r.r)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		r.t.Fatalf("the connection was still open after %v (read %q)", max, b)
	}
	return string(b), time.Since(start)
}

// Every phase × a timeout (issue 9.5): a client that stops talking, or
// stops in the middle of a line or a literal, is cut within the phase's
// bound, told why when the protocol allows it, and nothing it half-sent
// is run.
func TestTimeouts(t *testing.T) {
	const short = 400 * time.Millisecond
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := startLimited(t, w, Limits{Handshake: short, Unauthenticated: short, Command: short, Literal: short, Idle: 2 * short})
		p := w.Person("Sabri", "Yavas")
		login := func(r *rawConn) {
			r.until("* OK")
			r.send("a0 LOGIN \"" + p.Account.Address + "\" \"" + p.Password + "\"\r\n")
			if l := r.until("a0 "); !strings.HasPrefix(l, "a0 OK") {
				t.Fatalf("login: %q", l)
			}
		}
		for _, tc := range []struct {
			name  string
			phase func(t *testing.T) *rawConn // brings a connection to the phase, then falls silent
			bound time.Duration               // the phase's timeout
			bye   string                      // what the server says before closing ("" : nothing can be said)
			never string                      // a reply that must not come
		}{
			{"handshake-993", func(t *testing.T) *rawConn {
				c, err := net.Dial("tcp", e.tlsAddr) // TCP only: no ClientHello
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
			}, short, "", ""},
			{"handshake-starttls", func(t *testing.T) *rawConn {
				r := e.dialRaw(t, false)
				r.until("* OK")
				r.send("s1 STARTTLS\r\n")
				r.until("s1 OK")
				return r // and no ClientHello follows
			}, short, "", ""},
			{"pre-auth-idle", func(t *testing.T) *rawConn {
				r := e.dialRaw(t, true)
				r.until("* OK")
				return r
			}, short, "* BYE Autologout", ""},
			{"half-line", func(t *testing.T) *rawConn {
				r := e.dialRaw(t, true)
				login(r)
				r.send("h1 SELECT INB") // the rest never comes
				return r
			}, short, "* BYE Autologout", "h1 "},
			{"half-line-logout", func(t *testing.T) *rawConn {
				r := e.dialRaw(t, true)
				r.until("* OK")
				r.send("h2 LOGOUT") // without CRLF it must not be run
				return r
			}, short, "* BYE Autologout", "h2 OK"},
			{"literal", func(t *testing.T) *rawConn {
				r := e.dialRaw(t, true)
				login(r)
				r.send("l1 APPEND Drafts {100}\r\n")
				r.until("+")
				r.send("Subject: half\r\n") // 15 of 100 bytes
				return r
			}, short, "* BYE Autologout", "l1 OK"},
			{"authenticated-idle", func(t *testing.T) *rawConn {
				r := e.dialRaw(t, true)
				login(r)
				return r
			}, 2 * short, "* BYE Autologout", ""},
			{"idle-command", func(t *testing.T) *rawConn {
				r := e.dialRaw(t, true)
				login(r)
				r.send("i0 SELECT INBOX\r\n")
				r.until("i0 OK")
				r.send("i1 IDLE\r\n")
				r.until("+")
				return r
			}, 2 * short, "* BYE Autologout", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := tc.phase(t)
				out, took := r.rest(tc.bound + 5*time.Second)
				t.Logf("after %v: %q", took.Round(time.Millisecond), out)
				if took < tc.bound/2 || took > tc.bound+3*time.Second {
					t.Errorf("cut after %v, want about %v", took, tc.bound)
				}
				if tc.bye != "" && !strings.Contains(out, tc.bye) {
					t.Errorf("closing words %q, want %q", out, tc.bye)
				}
				if tc.never != "" && strings.Contains(out, tc.never) {
					t.Errorf("the half-sent command was run: %q", out)
				}
			})
		}
		// The cut APPEND stored nothing.
		drafts, err := mailbox.GetFolder(context.Background(), w.Q(), p.Account.ID, mailbox.Drafts)
		if err != nil {
			t.Fatal(err)
		}
		if ms, _ := mailbox.ListMessages(context.Background(), w.Q(), drafts.ID); len(ms) != 0 {
			t.Errorf("Drafts holds %d messages after a cut APPEND", len(ms))
		}
	})
}

// The connection caps, per address and in all, over both ports together:
// the connection beyond a cap gets `* BYE [UNAVAILABLE]` with the reason,
// and a place freed is taken again.
func TestConnectionCaps(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		for _, tc := range []struct {
			name string
			lim  Limits
			want string
		}{
			{"per-address", Limits{MaxPerAddr: 2, MaxConns: 100}, "* BYE [UNAVAILABLE] Too many connections from your address (2 at once)"},
			{"total", Limits{MaxPerAddr: 100, MaxConns: 2}, "* BYE [UNAVAILABLE] Too many connections to this server (2)"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := startLimited(t, w, tc.lim)
				a := e.dialRaw(t, true)
				a.until("* OK")
				b := e.dialRaw(t, false)
				b.until("* OK")
				for _, implicitTLS := range []bool{true, false} {
					c := e.dialRaw(t, implicitTLS)
					if l := c.line(); !strings.HasPrefix(l, tc.want) {
						t.Fatalf("TLS %v: %q, want %q", implicitTLS, l, tc.want)
					}
					if out, _ := c.rest(5 * time.Second); out != "" {
						t.Fatalf("after BYE: %q", out)
					}
				}
				b.send("b1 LOGOUT\r\n")
				b.rest(5 * time.Second)
				deadline := time.Now().Add(5 * time.Second)
				for {
					c := e.dialRaw(t, true)
					l := c.line()
					if strings.HasPrefix(l, "* OK") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("a freed place was not taken again: %q", l)
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
		}
	})
}
