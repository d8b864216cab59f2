package blob

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestPutOpenDelete(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("KEP\r\n"), 10000)
	d, n, err := s.Put(bytes.NewReader(data))
	if err != nil || n != int64(len(data)) || d != Digest(sha256.Sum256(data)) {
		t.Fatalf("Put: %v %d %s", err, n, d)
	}
	// The same content again is stored once.
	if d2, _, err := s.Put(bytes.NewReader(data)); err != nil || d2 != d {
		t.Fatal(err)
	}
	got, err := s.ReadAll(d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	f, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(b, data) {
		t.Fatal("Open differs")
	}
	if err := s.Delete(d); err != nil || s.Has(d) {
		t.Fatal("Delete")
	}
	if _, err := s.Open(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open deleted: %v", err)
	}
	// No temporary files are left behind.
	if left, _ := os.ReadDir(filepath.Join(s.Dir(), "tmp")); len(left) != 0 {
		t.Fatalf("%d temporary files left", len(left))
	}
}

func TestAbort(t *testing.T) {
	s, _ := Open(t.TempDir())
	w, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("half a message"))
	d := w.Digest()
	w.Abort()
	if s.Has(d) {
		t.Fatal("aborted blob stored")
	}
	if left, _ := os.ReadDir(filepath.Join(s.Dir(), "tmp")); len(left) != 0 {
		t.Fatal("aborted temporary file left")
	}
}

func TestParseDigest(t *testing.T) {
	d := Digest(sha256.Sum256([]byte("x")))
	if n := d.Name(); n != "sha256:"+d.String() || d.Algorithm() != "sha-256" {
		t.Fatalf("Name = %q, Algorithm = %q", n, d.Algorithm())
	}
	cases := []struct {
		name, in string
		ok       bool
		reason   string // part of the refusal
	}{
		{"content name", d.Name(), true, ""},
		{"bare hex of older records", d.String(), true, ""},
		{"upper-case hex", "sha256:" + strings.ToUpper(d.String()), true, ""},
		{"other algorithm", "sha512:" + d.String(), false, `algorithm "sha512"`},
		{"not hex", "zz", false, "not a SHA-256 content name"},
		{"short", "sha256:" + d.String()[:62], false, "not a SHA-256 content name"},
		{"empty", "", false, "not a SHA-256 content name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseDigest(c.in)
			if c.ok {
				if err != nil || got != d {
					t.Fatalf("ParseDigest(%q) = %v, %v", c.in, got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("ParseDigest(%q): %v, want a refusal saying %q", c.in, err, c.reason)
			}
		})
	}
}

func BenchmarkPut10KB(b *testing.B) {
	s, _ := Open(b.TempDir())
	data := make([]byte, 10<<10)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16)
		if _, _, err := s.Put(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDeferredGroupSync(t *testing.T) {
	s, _ := Open(t.TempDir())
	var gens []int64
	for i := 0; i < 10; i++ {
		w, _ := s.Create()
		w.Write([]byte{byte(i)})
		_, gen, err := w.CommitDeferred()
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, gen)
	}
	if err := s.Sync(gens[len(gens)-1]); err != nil {
		t.Fatal(err)
	}
	if s.synced < gens[len(gens)-1] {
		t.Fatal("not synced")
	}
	// Already durable: returns at once.
	if err := s.Sync(gens[0]); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkPutDeferredParallel10KB(b *testing.B) {
	s, _ := Open(b.TempDir())
	b.SetParallelism(32)
	var mu sync.Mutex
	n := 0
	b.RunParallel(func(pb *testing.PB) {
		data := make([]byte, 10<<10)
		for pb.Next() {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16)
			w, _ := s.Create()
			w.Write(data)
			_, gen, err := w.CommitDeferred()
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Sync(gen); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestPutDeferred(t *testing.T) {
	s, _ := Open(t.TempDir())
	data := []byte("a small signed original\r\n")
	d, gen, err := s.PutDeferred(data)
	if err != nil || d != Digest(sha256.Sum256(data)) {
		t.Fatal(err)
	}
	if err := s.Sync(gen); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ReadAll(d); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if d2, _, err := s.PutDeferred(data); err != nil || d2 != d {
		t.Fatal("second put of the same bytes", err)
	}
}
