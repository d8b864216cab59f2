package blob

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os"
	"testing"
	"testing/iotest"
)

// TestVerifiedServes changes blobs on disk in every way the probes
// did (a flipped byte, first or last; replaced; truncated; extended;
// deleted) at sizes around the hold-back and the in-memory limit, and
// serves each through every verifying path: a mismatch is refused with
// ErrMismatch and counted, never served whole, and untouched blobs serve
// exactly their bytes.
func TestVerifiedServes(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	type tamper struct {
		name   string
		change func(path string, b []byte) // nil: untouched
		gone   bool
	}
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tampers := []tamper{
		{"untouched", nil, false},
		{"first byte flipped", func(p string, b []byte) { b = bytes.Clone(b); b[0] ^= 1; write(p, b) }, false},
		{"last byte flipped", func(p string, b []byte) { b = bytes.Clone(b); b[len(b)-1] ^= 1; write(p, b) }, false},
		{"replaced", func(p string, b []byte) { write(p, []byte("another message entirely\r\n")) }, false},
		{"truncated", func(p string, b []byte) { write(p, b[:len(b)-1]) }, false},
		{"extended", func(p string, b []byte) { write(p, append(bytes.Clone(b), '\n')) }, false},
		{"deleted", func(p string, b []byte) { os.Remove(p) }, true},
	}
	for _, size := range []int{1, 100, holdBack - 1, holdBack, holdBack + 1, 300 << 10, InMemoryLimit + 5000} {
		for _, tc := range tampers {
			data := make([]byte, size)
			rng.Read(data)
			d, _, err := s.Put(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if tc.change != nil {
				tc.change(s.path(d), data)
			}
			bad := tc.change != nil
			onDisk := 0
			if st, err := os.Stat(s.path(d)); err == nil {
				onDisk = int(st.Size())
			}
			check := func(path string, got []byte, err error, counted bool) {
				t.Helper()
				switch {
				case tc.gone:
					if !errors.Is(err, ErrNotFound) {
						t.Errorf("%d bytes, %s, %s: %v, want ErrNotFound", size, tc.name, path, err)
					}
				case bad:
					if !errors.Is(err, ErrMismatch) {
						t.Errorf("%d bytes, %s, %s: %v, want ErrMismatch", size, tc.name, path, err)
					}
					if len(got) > max(0, onDisk-holdBack) {
						t.Errorf("%d bytes, %s, %s: %d bytes handed out before the refusal", size, tc.name, path, len(got))
					}
				default:
					if err != nil || !bytes.Equal(got, data) {
						t.Errorf("%d bytes, %s, %s: %v, %d bytes (want %d, equal %v)", size, tc.name, path, err, len(got), size, bytes.Equal(got, data))
					}
				}
			}
			counted := func(path string, f func()) {
				t.Helper()
				before := Mismatches()
				f()
				want := before
				if bad && !tc.gone && path != "Check" && (size <= 1<<20 || path != "OpenVerified one byte at a time") {
					want++
				}
				if Mismatches() != want {
					t.Errorf("%d bytes, %s, %s: counter went %d → %d, want %d", size, tc.name, path, before, Mismatches(), want)
				}
			}
			counted("OpenVerified", func() {
				r, err := s.OpenVerified(d)
				var got []byte
				if err == nil {
					got, err = io.ReadAll(r)
					r.Close()
				}
				check("OpenVerified", got, err, true)
			})
			counted("OpenVerified one byte at a time", func() {
				if size > 1<<20 {
					return // slow, and no different from the small sizes
				}
				f, err := s.Open(d)
				var got []byte
				if err == nil {
					got, err = io.ReadAll(NewVerifyingReader(iotest.OneByteReader(f), d))
					f.Close()
				}
				check("one byte at a time", got, err, true)
			})
			counted("ReadVerified", func() {
				got, err := s.ReadVerified(d)
				check("ReadVerified", got, err, true)
			})
			counted("OpenVerifiedAt", func() {
				r, n, err := s.OpenVerifiedAt(d)
				var got []byte
				if err == nil {
					got, err = io.ReadAll(io.NewSectionReader(r, 0, n))
					r.Close()
				}
				check("OpenVerifiedAt", got, err, true)
			})
			counted("Check", func() {
				err := s.Check(d)
				var got []byte
				if err == nil {
					got = data
				}
				check("Check", got, err, false)
			})
		}
	}
}
