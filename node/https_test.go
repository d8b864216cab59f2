package node

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// startHTTPS serves the node's HTTPS server with lim on loopback.
func startHTTPS(t *testing.T, w *providertest.World, lim httpsLimits) string {
	t.Helper()
	hs := httpsServer(w.Node, w.Node.TLSConfig(), lim, Endpoints{}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); serveHTTPS(hs, l, lim) }()
	t.Cleanup(func() { hs.Close(); wg.Wait() })
	return l.Addr().String()
}

func trickleBytes(c net.Conn, s string, step time.Duration) {
	go func() {
		for i := 0; ; i++ {
			if _, err := c.Write([]byte{s[min(i, len(s)-1)]}); err != nil {
				return
			}
			time.Sleep(step)
		}
	}()
}

// TestHTTPSTimeouts holds an HTTPS connection in each phase — the TLS
// handshake, the request's headers, an idle keep-alive — with a client
// that says nothing or trickles bytes, and checks that the server closes
// it at that phase's timeout.
func TestHTTPSTimeouts(t *testing.T) {
	lim := httpsLimits{readHeader: 400 * time.Millisecond, read: 2 * time.Second, write: 2 * time.Second, idle: 800 * time.Millisecond,
		maxConns: 100, maxPerAddr: 100}
	addr := startHTTPS(t, providertest.New(t, store.SQLite), lim)
	const step = 100 * time.Millisecond
	hello := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
	tests := []struct {
		name    string
		tls     bool
		setup   func(c net.Conn)
		timeout time.Duration
	}{
		{"handshake: silent", false, func(c net.Conn) {}, lim.readHeader},
		{"handshake: trickled ClientHello", false, func(c net.Conn) { trickleBytes(c, hello, step) }, lim.readHeader},
		{"headers: silent", true, func(c net.Conn) {}, lim.readHeader},
		{"headers: trickled", true, func(c net.Conn) {
			trickleBytes(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaa", step)
		}, lim.readHeader},
		{"keep-alive: idle", true, func(c net.Conn) {
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
			r := bufio.NewReader(c)
			line, _ := r.ReadString('\n')
			if !strings.HasPrefix(line, "HTTP/1.1 200") {
				t.Errorf("first request: %q", line)
			}
			for {
				l, err := r.ReadString('\n')
				if err != nil || l == "\r\n" {
					break
				}
			}
			r.ReadString('\n') // "ok"
		}, lim.idle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c net.Conn
			var err error
			if tt.tls {
				c, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
			} else {
				c, err = net.Dial("tcp", addr)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			tt.setup(c)
			start := time.Now()
			io.Copy(io.Discard, c)
			if took := time.Since(start); took < tt.timeout-200*time.Millisecond || took > tt.timeout+time.Second {
				t.Errorf("closed after %v, want about %v", took, tt.timeout)
			}
		})
	}
}

// TestHTTPSConnectionCaps checks that a connection over a cap gets 503
// with the reason.
func TestHTTPSConnectionCaps(t *testing.T) {
	w := providertest.New(t, store.SQLite)
	tests := []struct {
		name string
		lim  httpsLimits
		want string
	}{
		{"per address", httpsLimits{readHeader: 5 * time.Second, idle: 5 * time.Second, maxConns: 10, maxPerAddr: 2}, "Too many connections from your address (2 at once)"},
		{"in all", httpsLimits{readHeader: 5 * time.Second, idle: 5 * time.Second, maxConns: 2, maxPerAddr: 10}, "Too many connections to this server (2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startHTTPS(t, w, tt.lim)
			for range 2 {
				c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(c)
			if got := string(b); !strings.HasPrefix(got, "HTTP/1.1 503 Service Unavailable\r\n") || !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want 503 with %q", got, tt.want)
			}
		})
	}
}
