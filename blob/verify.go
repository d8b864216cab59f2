package blob

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
)

// Content is checked against its digest on every serve (issue 9.4): the
// readers below hash the bytes as they go and refuse, with ErrMismatch,
// content whose digest is not its name, before the last of it is handed
// out. Nothing remembers that a blob was "checked": a blob changed on disk
// after one serve is refused at the next.

// ErrMismatch is returned when a blob's bytes do not hash to its digest:
// the file was changed, replaced or damaged on disk.
var ErrMismatch = errors.New("blob: the content does not match its digest (changed on disk)")

// mismatches counts the serves refused with ErrMismatch, for Mismatches.
var mismatches atomic.Int64

// Mismatches returns how many serves were refused because the content did
// not match its digest since the process started: a metric to export and
// alarm on (any value above 0 means the content store was tampered with
// or damaged).
func Mismatches() int64 { return mismatches.Load() }

// holdBack is how many bytes a VerifyingReader keeps until it has seen the
// end and checked the digest: a mismatching blob never has its final
// chunk (all of it, when it is smaller) handed out.
const holdBack = 64 << 10

// VerifyingReader reads a blob and checks its digest at the end. The last
// holdBack bytes are handed out only once the digest matched; on a
// mismatch Read returns ErrMismatch instead of them.
type VerifyingReader struct {
	r       io.Reader
	h       hash.Hash
	want    Digest
	name    string // the digest, for errors
	count   bool   // count a mismatch in Mismatches
	pending []byte // read and hashed, not yet handed out
	start   int    // pending[start:] is still to be handed out
	done    bool   // the end was reached and the digest matched
	err     error
}

// NewVerifyingReader returns a reader over r that fails with ErrMismatch
// unless r's bytes hash to want (SHA-256). A mismatch is counted in
// Mismatches.
func NewVerifyingReader(r io.Reader, want Digest) *VerifyingReader {
	return &VerifyingReader{r: r, h: sha256.New(), want: want, name: want.String(), count: true}
}

func (v *VerifyingReader) Read(p []byte) (int, error) {
	for {
		avail := len(v.pending) - v.start
		if !v.done {
			avail -= holdBack
		}
		if avail > 0 && len(p) > 0 {
			n := copy(p, v.pending[v.start:v.start+min(avail, len(p))])
			v.start += n
			return n, nil
		}
		if v.done {
			return 0, io.EOF
		}
		if v.err != nil {
			return 0, v.err
		}
		v.fill()
	}
}

// fill reads the next chunk, and at the end checks the digest.
func (v *VerifyingReader) fill() {
	if v.start > 0 && v.start >= len(v.pending)/2 {
		v.pending = append(v.pending[:0], v.pending[v.start:]...)
		v.start = 0
	}
	if cap(v.pending)-len(v.pending) < 32<<10 {
		v.pending = append(make([]byte, 0, 2*cap(v.pending)+holdBack+(32<<10)), v.pending...)
	}
	n, err := v.r.Read(v.pending[len(v.pending):cap(v.pending)])
	v.h.Write(v.pending[len(v.pending) : len(v.pending)+n])
	v.pending = v.pending[:len(v.pending)+n]
	switch {
	case err == io.EOF:
		if Digest(v.h.Sum(nil)) != v.want {
			v.fail(fmt.Errorf("%w: %s", ErrMismatch, v.name))
			return
		}
		v.done = true
	case err != nil:
		v.fail(err)
	}
}

func (v *VerifyingReader) fail(err error) {
	if errors.Is(err, ErrMismatch) && v.count {
		mismatches.Add(1)
	}
	v.err, v.pending, v.start = err, nil, 0
}

// verifiedFile is a VerifyingReader over an open blob file.
type verifiedFile struct {
	*VerifyingReader
	f *Reader
}

func (v verifiedFile) Close() error { return v.f.Close() }

// OpenVerified returns a streaming reader over a blob that fails with
// ErrMismatch before its last bytes when they do not hash to d.
func (s *Store) OpenVerified(d Digest) (io.ReadCloser, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	return verifiedFile{NewVerifyingReader(f, d), f}, nil
}

// ReadVerified returns a blob's bytes, or ErrMismatch when they do not
// hash to d: the bytes returned are the bytes hashed.
func (s *Store) ReadVerified(d Digest) ([]byte, error) {
	b, err := s.ReadAll(d)
	if err != nil {
		return nil, err
	}
	if Digest(sha256.Sum256(b)) != d {
		mismatches.Add(1)
		return nil, fmt.Errorf("%w: %s", ErrMismatch, d)
	}
	return b, nil
}

// ReaderAtCloser is random access to a verified blob.
type ReaderAtCloser interface {
	io.ReaderAt
	io.Closer
}

// InMemoryLimit is the size up to which OpenVerifiedAt holds a blob in
// memory, so that the bytes served are exactly the bytes hashed.
const InMemoryLimit = 8 << 20

// OpenVerifiedAt returns random access to a blob whose bytes were checked
// against d when it was opened, and its size; ErrMismatch when they do
// not hash to d. A blob up to InMemoryLimit is read into memory and served
// from there: the bytes served are the bytes hashed. A larger one is
// hashed through the open file and then served from that same file, so
// that a replaced (renamed over) or deleted blob cannot slip in after the
// check; only a write into the very file while it is served could.
func (s *Store) OpenVerifiedAt(d Digest) (ReaderAtCloser, int64, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, 0, err
	}
	if f.Size() <= InMemoryLimit {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, InMemoryLimit+1))
		if err != nil {
			return nil, 0, fmt.Errorf("blob: %w", err)
		}
		if Digest(sha256.Sum256(b)) != d {
			mismatches.Add(1)
			return nil, 0, fmt.Errorf("%w: %s", ErrMismatch, d)
		}
		return nopCloser{bytes.NewReader(b)}, int64(len(b)), nil
	}
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blob: %w", err)
	}
	if Digest(h.Sum(nil)) != d {
		f.Close()
		mismatches.Add(1)
		return nil, 0, fmt.Errorf("%w: %s", ErrMismatch, d)
	}
	return f, n, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// Check reads a blob through and reports whether its bytes hash to d: nil,
// ErrNotFound (wrapped) when the store does not hold it, ErrMismatch
// (wrapped) when they differ. For audits: it is not counted in Mismatches.
func (s *Store) Check(d Digest) error {
	f, err := s.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	v := NewVerifyingReader(f, d)
	v.count = false
	_, err = io.Copy(io.Discard, v)
	return err
}
