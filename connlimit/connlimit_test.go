package connlimit

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// serve accepts on a limited loopback listener and hands each accepted
// connection to got.
func serve(t *testing.T, lim Limits) (*Listener, chan *Conn) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(raw, lim, nil)
	l.Refuse = func(c net.Conn, why Refusal) { io.WriteString(c, "refused "+string(why)+"\n") }
	got := make(chan *Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			got <- c.(*Conn)
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l, got
}

// TestPhases checks which deadline a read meets: the one asked for, the
// phase's, or the session's, whichever comes first; and that with
// EndOnTimeout nothing is read after a timeout, and after End the stream
// ends.
func TestPhases(t *testing.T) {
	tests := []struct {
		name  string
		lim   Limits
		phase time.Duration // a phase started after accept (0: none)
		ask   time.Duration // the read deadline the server asks for
		want  time.Duration
		named string
	}{
		{"first phase", Limits{First: 200 * time.Millisecond, FirstName: "handshake"}, 0, time.Second, 200 * time.Millisecond, "handshake"},
		{"asked within the phase", Limits{First: time.Second}, 0, 200 * time.Millisecond, 200 * time.Millisecond, "handshake"},
		{"later phase replaces the first", Limits{First: 100 * time.Millisecond}, 300 * time.Millisecond, 0, 300 * time.Millisecond, "data"},
		{"session bounds every phase", Limits{Session: 250 * time.Millisecond}, time.Second, time.Second, 250 * time.Millisecond, "session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.lim.EndOnTimeout = true
			l, got := serve(t, tt.lim)
			phases := make(chan string, 1)
			l.OnTimeout = func(c *Conn, phase string) { phases <- phase }
			client, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			c := <-got
			defer c.Close()
			start := time.Now()
			if tt.phase > 0 {
				c.Phase("data", tt.phase)
			}
			if tt.ask > 0 {
				c.SetReadDeadline(time.Now().Add(tt.ask))
			}
			_, err = c.Read(make([]byte, 1))
			took := time.Since(start)
			if !errors.Is(err, os.ErrDeadlineExceeded) || took < tt.want-50*time.Millisecond || took > tt.want+300*time.Millisecond {
				t.Fatalf("read ended after %v with %v, want a timeout after %v", took, err, tt.want)
			}
			if p := <-phases; p != tt.named {
				t.Errorf("timed out in phase %q, want %q", p, tt.named)
			}
			// Bytes sent after the timeout are never read.
			client.Write([]byte("QUIT\r\n"))
			c.SetReadDeadline(time.Time{})
			if n, err := c.Read(make([]byte, 8)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("read after a timeout: %d bytes, %v", n, err)
			}
			c.End()
			if _, err := c.Read(make([]byte, 8)); err != io.EOF {
				t.Errorf("read after End: %v, want EOF", err)
			}
		})
	}
}

// TestCaps fills each cap and checks the refusal and that a closed
// connection frees its place.
func TestCaps(t *testing.T) {
	tests := []struct {
		name string
		lim  Limits
		want string
	}{
		{"in all", Limits{MaxConns: 2}, "refused total\n"},
		{"per address", Limits{MaxPerAddr: 2}, "refused per_address\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, got := serve(t, tt.lim)
			dial := func() net.Conn {
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			dial()
			dial()
			first, second := <-got, <-got
			_ = second
			c := dial()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			if string(b) != tt.want {
				t.Fatalf("got %q, want %q", b, tt.want)
			}
			if total, from := l.Held("127.0.0.1"); total != 2 || from != 2 {
				t.Errorf("held %d, %d from the address; want 2, 2", total, from)
			}
			first.Close()
			first.Close() // a second Close frees nothing more
			dial()
			select {
			case c := <-got:
				c.Close()
			case <-time.After(5 * time.Second):
				t.Fatal("a freed place was not taken again")
			}
			if total, _ := l.Held("127.0.0.1"); total != 1 {
				t.Errorf("held %d after two closes, want 1", total)
			}
		})
	}
}
