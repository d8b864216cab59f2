package smtp_test

// [kep patch] How many writes the server makes per message, with a client
// that pipelines (RFC 2920) and with one that waits for every reply.

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"
)

// discardBackend accepts every message and keeps nothing.
type discardBackend struct{}

func (discardBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return discardSession{}, nil }

type discardSession struct{}

func (discardSession) Reset()                               {}
func (discardSession) Logout() error                        { return nil }
func (discardSession) Mail(string, *smtp.MailOptions) error { return nil }
func (discardSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discardSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

// countingListener counts the Write calls on the connections it accepts.
type countingListener struct {
	net.Listener
	writes *int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *int64
}

func (c countingConn) Write(p []byte) (int, error) {
	atomic.AddInt64(c.writes, 1)
	return c.Conn.Write(p)
}

// kepSession starts a server on loopback and returns a client connection
// past EHLO, and the server's write counter.
func kepSession(tb testing.TB) (net.Conn, *bufio.Reader, *int64) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	writes := new(int64)
	s := smtp.NewServer(discardBackend{})
	s.Domain = "localhost"
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
	before := atomic.LoadInt64(writes)
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
	if n := atomic.LoadInt64(writes) - before; n != 1 {
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
			start := atomic.LoadInt64(writes)
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
			b.ReportMetric(float64(atomic.LoadInt64(writes)-start)/float64(b.N), "writes/msg")
		})
	}
}
