package smtp_test

// [kep patch] How many writes the server makes per message, with a client
// that pipelines (RFC 2920) and with one that waits for every reply.

import (
	"bufio"
	"crypto/tls"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// discardBackend accepts every message and keeps nothing.
type discardBackend struct{}

func (discardBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return discardSession{}, nil }

type discardSession struct{}

func (discardSession) Reset() {}

func (discardSession) Logout() error { return nil }
func (discardSession) Mail(from string, _ *smtp.MailOptions) error {
	if from == "panic@example.com" {
		panic("test: a backend that panics")
	}
	return nil
}
func (discardSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

// countingListener records the writes (those that sent something) on the connections it accepts.
type countingListener struct {
	net.Listener
	w *writeLog
}

type writeLog struct {
	mu     sync.Mutex
	writes []string
}

// since returns the writes after the first n.
func (w *writeLog) since(n int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes[n:]...)
}

func (w *writeLog) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.writes)
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.w}, nil
}

type countingConn struct {
	net.Conn
	w *writeLog
}

// Write holds the log's lock while it writes, so that a client that has
// read the bytes finds the write in the log.
func (c countingConn) Write(p []byte) (int, error) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.w.writes = append(c.w.writes, string(p[:n]))
	}
	return n, err
}

// kepSession starts a server on loopback and returns a client connection
// past EHLO, and the server's write counter.
func kepSession(tb testing.TB) (net.Conn, *bufio.Reader, *writeLog) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	writes := new(writeLog)
	s := smtp.NewServer(discardBackend{})
	s.Domain = "localhost"
	s.TLSConfig = &tls.Config{} // no certificate: STARTTLS answers 220, then the handshake fails
	s.ErrorLog = log.New(io.Discard, "", 0)
	go s.Serve(countingListener{l, writes})
	tb.Cleanup(func() { s.Close() })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	readReply(tb, r) // greeting
	io.WriteString(c, "EHLO localhost\r\n")
	readReply(tb, r)
	return c, r, writes
}

// readReply reads one reply, all its lines, and returns its last line.
func readReply(tb testing.TB, r *bufio.Reader) string {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			tb.Fatal(err)
		}
		if len(line) < 4 {
			tb.Fatalf("short reply line %q", line)
		}
		if line[3] == ' ' {
			return line
		}
	}
}

// TestKepReplyOneWrite: EHLO's reply of several lines is one write.
func TestKepReplyOneWrite(t *testing.T) {
	c, r, writes := kepSession(t)
	before := writes.count()
	io.WriteString(c, "EHLO localhost\r\n")
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, line)
		if line[3] == ' ' {
			break
		}
	}
	if len(lines) < 3 || lines[0] != "250-Hello localhost\r\n" {
		t.Fatalf("EHLO reply %q", lines)
	}
	if n := len(writes.since(before)); n != 1 {
		t.Errorf("EHLO reply of %d lines in %d writes, want 1", len(lines), n)
	}
}

func BenchmarkKepSessionWrites(b *testing.B) {
	msg := "Subject: x\r\n\r\n" + strings.Repeat(strings.Repeat("a", 76)+"\r\n", 130) + ".\r\n"
	for _, pipelined := range []bool{false, true} {
		name := "lockstep"
		if pipelined {
			name = "pipelined"
		}
		b.Run(name, func(b *testing.B) {
			c, r, writes := kepSession(b)
			cmds := []string{"MAIL FROM:<a@example.com>\r\n", "RCPT TO:<b@example.com>\r\n", "DATA\r\n"}
			b.ResetTimer()
			start := writes.count()
			for i := 0; i < b.N; i++ {
				if pipelined {
					io.WriteString(c, strings.Join(cmds, ""))
					for range cmds {
						readReply(b, r)
					}
				} else {
					for _, cmd := range cmds {
						io.WriteString(c, cmd)
						readReply(b, r)
					}
				}
				io.WriteString(c, msg)
				if reply := readReply(b, r); !strings.HasPrefix(reply, "250 ") {
					b.Fatalf("message refused: %q", reply)
				}
			}
			b.ReportMetric(float64(writes.count()-start)/float64(b.N), "writes/msg")
		})
	}
}

// TestKepPipelinedReplies: the replies to pipelined RSET, MAIL and RCPT
// wait in the buffer while the next command line is already there, and go
// out with the next reply that is not held (RFC 2920 section 3.2); the
// server never waits for input with a reply unsent.
func TestKepPipelinedReplies(t *testing.T) {
	tests := []struct {
		name    string
		send    []string // sent one after the other, each after the replies before it
		replies []int    // replies to each send
		want    []string // reply codes, in order
		writes  []int    // writes for each send's replies
		closed  bool     // the server ends the connection
	}{
		{
			name:    "a group in one write",
			replies: []int{5, 1},
			send:    []string{"RSET\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:bad\r\nDATA\r\n", "x\r\n.\r\n"},
			want:    []string{"250", "250", "250", "501", "354", "250"},
			writes:  []int{1, 1},
		},
		{
			name:    "lock step: a write per reply",
			replies: []int{1, 1, 1},
			send:    []string{"MAIL FROM:<a@example.com>\r\n", "RCPT TO:<b@example.com>\r\n", "RSET\r\n"},
			want:    []string{"250", "250", "250"},
			writes:  []int{1, 1, 1},
		},
		{
			// The client waits for the MAIL reply before finishing its next
			// line: the reply must not wait for a line that is not complete.
			name:    "next line incomplete",
			replies: []int{1, 1},
			send:    []string{"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@exa", "mple.com>\r\n"},
			want:    []string{"250", "250"},
			writes:  []int{1, 1},
		},
		{
			name:    "a group ending the session",
			replies: []int{3},
			send:    []string{"RSET\r\nMAIL FROM:<a@example.com>\r\nQUIT\r\n"},
			want:    []string{"250", "250", "221"},
			writes:  []int{1},
			closed:  true,
		},
		{
			name:    "a panic in the group",
			replies: []int{2},
			send:    []string{"RSET\r\nMAIL FROM:<panic@example.com>\r\nRCPT TO:<b@example.com>\r\n"},
			want:    []string{"250", "421"},
			writes:  []int{1},
			closed:  true,
		},
		{
			// kep's submission watches for the 220 at the start of a write.
			name:    "STARTTLS after RSET",
			replies: []int{2},
			send:    []string{"RSET\r\nSTARTTLS\r\n"},
			want:    []string{"250", "220"},
			writes:  []int{2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, r, writes := kepSession(t)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var got []string
			for i, send := range tt.send {
				before := writes.count()
				io.WriteString(c, send)
				for j := 0; j < tt.replies[i]; j++ {
					got = append(got, readReply(t, r)[:3])
				}
				if w := len(writes.since(before)); w != tt.writes[i] {
					t.Errorf("send %d: %d writes, want %d: %q", i, w, tt.writes[i], writes.since(before))
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("replies %v, want %v", got, tt.want)
			}
			if tt.closed {
				if _, err := r.ReadByte(); err == nil {
					t.Errorf("connection still open")
				}
			}
			if tt.name == "STARTTLS after RSET" {
				if w := writes.since(0); !strings.HasPrefix(w[len(w)-1], "220 ") {
					t.Errorf("last write %q, want the 220 alone", w[len(w)-1])
				}
			}
		})
	}
}
