package imapd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// pipeListener hands net.Pipe connections to the server.
type pipeListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// dial makes a TLS connection to the server over a pipe.
func (l *pipeListener) dial(cfg *tls.Config) *tls.Conn {
	cs, ss := net.Pipe()
	l.ch <- ss
	return tls.Client(cs, cfg)
}

// FuzzSession feeds arbitrary bytes to a logged-in session with a mailbox
// selected, and fails if the server panics (imapserver recovers panics and
// logs them; the recorder turns that log into a failure). The bytes reach
// the whole command path: the library's parser and every Session method.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"c FETCH 1:* (FLAGS BODY.PEEK[] BODYSTRUCTURE ENVELOPE)",
		"c UID FETCH 1:* (BODY[1.2.3.4.5.6]<0.10> BINARY[1] BINARY.SIZE[1])",
		"c FETCH * (BODY[HEADER.FIELDS (SUBJECT FROM)] RFC822.SIZE)",
		"c SEARCH OR (FROM a) NOT (SUBJECT b) BODY \"x\" LARGER 10 SENTBEFORE 1-Jan-2030",
		"c STORE 1:* +FLAGS (\\Deleted $kw)\r\nd EXPUNGE",
		"c COPY 1:* Archive\r\nd MOVE 1 Trash\r\ne SELECT Trash",
		"c APPEND Drafts (\\Seen) {11+}\r\nhello world",
		"c APPEND Drafts {5}\r\nhello",
		"c IDLE\r\nDONE",
		"c LIST \"\" *\r\nd LSUB \"\" %\r\ne STATUS INBOX (MESSAGES SIZE UNSEEN DELETED)",
		"c NAMESPACE\r\nd ENABLE IMAP4rev2\r\ne SEARCH RETURN (SAVE MIN) ALL\r\nf FETCH $ UID",
		"c UID EXPUNGE 1:*\r\nd CLOSE\r\ne EXAMINE INBOX\r\nf STORE 1 FLAGS ()",
		"c FETCH 4294967295:* FLAGS\r\nd FETCH 1,2,3:5,* (UID)",
		"c FETCH 1 BODY[]<4294967296.1>",
		"\x00\xff\r\n{99999999}\r\n",
		"c AUTHENTICATE PLAIN\r\n*\r\n",
		"c SELECT \"\\\"\r\n",
	} {
		f.Add([]byte(seed))
	}
	w := providertest.New(f, store.SQLite)
	e := startServer(f, w)
	l := newPipeListener()
	go e.srv.ServeTLS(l)
	f.Cleanup(func() { l.Close() })
	ayse, mehmet := w.Person("Ayşe", "Fuzz"), w.Person("Mehmet", "Fuzz")
	send(f, w, ayse, "Bir", mehmet.Account.Address)
	send(f, w, ayse, "İki", mehmet.Account.Address)
	login := fmt.Sprintf("a LOGIN %q %q\r\nb SELECT INBOX\r\n", mehmet.Account.Address, mehmet.Password)

	f.Fuzz(func(t *testing.T, data []byte) {
		c := l.dial(e.clientTLS)
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		// net.Pipe is synchronous: read all the time, or both sides block
		// writing.
		selected := make(chan bool, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					selected <- false
					return
				}
				if strings.HasPrefix(line, "b ") {
					selected <- strings.HasPrefix(line, "b OK")
					break
				}
			}
			io.Copy(io.Discard, br)
		}()
		if _, err := c.Write([]byte(login)); err != nil {
			t.Fatal(err)
		}
		if !<-selected {
			t.Fatal("could not log in and select INBOX")
		}
		c.Write(data)
		c.Write([]byte("\r\nz LOGOUT\r\n"))
		select {
		case <-done:
		case <-time.After(2 * time.Second): // waiting for a literal, IDLE, …
		}
		c.Close()
		<-done
		if p := e.log.panics(); len(p) > 0 {
			t.Fatalf("server panicked on %q: %s", data, p[0])
		}
	})
}
