package imapd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kephs/kep/provider/providertest"
)

// raw is a hand-driven IMAP connection, for what a well-behaved client
// library will not send.
type raw struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func (e *env) raw() *raw {
	e.t.Helper()
	conn, err := tls.Dial("tcp", e.tlsAddr, e.clientTLS)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	r := &raw{t: e.t, conn: conn, r: bufio.NewReader(conn)}
	if l := r.line(); !strings.HasPrefix(l, "* OK") {
		e.t.Fatalf("greeting %q", l)
	}
	return r
}

var literalAtEnd = regexp.MustCompile(`\{(\d+)\}$`)

// line reads one response line, literals included inline.
func (r *raw) line() string {
	r.t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for {
		l, err := r.r.ReadString('\n')
		if err != nil {
			r.t.Fatalf("read: %v (after %q)", err, b.String()+l)
		}
		l = strings.TrimRight(l, "\r\n")
		b.WriteString(l)
		m := literalAtEnd.FindStringSubmatch(l)
		if m == nil {
			return b.String()
		}
		n, _ := strconv.Atoi(m[1])
		lit := make([]byte, n)
		if _, err := io.ReadFull(r.r, lit); err != nil {
			r.t.Fatal(err)
		}
		b.Write(lit)
	}
}

// cmd sends a tagged command and returns the untagged lines and the tagged
// status line.
func (r *raw) cmd(tag, command string) ([]string, string) {
	r.t.Helper()
	if _, err := fmt.Fprintf(r.conn, "%s %s\r\n", tag, command); err != nil {
		r.t.Fatal(err)
	}
	var untagged []string
	for {
		l := r.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, l
		}
		untagged = append(untagged, l)
	}
}

// Malformed and hostile commands get BAD or NO with a reason, and the
// connection goes on.
func TestMalformedInput(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		ayse, mehmet := w.Person("Ayşe", "Bal"), w.Person("Mehmet", "Bal")
		send(t, w, ayse, "Bir", mehmet.Account.Address)
		send(t, w, ayse, "İki", mehmet.Account.Address)
		r := e.raw()
		if _, st := r.cmd("a", fmt.Sprintf("LOGIN %q %q", mehmet.Account.Address, mehmet.Password)); !strings.HasPrefix(st, "a OK") {
			t.Fatalf("login: %s", st)
		}
		deep := strings.Repeat("1.", 200) + "1"
		cases := []struct{ cmd, want string }{
			{"FETCH 1 FLAGS", "BAD"}, // nothing selected
			{"SELECT", "BAD"},
			{"SELECT INBOX", "OK"},
			{"FETCH", "BAD"},
			// Malformed numbers, dates and search keys are BAD with a
			// reason (third_party/go-imap patch).
			{"FETCH 0 FLAGS", "BAD"},
			{"FETCH 1:* (FLAGS", "BAD"},
			{"FETCH 1 BODY[HEADER.FIELDS (", "BAD"},
			{"FETCH 1 BODY[NOTASECTION]", "BAD"},
			{"FETCH 1 (FLAGS) trailing", "BAD"},
			{"FETCH 1 BODY.PEEK[" + deep + "]", "OK"},
			{"FETCH 1 BODY.PEEK[]<999999999.10>", "OK"},
			{"FETCH 1 MODSEQ", "BAD"},
			{"UID FETCH 1:4294967295 (UID FLAGS)", "OK"},
			{"UID FETCH 4294967295:* (UID)", "OK"},
			{"FETCH 99 (FLAGS)", "OK"},
			{"FETCH $ (FLAGS)", "OK"},
			{`STORE 1 +FLAGS (\Recent)`, "BAD"},
			{`STORE 1 +FLAGS (\Bogus)`, "BAD"},
			{`STORE 1 +FLAGS (\*)`, "BAD"},
			{`STORE 1 BADITEM (\Seen)`, "BAD"},
			{"SEARCH", "BAD"},
			{"SEARCH UNKNOWNKEY", "BAD"},
			{"SEARCH OR SEEN", "BAD"},
			{"SEARCH CHARSET KOI8-R ALL", "NO"},
			{"SEARCH " + strings.Repeat("NOT ", 500) + "ALL", "OK"},
			{"APPEND Drafts {99999999999}", "NO"},
			{"APPEND Drafts (\\Seen) \"not a date\" {5}", "BAD"},
			{"COPY 1:* NoSuchBox", "NO"},
			{"LOGIN again please", "BAD"},
			{"GETQUOTAROOT INBOX", "OK"}, // RFC 9208 (quota.go)
			{"GETQUOTA \"\"", "OK"},
			{"GETQUOTA", "BAD"},
			{"GETQUOTAROOT", "BAD"},
			{"SETQUOTA \"\" (STORAGE 1)", "BAD"},
			{"ENABLE IMAP4rev2", "OK"},
			{"SELECT inbox", "OK"},
			{"SEARCH RETURN (SAVE) SEEN", "OK"},
			{"FETCH $ (UID)", "OK"},
			{"UID EXPUNGE 1:*", "OK"},
			{"NOOP", "OK"},
		}
		for i, c := range cases {
			tag := fmt.Sprintf("t%d", i)
			untagged, st := r.cmd(tag, c.cmd)
			if c.cmd == "SELECT inbox" && !slices.Contains(untagged, `* LIST (\HasNoChildren) "/" INBOX`) {
				t.Errorf("SELECT after ENABLE IMAP4rev2 sent no LIST: %q", untagged)
			}
			if !strings.HasPrefix(st, tag+" "+c.want) {
				t.Errorf("%s: %q, want %s", c.cmd, st, c.want)
			}
			if c.want != "OK" && len(strings.TrimSpace(strings.TrimPrefix(st, tag+" "+c.want))) == 0 {
				t.Errorf("%s: %q gives no reason", c.cmd, st)
			}
		}
		// A line longer than the command limit ends the connection, not
		// the server.
		fmt.Fprintf(r.conn, "x FETCH 1 (%s)\r\n", strings.Repeat("FLAGS ", 20000))
		r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, r.r)
		r2 := e.raw()
		if _, st := r2.cmd("a", fmt.Sprintf("LOGIN %q %q", mehmet.Account.Address, mehmet.Password)); !strings.HasPrefix(st, "a OK") {
			t.Fatalf("login after abuse: %s", st)
		}
		// Before login, an unknown command ends the connection (imapserver
		// guards against cross-protocol attacks).
		r3 := e.raw()
		fmt.Fprintf(r3.conn, "GET / HTTP/1.1\r\n")
		r3.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		rest, _ := io.ReadAll(r3.r)
		if !strings.Contains(string(rest), "BYE") {
			t.Fatalf("HTTP request got %q", rest)
		}
	})
}

// A message whose MIME structure is deep, part-heavy or broken is still
// described (BODYSTRUCTURE) and served, within bounds.
func TestHostileStructure(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		mehmet := w.Person("Mehmet", "Yol")
		c := e.login(mehmet.Account.Address, mehmet.Password)
		var deep strings.Builder
		deep.WriteString("Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
		for i := 1; i < 2000; i++ {
			fmt.Fprintf(&deep, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
		}
		deep.WriteString("--b1999\r\nContent-Type: text/plain\r\n\r\nhi\r\n")
		var many strings.Builder
		many.WriteString("Subject: many\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n")
		for i := 0; i < 20000; i++ {
			many.WriteString("--x\r\n\r\np\r\n")
		}
		many.WriteString("--x--\r\n")
		msgs := []string{
			deep.String(),
			many.String(),
			"Subject: no boundary\r\nContent-Type: multipart/mixed\r\n\r\nbody\r\n",
			"Subject: bad boundary\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nno parts here\r\n",
			"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=q\r\n\r\n",
			"\r\n",
			"",
			"no header at all",
			" leading space\r\nSubject: x\r\n\r\nbody",
			"Subject: " + strings.Repeat("y", 2<<20) + "\r\n\r\nbig header",
		}
		for _, m := range msgs {
			if _, err := appendMsg(c, "Drafts", m, nil); err != nil {
				t.Fatalf("append: %v", err)
			}
		}
		mustSelect(t, c, "Drafts", false)
		got := fetch(t, c, imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true, RFC822Size: true,
			BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
			BodySection:   []*imap.FetchItemBodySection{{Peek: true}, {Peek: true, Part: []int{1, 1, 1}}, {Peek: true, Specifier: imap.PartSpecifierText}},
			BinarySection: []*imap.FetchItemBinarySection{{Part: []int{1}, Peek: true}}})
		if len(got) != len(msgs) {
			t.Fatalf("%d of %d messages", len(got), len(msgs))
		}
		for i, m := range got {
			if string(m.FindBodySection(&imap.FetchItemBodySection{})) != msgs[i] || m.RFC822Size != int64(len(msgs[i])) {
				t.Fatalf("message %d: body or size differs", i)
			}
			if m.BodyStructure == nil {
				t.Fatalf("message %d: no BODYSTRUCTURE", i)
			}
		}
	})
}
