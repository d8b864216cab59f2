package imapserver_test

// [kep patch] Tests of the kep patches (see ../README.md), driving a real
// server on loopback over raw TCP, and with imapclient where a client's
// parser must accept what the server says.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// quotaSession adds SessionQuota and SessionExtension to the in-memory
// server's session.
type quotaSession struct {
	imapserver.Session
}

func (quotaSession) QuotaResourceTypes() []imap.QuotaResourceType {
	return []imap.QuotaResourceType{imap.QuotaResourceStorage, imap.QuotaResourceMessage}
}

func (quotaSession) GetQuota(root string) (*imapserver.QuotaData, error) {
	if root != "" {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such quota root"}
	}
	return &imapserver.QuotaData{Root: "", Resources: []imapserver.QuotaResource{
		{Type: imap.QuotaResourceStorage, Usage: 10, Limit: 512},
		{Type: imap.QuotaResourceMessage, Usage: 1, Limit: 1000},
	}}, nil
}

func (quotaSession) GetQuotaRoot(mailbox string) ([]string, error) {
	if mailbox != "INBOX" && mailbox != "Ödeme" {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}
	}
	return []string{""}, nil
}

func (quotaSession) ExtensionCapabilities() []imap.Cap { return []imap.Cap{"XKEP"} }

func (quotaSession) ExtensionCommand(w *imapserver.ExtensionWriter, name, args string) error {
	if name != "XKEP" {
		return imapserver.ErrUnknownCommand
	}
	if args == "fail" {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "XKEP refused: asked to fail"}
	}
	return w.WriteUntagged("XKEP " + args)
}

type env struct {
	addr string
	mem  *imapmemserver.Server
}

// start serves an in-memory server with user "u" / "p" and an INBOX.
func start(t *testing.T, hooks bool, opts imapserver.Options, tlsConfig *tls.Config) *env {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("u", "p")
	u.Create("INBOX", nil)
	mem.AddUser(u)
	opts.NewSession = func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
		if hooks {
			return quotaSession{mem.NewSession()}, nil, nil
		}
		return mem.NewSession(), nil, nil
	}
	opts.Caps = imap.CapSet{imap.CapIMAP4rev1: {}}
	opts.InsecureAuth = true
	opts.Logger = testLogger{t}
	srv := imapserver.New(&opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &env{addr: ln.Addr().String(), mem: mem}
}

type testLogger struct{ t *testing.T }

func (l testLogger) Printf(format string, args ...interface{}) { l.t.Logf(format, args...) }

// raw is a line-oriented client.
type raw struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := &raw{t: t, conn: c, r: bufio.NewReader(c)}
	if l := r.line(); !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting: %q", l)
	}
	return r
}

func (r *raw) line() string {
	r.t.Helper()
	l, err := r.r.ReadString('\n')
	if err != nil {
		return "ERR " + err.Error()
	}
	return strings.TrimRight(l, "\r\n")
}

// cmd sends tag + " " + line and returns the untagged lines and the tagged
// one ("ERR …" when the connection ends first).
func (r *raw) cmd(tag, line string) (untagged []string, tagged string) {
	r.t.Helper()
	fmt.Fprintf(r.conn, "%s %s\r\n", tag, line)
	return r.until(tag)
}

func (r *raw) until(tag string) (untagged []string, tagged string) {
	for {
		l := r.line()
		if strings.HasPrefix(l, tag+" ") || strings.HasPrefix(l, "ERR ") {
			return untagged, l
		}
		untagged = append(untagged, l)
	}
}

func (r *raw) login() {
	r.t.Helper()
	if _, st := r.cmd("l", "LOGIN u p"); !strings.HasPrefix(st, "l OK") {
		r.t.Fatalf("login: %s", st)
	}
}

func TestQuota(t *testing.T) {
	e := start(t, true, imapserver.Options{}, nil)
	r := dial(t, e.addr)
	if un, _ := r.cmd("c0", "CAPABILITY"); strings.Contains(strings.Join(un, " "), "QUOTA") {
		t.Errorf("QUOTA advertised before authentication: %q", un)
	}
	r.login()
	un, _ := r.cmd("c1", "CAPABILITY")
	caps := strings.Join(un, " ")
	for _, want := range []string{" QUOTA", " QUOTA=RES-STORAGE", " QUOTA=RES-MESSAGE", " XKEP"} {
		if !strings.Contains(caps, want) {
			t.Errorf("CAPABILITY lacks %q: %s", want, caps)
		}
	}
	for _, tc := range []struct {
		cmd      string
		untagged []string
		status   string
	}{
		{"GETQUOTAROOT INBOX", []string{`* QUOTAROOT INBOX ""`, `* QUOTA "" (STORAGE 10 512 MESSAGE 1 1000)`}, "OK"},
		{"GETQUOTAROOT inbox", []string{`* QUOTAROOT INBOX ""`, `* QUOTA "" (STORAGE 10 512 MESSAGE 1 1000)`}, "OK"},
		{"GETQUOTAROOT &ANY-deme", []string{`* QUOTAROOT "&ANY-deme" ""`, `* QUOTA "" (STORAGE 10 512 MESSAGE 1 1000)`}, "OK"},
		{`GETQUOTA ""`, []string{`* QUOTA "" (STORAGE 10 512 MESSAGE 1 1000)`}, "OK"},
		{"GETQUOTA other", nil, "NO [NONEXISTENT]"},
		{"GETQUOTAROOT Nowhere", nil, "NO [NONEXISTENT]"},
		{"GETQUOTAROOT &Jjo", nil, "BAD"},
		{"GETQUOTA", nil, "BAD"},
	} {
		un, st := r.cmd("q", tc.cmd)
		if !strings.HasPrefix(st, "q "+tc.status) || strings.Join(un, "\n") != strings.Join(tc.untagged, "\n") {
			t.Errorf("%s:\n got %q %q\nwant %q %s", tc.cmd, un, st, tc.untagged, tc.status)
		}
	}

	// imapclient parses the responses.
	c, err := imapclient.DialInsecure(e.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("u", "p").Wait(); err != nil {
		t.Fatal(err)
	}
	data, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 1 || data[0].Resources[imap.QuotaResourceStorage] != (imapclient.QuotaResourceData{Usage: 10, Limit: 512}) {
		t.Fatalf("imapclient GETQUOTAROOT: %+v", data)
	}

	// Without SessionQuota the commands stay unknown.
	plain := dial(t, start(t, false, imapserver.Options{}, nil).addr)
	plain.login()
	if un, _ := plain.cmd("c", "CAPABILITY"); strings.Contains(strings.Join(un, " "), "QUOTA") {
		t.Errorf("QUOTA advertised without SessionQuota: %q", un)
	}
	if _, st := plain.cmd("q", "GETQUOTAROOT INBOX"); !strings.HasPrefix(st, "q BAD") {
		t.Errorf("GETQUOTAROOT without SessionQuota: %s", st)
	}
}

func TestExtensionCommand(t *testing.T) {
	e := start(t, true, imapserver.Options{}, nil)
	r := dial(t, e.addr)
	r.login()
	for _, tc := range []struct {
		cmd      string
		untagged []string
		status   string
	}{
		{"XKEP hello world", []string{"* XKEP hello world"}, "OK"},
		{"xkep", []string{"* XKEP "}, "OK"},
		{"XKEP fail", nil, "NO XKEP refused"},
		{"XKEP {5}", nil, "BAD"},
		{"XOTHER", nil, "BAD Unknown command"},
		{"NOOP", nil, "OK"},
	} {
		un, st := r.cmd("x", tc.cmd)
		if !strings.HasPrefix(st, "x "+tc.status) || strings.Join(un, "\n") != strings.Join(tc.untagged, "\n") {
			t.Errorf("%s:\n got %q %q\nwant %q %s", tc.cmd, un, st, tc.untagged, tc.status)
		}
	}
	// Before authentication an unknown command still ends the connection.
	r2 := dial(t, e.addr)
	if _, st := r2.cmd("x", "XKEP hello"); !strings.HasPrefix(st, "x BAD") {
		t.Errorf("XKEP before login: %s", st)
	}
	if l := r2.line(); !strings.HasPrefix(l, "* BYE") {
		t.Errorf("after an unknown command before login: %q", l)
	}
}

// Malformed input is the client's error: BAD with a reason, never NO
// [SERVERBUG], and the connection goes on.
func TestMalformedIsBAD(t *testing.T) {
	e := start(t, false, imapserver.Options{}, nil)
	r := dial(t, e.addr)
	r.login()
	if _, st := r.cmd("s", "SELECT INBOX"); !strings.HasPrefix(st, "s OK") {
		t.Fatal(st)
	}
	for _, tc := range []struct{ cmd, reason string }{
		{"SELECT &Jjo", "modified UTF-7"},
		{"SELECT \"&Jjo-&\"", "modified UTF-7"},
		{"SELECT {3}\r\na\x00b", "NUL"},
		{"STATUS &AGE- (MESSAGES)", "modified UTF-7"},
		{"FETCH 0 FLAGS", "sequence-set"},
		{"FETCH 1:0 FLAGS", "sequence-set"},
		{"FETCH 99999999999 FLAGS", "sequence-set"},
		{"UID FETCH 4294967296 FLAGS", "sequence-set"},
		{"SEARCH UNKNOWNKEY", "unknown search key"},
		{"SEARCH SENTBEFORE 31-Foo-2020", "date"},
		{"SEARCH LARGER 99999999999999999999", "out of range"},
		{`APPEND INBOX "not a date" {5}`, "date-time"},
		{"LIST " + strings.Repeat("(", 1100) + " *", ""},
	} {
		if strings.Contains(tc.cmd, "{3}\r\n") {
			// a synchronizing literal: wait for the continuation
			head, rest, _ := strings.Cut(tc.cmd, "\r\n")
			fmt.Fprintf(r.conn, "b %s\r\n", head)
			if l := r.line(); !strings.HasPrefix(l, "+") {
				t.Fatalf("%q: no continuation: %q", tc.cmd, l)
			}
			fmt.Fprintf(r.conn, "%s\r\n", rest)
			_, st := r.until("b")
			check(t, tc.cmd, st, tc.reason)
			continue
		}
		_, st := r.cmd("b", tc.cmd)
		check(t, tc.cmd, st, tc.reason)
	}
	if _, st := r.cmd("n", "NOOP"); !strings.HasPrefix(st, "n OK") {
		t.Fatalf("connection did not go on: %s", st)
	}
}

func check(t *testing.T, cmd, st, reason string) {
	t.Helper()
	if !strings.HasPrefix(st, "b BAD") || strings.Contains(st, "SERVERBUG") || !strings.Contains(st, reason) {
		t.Errorf("%.60q: %q, want BAD naming %q", cmd, st, reason)
	}
}

// A LITERAL+ / LITERAL- APPEND whose literal is not followed by CRLF gets
// its tagged answer (upstream sent none, and the client waited forever); a
// refused non-synchronizing literal ends the connection, so that its bytes
// are never run as commands.
func TestAppendLiteral(t *testing.T) {
	e := start(t, false, imapserver.Options{}, nil)
	r := dial(t, e.addr)
	r.login()
	fmt.Fprintf(r.conn, "a APPEND INBOX {5+}\r\nhello world\r\n")
	if _, st := r.until("a"); !strings.HasPrefix(st, "a BAD") {
		t.Errorf("APPEND with trailing bytes after the literal: %q", st)
	}
	fmt.Fprintf(r.conn, "b APPEND INBOX {11+}\r\nhello world\r\n")
	if _, st := r.until("b"); !strings.HasPrefix(st, "b OK") {
		t.Errorf("APPEND {11+}: %q", st)
	}
	// Non-synchronizing, over 4096 bytes, LITERAL+ not offered: BAD, BYE,
	// and the literal's "commands" never run.
	body := strings.Repeat("z CREATE Injected\r\n", 400)
	fmt.Fprintf(r.conn, "c APPEND INBOX {%d+}\r\n%s\r\n", len(body), body)
	_, st := r.until("c")
	if !strings.HasPrefix(st, "c BAD") {
		t.Errorf("oversized non-synchronizing literal: %q", st)
	}
	rest, _ := io.ReadAll(r.r)
	if !strings.Contains(string(rest), "* BYE") || strings.Contains(string(rest), "z ") {
		t.Errorf("after the refused literal: %.200q", rest)
	}
	r2 := dial(t, e.addr)
	r2.login()
	un, _ := r2.cmd("l", `LIST "" *`)
	if strings.Contains(strings.Join(un, " "), "Injected") {
		t.Fatalf("literal bytes ran as commands: %q", un)
	}
	// A connection that ends inside a literal stores nothing.
	r3 := dial(t, e.addr)
	r3.login()
	fmt.Fprintf(r3.conn, "d APPEND INBOX {100}\r\n")
	if l := r3.line(); !strings.HasPrefix(l, "+") {
		t.Fatal(l)
	}
	r3.conn.Write([]byte("only ten b"))
	r3.conn.(*net.TCPConn).CloseWrite()
	io.ReadAll(r3.r)
	un, _ = r2.cmd("s", "STATUS INBOX (MESSAGES)")
	// Two messages: "b", and "a", whose literal was stored before the
	// missing CRLF was seen (see README: APPEND streams its literal).
	if len(un) != 1 || !strings.Contains(un[0], "MESSAGES 2)") {
		t.Fatalf("after a truncated literal: %q", un)
	}
}

func TestTimeouts(t *testing.T) {
	opts := imapserver.Options{
		UnauthenticatedTimeout: 300 * time.Millisecond,
		IdleTimeout:            600 * time.Millisecond,
		CommandTimeout:         300 * time.Millisecond,
		TLSHandshakeTimeout:    300 * time.Millisecond,
	}
	e := start(t, false, opts, nil)
	elapsed := func(f func()) time.Duration {
		t0 := time.Now()
		f()
		return time.Since(t0)
	}

	t.Run("unauthenticated", func(t *testing.T) {
		r := dial(t, e.addr)
		var l string
		d := elapsed(func() { l = r.line() })
		if !strings.HasPrefix(l, "* BYE Autologout") || d > 5*time.Second {
			t.Errorf("silent before login: %q after %v", l, d)
		}
	})
	t.Run("idle", func(t *testing.T) {
		r := dial(t, e.addr)
		r.login()
		var l string
		d := elapsed(func() { l = r.line() })
		if !strings.HasPrefix(l, "* BYE Autologout") || d < 500*time.Millisecond {
			t.Errorf("idle after login: %q after %v", l, d)
		}
	})
	t.Run("IDLE", func(t *testing.T) {
		r := dial(t, e.addr)
		r.login()
		r.cmd("s", "SELECT INBOX")
		fmt.Fprintf(r.conn, "i IDLE\r\n")
		if l := r.line(); !strings.HasPrefix(l, "+") {
			t.Fatal(l)
		}
		rest, _ := io.ReadAll(r.r)
		if !strings.Contains(string(rest), "* BYE Autologout") || strings.Contains(string(rest), "SERVERBUG") {
			t.Errorf("IDLE past the idle timeout: %q", rest)
		}
	})
	t.Run("partial line", func(t *testing.T) {
		r := dial(t, e.addr)
		r.login()
		// A command that never gets its CRLF is not run, and what follows
		// the timeout is not read as a command.
		fmt.Fprintf(r.conn, "p CREATE Partial")
		time.Sleep(700 * time.Millisecond)
		fmt.Fprintf(r.conn, "\r\nq CREATE Late\r\n")
		rest, _ := io.ReadAll(r.r)
		if strings.Contains(string(rest), "p OK") || strings.Contains(string(rest), "q OK") || !strings.Contains(string(rest), "* BYE") {
			t.Errorf("partial line: %q", rest)
		}
		r2 := dial(t, e.addr)
		r2.login()
		if un, _ := r2.cmd("l", `LIST "" *`); strings.Contains(strings.Join(un, " "), "Partial") {
			t.Errorf("the partial command ran: %q", un)
		}
	})
	t.Run("TLS handshake", func(t *testing.T) {
		te := start(t, false, opts, testTLSConfig(t))
		c, err := net.Dial("tcp", te.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var n int64
		d := elapsed(func() { n, _ = io.Copy(io.Discard, c) })
		if d > 5*time.Second || n != 0 {
			t.Errorf("silent TLS client: closed after %v, %d bytes", d, n)
		}
		// A real TLS client gets the greeting.
		tc, err := tls.Dial("tcp", te.addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		if l, _ := bufio.NewReader(tc).ReadString('\n'); !strings.HasPrefix(l, "* OK") {
			t.Errorf("TLS greeting: %q", l)
		}
	})
}

func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
