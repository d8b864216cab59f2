package smtp

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"strings"
	"testing"
)

// textprotoDot is what upstream sent: net/textproto's DotWriter.
func textprotoDot(t testing.TB, msg []byte, chunks []int) []byte {
	var out bytes.Buffer
	w := textproto.NewWriter(bufio.NewWriter(&out))
	dw := w.DotWriter()
	writeChunks(t, dw.Write, msg, chunks)
	if err := dw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// kepDot is what the patched client sends; writes counts the writes that
// reached the connection.
func kepDot(t testing.TB, msg []byte, chunks []int) (out []byte, writes int) {
	var conn countingWriter
	bw := bufio.NewWriter(&conn)
	dw := &dotWriter{w: bw, flush: bw.Flush}
	writeChunks(t, dw.Write, msg, chunks)
	if err := dw.Close(); err != nil {
		t.Fatal(err)
	}
	return conn.Bytes(), conn.writes
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(b []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(b)
}

func writeChunks(t testing.TB, write func([]byte) (int, error), msg []byte, chunks []int) {
	for i := 0; len(msg) > 0; i++ {
		n := len(msg)
		if len(chunks) > 0 {
			n = chunks[i%len(chunks)]
			if n < 1 {
				n = 1
			}
			if n > len(msg) {
				n = len(msg)
			}
		}
		if k, err := write(msg[:n]); err != nil || k != n {
			t.Fatalf("write of %d: %d, %v", n, k, err)
		}
		msg = msg[n:]
	}
}

func TestKepDotWriterEdgeCases(t *testing.T) {
	for _, msg := range []string{
		"", "a", ".", "..", ".\r\n", "\r\n", "\n", "\r", "a\r", "a\n", "a\r\n",
		".a\r\n.b\r\n", "a\r\n.\r\n", "a\n.\n", "\r\r\n", "\r.\r\n", "a\rb\r\n.c",
		"line\r\n..\r\n.\r\nend", strings.Repeat("x", 5000) + "\r\n." + strings.Repeat("y", 70000),
	} {
		for _, chunks := range [][]int{nil, {1}, {2}, {3, 1}, {4096}} {
			want := textprotoDot(t, []byte(msg), chunks)
			got, _ := kepDot(t, []byte(msg), chunks)
			if !bytes.Equal(got, want) {
				t.Errorf("%q in chunks %v:\n got %q\nwant %q", trunc(msg), chunks, trunc(string(got)), trunc(string(want)))
			}
		}
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// A 10 KB message goes in one write with its terminator (upstream: three,
// one per 4 KB of buffer, and the terminator with the last).
func TestKepDotWriterOneWrite(t *testing.T) {
	msg := bytes.Repeat([]byte(strings.Repeat("A", 76)+"\r\n"), 130)
	if _, writes := kepDot(t, msg, nil); writes != 1 {
		t.Fatalf("%d writes for a %d-byte message", writes, len(msg))
	}
}

func FuzzKepDotWriter(f *testing.F) {
	for _, s := range []string{"", ".", "a\r\n.b\n\r.\r\n", "..\r\r\n\n.", "x\r"} {
		f.Add([]byte(s), []byte{1, 3, 7})
	}
	f.Fuzz(func(t *testing.T, msg, chunkBytes []byte) {
		var chunks []int
		for _, c := range chunkBytes {
			chunks = append(chunks, int(c))
		}
		want := textprotoDot(t, msg, chunks)
		got, _ := kepDot(t, msg, chunks)
		if !bytes.Equal(got, want) {
			t.Fatalf("%q in chunks %v:\n got %q\nwant %q", msg, chunks, got, want)
		}
	})
}

func BenchmarkKepDotWriter10KB(b *testing.B) {
	msg := bytes.Repeat([]byte(strings.Repeat("A", 76)+"\r\n"), 130)
	b.Run("textproto", func(b *testing.B) {
		bw := bufio.NewWriter(io.Discard)
		for i := 0; i < b.N; i++ {
			dw := textproto.NewWriter(bw).DotWriter()
			dw.Write(msg)
			dw.Close()
		}
	})
	b.Run("kep", func(b *testing.B) {
		bw := bufio.NewWriter(io.Discard)
		for i := 0; i < b.N; i++ {
			dw := &dotWriter{w: bw, flush: bw.Flush}
			dw.Write(msg)
			dw.Close()
		}
	})
}
