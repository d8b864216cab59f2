package smtp_test

// [kep patch] Client.MailRcpt (kep_pipeline.go).

import (
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// recordingBackend refuses senders and recipients whose local part is
// "bad", and records what each transaction received.
type recordingBackend struct {
	mu   sync.Mutex
	got  []string // "from -> rcpt,rcpt: size"
	cmds []string
}

func (b *recordingBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &recordingSession{b: b}, nil
}

type recordingSession struct {
	b     *recordingBackend
	from  string
	rcpts []string
}

func (s *recordingSession) log(c string) {
	s.b.mu.Lock()
	s.b.cmds = append(s.b.cmds, c)
	s.b.mu.Unlock()
}

func (s *recordingSession) Reset()        { s.from, s.rcpts = "", nil; s.log("RSET") }
func (s *recordingSession) Logout() error { return nil }
func (s *recordingSession) Mail(from string, _ *smtp.MailOptions) error {
	s.log("MAIL " + from)
	if strings.HasPrefix(from, "bad@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 8}, Message: "sender refused"}
	}
	s.from = from
	return nil
}
func (s *recordingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.log("RCPT " + to)
	if strings.HasPrefix(to, "bad@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such recipient " + to}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *recordingSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.b.mu.Lock()
	s.b.got = append(s.b.got, s.from+" -> "+strings.Join(s.rcpts, ",")+": "+string(b))
	s.b.mu.Unlock()
	return err
}

// writeCounter counts the client's writes.
type writeCounter struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
	return w.Conn.Write(p)
}

func (w *writeCounter) writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func pipelineClient(t *testing.T) (*smtp.Client, *writeCounter, *recordingBackend) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &recordingBackend{}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	s.ErrorLog = log.New(io.Discard, "", 0)
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	wc := &writeCounter{Conn: conn}
	c := smtp.NewClient(wc)
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("localhost"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("PIPELINING"); !ok {
		t.Fatal("the server does not offer PIPELINING")
	}
	return c, wc, be
}

func send(t *testing.T, c *smtp.Client, body string) {
	t.Helper()
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, body)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestKepMailRcptPipelined(t *testing.T) {
	c, wc, be := pipelineClient(t)
	c.Noop() // past the greeting and EHLO
	before := wc.writes()
	if err := c.MailRcpt("a@example.com", nil, []string{"x@example.com", "y@example.com"}, nil); err != nil {
		t.Fatal(err)
	}
	if n := wc.writes() - before; n != 1 {
		t.Errorf("MAIL and two RCPT in %d writes, want 1", n)
	}
	send(t, c, "one\r\n")

	// A refused recipient among others: its error, every reply read (the
	// session stays in step), and the others are the server's.
	err := c.MailRcpt("a@example.com", nil, []string{"x@example.com", "bad@example.com", "z@example.com"}, nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "bad@example.com") {
		t.Fatalf("refused recipient: %v", err)
	}
	send(t, c, "two\r\n")

	// A refused sender: its own error, not the recipients' 503.
	err = c.MailRcpt("bad@example.com", nil, []string{"x@example.com"}, nil)
	if !errors.As(err, &se) || se.Code != 550 || se.Message != "sender refused" {
		t.Fatalf("refused sender: %v", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.MailRcpt("c@example.com", nil, []string{"w@example.com"}, nil); err != nil {
		t.Fatal(err)
	}
	send(t, c, "three\r\n")

	be.mu.Lock()
	defer be.mu.Unlock()
	want := []string{
		"a@example.com -> x@example.com,y@example.com: one\r\n",
		"a@example.com -> x@example.com,z@example.com: two\r\n",
		"c@example.com -> w@example.com: three\r\n",
	}
	if strings.Join(be.got, "|") != strings.Join(want, "|") {
		t.Fatalf("server received:\n%q\nwant\n%q", be.got, want)
	}
}
