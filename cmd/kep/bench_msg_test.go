package main

import (
	"bytes"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		bad        bool
	}{
		{"plain", "4242 (kep) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 12 0 100 0 0", 3800 * time.Millisecond, false},
		{"name with spaces and parens", "7 (a b) c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0", 30 * time.Millisecond, false},
		{"no name", "7 a R 1", 0, true},
		{"short", "7 (kep) S 1 2 3", 0, true},
		{"not a number", "7 (kep) S 1 7 7 0 -1 0 0 0 0 0 x 2 0", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStatCPU(tc.stat)
			if (err != nil) != tc.bad || got != tc.want {
				t.Fatalf("got %v, %v; want %v (error %v)", got, err, tc.want, tc.bad)
			}
		})
	}
}

func TestBenchMsgRaw(t *testing.T) {
	m := benchMsg{header: []byte("From: a\r\n"), rest: []byte("Subject: s\r\n\r\nbody")}
	got := m.raw(nil, "17local", 42)
	want := "From: a\r\nMessage-ID: <bench-17local-42@hs01.kep.tr>\r\nSubject: s\r\n\r\nbody"
	if string(got) != want {
		t.Fatalf("got %q", got)
	}
}

// BenchmarkBenchMsgRaw measures the per-send message assembly of kep bench,
// which runs on the same cores as the server it measures.
func BenchmarkBenchMsgRaw(b *testing.B) {
	m := benchMsg{header: bytes.Repeat([]byte("h"), 600), rest: bytes.Repeat([]byte("r"), 14000)}
	var buf []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = m.raw(buf[:0], "1700000000000000000cross", int64(i))
	}
}
