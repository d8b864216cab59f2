package submission_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/submission"
)

// limited starts a submission service with short limits on loopback and
// returns its STARTTLS and implicit-TLS addresses.
func limited(t *testing.T, w *providertest.World, lim submission.Limits, log io.Writer) (plain, implicit string) {
	t.Helper()
	s := submission.New(w.Node.Mailbox, w.Node.Accounts, w.Node.ESign, w.Node.TLSConfig(), submission.Options{
		Hostname: "localhost", Domain: w.Node.Config.Provider.Domain, Limits: lim,
		Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	var wg sync.WaitGroup
	for _, serve := range []func(net.Listener) error{s.ServeSTARTTLS, s.ServeTLS} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if plain == "" {
			plain = l.Addr().String()
		} else {
			implicit = l.Addr().String()
		}
		wg.Add(1)
		go func() { defer wg.Done(); serve(l) }()
	}
	t.Cleanup(func() { s.Close(); wg.Wait() })
	return plain, implicit
}

// rawClient is a client that speaks SMTP by hand, to stop or trickle at
// any point.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string, implicitTLS bool) *rawClient {
	t.Helper()
	var c net.Conn
	var err error
	if implicitTLS {
		c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
}

// reply reads one reply (all its lines) and returns it.
func (c *rawClient) reply() string {
	c.t.Helper()
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			c.t.Fatalf("reading a reply: %v (got %q)", err, b.String())
		}
		if len(line) < 4 || line[3] != '-' {
			return b.String()
		}
	}
}

// cmd sends a line and checks the reply's code.
func (c *rawClient) cmd(line, want string) string {
	c.t.Helper()
	io.WriteString(c.conn, line+"\r\n")
	r := c.reply()
	if !strings.HasPrefix(r, want) {
		c.t.Fatalf("%s: got %q, want %s", line, r, want)
	}
	return r
}

func (c *rawClient) startTLS() {
	c.t.Helper()
	c.cmd("STARTTLS", "220")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

// trickle writes s one byte every step, then keeps writing its last byte,
// until the connection fails; it never ends a line.
func trickle(c net.Conn, s string, step time.Duration) {
	go func() {
		for i := 0; ; i++ {
			b := s[min(i, len(s)-1)]
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(step)
		}
	}()
}

// unended writes a whole command without its CRLF, and falls silent.
func unended(c net.Conn, s string) { io.WriteString(c, s) }

// rest reads everything until the server closes, and how long that took.
func (c *rawClient) rest() (string, time.Duration) {
	start := time.Now()
	b, _ := io.ReadAll(c.r)
	return string(b), time.Since(start)
}

// TestTimeouts holds a connection in each phase of a submission — the TLS
// handshake (port 465 and after STARTTLS), the first EHLO, a command
// line, a SASL response, the message after DATA, the whole session —
// with a client that trickles bytes or says nothing, and checks that the
// server cuts it at that phase's timeout, says why when it can, and never
// runs the half-sent line as a command.
func TestTimeouts(t *testing.T) {
	lim := submission.Limits{Handshake: 400 * time.Millisecond, Command: 700 * time.Millisecond, Data: 1200 * time.Millisecond,
		Session: 3 * time.Second}
	w := providertest.New(t, store.SQLite)
	var logs lockedBuffer
	plain, implicit := limited(t, w, lim, &logs)
	p := w.Person("Ayşe", "Yılmaz")
	A, pw := p.Account.Address, p.Password
	// Every line of a session names its connection, and none carries the
	// user name or the password (the user name of an operator is a TCKN).
	t.Cleanup(func() {
		if !strings.Contains(logs.String(), "smtp login") || !strings.Contains(logs.String(), "smtp timeout") {
			t.Errorf("logins and timeouts not logged: %s", logs.String())
		}
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if !strings.Contains(line, " conn=") {
				t.Errorf("log line without a connection id: %s", line)
			}
			if strings.Contains(line, A) || strings.Contains(line, pw) || strings.Contains(line, p.TCKN) {
				t.Errorf("personal data in the log: %s", line)
			}
		}
	})
	plainAuth := base64.StdEncoding.EncodeToString([]byte("\x00" + A + "\x00" + pw))
	const step = 100 * time.Millisecond
	tests := []struct {
		name    string
		tls     bool
		setup   func(c *rawClient) // talk up to the phase, then trickle or fall silent
		timeout time.Duration      // the phase's timeout, counted from the end of setup
		reply   string             // what the server says before closing ("" : nothing can be said)
	}{
		{"handshake: 465, silent", false, func(c *rawClient) {}, lim.Handshake, ""},
		{"handshake: 465, trickled ClientHello", false, func(c *rawClient) { trickle(c.conn, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", step) }, lim.Handshake, ""},
		{"handshake: 587, no EHLO", false, func(c *rawClient) { c.reply() }, lim.Handshake, "421 4.4.2"},
		{"handshake: 587, trickled EHLO", false, func(c *rawClient) { c.reply(); trickle(c.conn, "EHLO client.example", step) }, lim.Handshake, "421 4.4.2"},
		{"handshake: after STARTTLS, trickled", false, func(c *rawClient) {
			c.reply()
			c.cmd("EHLO client.example", "250")
			c.cmd("STARTTLS", "220")
			trickle(c.conn, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", step)
		}, lim.Handshake, ""},
		{"command: trickled line", false, func(c *rawClient) {
			c.reply()
			c.cmd("EHLO client.example", "250")
			trickle(c.conn, "QUIT", step)
		}, lim.Command, "421 4.4.2"},
		{"command: silent", true, func(c *rawClient) {
			c.reply()
			c.cmd("EHLO client.example", "250")
		}, lim.Command, "421 4.4.2"},
		{"auth: trickled SASL response", true, func(c *rawClient) {
			c.reply()
			c.cmd("EHLO client.example", "250")
			c.cmd("AUTH PLAIN", "334")
			trickle(c.conn, plainAuth, step)
		}, lim.Command, "421 4.4.2"},
		{"command: a whole line without its CRLF", true, func(c *rawClient) {
			c.reply()
			c.cmd("EHLO client.example", "250")
			c.cmd("AUTH PLAIN "+plainAuth, "235")
			c.cmd("MAIL FROM:<"+A+">", "250")
			unended(c.conn, "RCPT TO:<"+A+">")
		}, lim.Command, "421 4.4.2 Timed out in the middle of a line"},
		{"auth: a right SASL response without its CRLF", true, func(c *rawClient) {
			c.reply()
			c.cmd("EHLO client.example", "250")
			c.cmd("AUTH PLAIN", "334")
			unended(c.conn, plainAuth)
		}, lim.Command, "421 4.4.2 Timed out in the middle of a line"},
		{"data: trickled BDAT chunk", true, func(c *rawClient) {
			c.reply()
			c.cmd("EHLO client.example", "250")
			c.cmd("AUTH PLAIN "+plainAuth, "235")
			c.cmd("MAIL FROM:<"+A+">", "250")
			c.cmd("RCPT TO:<"+A+">", "250")
			io.WriteString(c.conn, "BDAT 1000 LAST\r\n")
			trickle(c.conn, "From: "+A+"\r\nSubject: slow\r\n\r\nQUIT\r\n", step)
		}, lim.Data, "421 4.4.2"},
		{"data: trickled message", true, func(c *rawClient) {
			c.reply()
			c.cmd("EHLO client.example", "250")
			c.cmd("AUTH PLAIN "+plainAuth, "235")
			c.cmd("MAIL FROM:<"+A+">", "250")
			c.cmd("RCPT TO:<"+A+">", "250")
			c.cmd("DATA", "354")
			trickle(c.conn, "From: "+A+"\r\nSubject: slow\r\n\r\nQUIT\r\n", step)
		}, lim.Data, "421 4.4.2 The message did not arrive in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := plain
			implicitTLS := tt.tls
			if strings.HasPrefix(tt.name, "handshake: 465") {
				addr = implicit
			} else if tt.tls {
				addr = implicit
			}
			c := dialRawAt(t, addr, implicitTLS)
			tt.setup(c)
			got, took := c.rest()
			t.Logf("server said %q after %v", got, took)
			if tt.reply != "" && !strings.Contains(got, tt.reply) {
				t.Errorf("got %q, want %q", got, tt.reply)
			}
			// The library may answer a half line's syntax (500, 501);
			// nothing in it may act: no login, no transaction step.
			if strings.Contains(got, "i/o timeout") || strings.Contains(got, "127.0.0.1") {
				t.Errorf("internal detail in a reply: %q", got)
			}
			for _, acted := range []string{"221 ", "235 ", "250 ", "354 ", "535 "} {
				if strings.Contains(got, acted) {
					t.Errorf("the half-sent input ran as a command: %q", got)
				}
			}
			if took < tt.timeout-150*time.Millisecond || took > tt.timeout+time.Second {
				t.Errorf("cut after %v, want about %v", took, tt.timeout)
			}
		})
	}
	t.Run("session", func(t *testing.T) {
		t.Parallel()
		c := dialRawAt(t, plain, false)
		start := time.Now()
		c.reply()
		c.cmd("EHLO client.example", "250")
		var got string
		for time.Since(start) < 2*lim.Session {
			io.WriteString(c.conn, "NOOP\r\n")
			line, err := c.r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "250") {
				got = line
				break
			}
			time.Sleep(150 * time.Millisecond)
		}
		took := time.Since(start)
		if !strings.HasPrefix(got, "421 4.4.2") || took < lim.Session-200*time.Millisecond || took > lim.Session+time.Second {
			t.Errorf("session cut after %v with %q, want 421 after about %v", took, got, lim.Session)
		}
	})
}

// dialRawAt dials a port; handshake cases on 465 dial in clear to be able
// to trickle the handshake itself.
func dialRawAt(t *testing.T, addr string, implicitTLS bool) *rawClient {
	return dialRaw(t, addr, implicitTLS)
}

// TestConnectionCaps opens connections until a cap refuses one, on both
// ports, and checks the refusal's reply and that a freed place is taken
// again.
func TestConnectionCaps(t *testing.T) {
	w := providertest.New(t, store.SQLite)
	var logs lockedBuffer
	tests := []struct {
		name  string
		lim   submission.Limits
		reply string
	}{
		{"per address", submission.Limits{MaxPerAddr: 2, MaxConns: 10}, "421 4.7.0 localhost Service not available: too many connections from your address (2 at once)"},
		{"in all", submission.Limits{MaxPerAddr: 10, MaxConns: 2}, "421 4.7.0 localhost Service not available: too many connections to this service (2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plain, implicit := limited(t, w, tt.lim, &logs)
			// Two held, one on each port: the caps count both.
			a := dialRaw(t, plain, false)
			if r := a.reply(); !strings.HasPrefix(r, "220") {
				t.Fatal(r)
			}
			b := dialRaw(t, implicit, true)
			if r := b.reply(); !strings.HasPrefix(r, "220") {
				t.Fatal(r)
			}
			for _, tc := range []struct {
				addr string
				tls  bool
			}{{plain, false}, {implicit, true}} {
				c := dialRaw(t, tc.addr, tc.tls)
				got, _ := c.rest()
				if !strings.HasPrefix(got, tt.reply) {
					t.Errorf("tls=%v: got %q, want %q", tc.tls, got, tt.reply)
				}
			}
			a.cmd("QUIT", "221")
			a.rest()
			deadline := time.Now().Add(5 * time.Second)
			for {
				c := dialRaw(t, plain, false)
				r, _ := c.r.ReadString('\n')
				if strings.HasPrefix(r, "220") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("a freed place was not taken again: %q", r)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
