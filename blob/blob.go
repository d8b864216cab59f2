// Package blob is in charge of the content store: message originals and
// other large immutable bytes kept as files named by their SHA-256 digest
// (content names "sha256:<hex>", Digest.Name),
// written durably (fsync of the file and of its directory before a write is
// reported done), streamed in and out so that a 100 MB message is never
// held in memory by the store.
package blob

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Algorithm names the hash that names every blob, in the form the database
// records beside a stored digest (messages.digest_alg, migration 0006) and
// docs/algorithms.md uses. The store has one algorithm; a store under
// another would be a new Store with a new Algorithm and a new prefix, and
// this one stays readable beside it.
const Algorithm = "sha-256"

// NamePrefix starts a self-describing content name (Name).
const NamePrefix = "sha256:"

// Digest is the SHA-256 of a blob's bytes, its name in the store.
type Digest [32]byte

// String returns the digest in lower-case hex, as the store's file names
// and older records hold it. Use Name where the name leaves the store.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// Name returns the self-describing content name, "sha256:" and the hex
// digest, so that no digest is implicitly SHA-256 (docs/architecture.md).
func (d Digest) Name() string { return NamePrefix + d.String() }

// Algorithm returns the algorithm that made d (Algorithm).
func (Digest) Algorithm() string { return Algorithm }

// ParseDigest reads a content name: "sha256:" and 64 hex digits, or the
// bare hex digits that names written before content names carried their
// algorithm hold. Another algorithm prefix is refused by name.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if alg, rest, ok := strings.Cut(s, ":"); ok {
		if alg+":" != NamePrefix {
			return d, fmt.Errorf("blob: content name %q uses algorithm %q; this content store names content by SHA-256 (%q)", s, alg, NamePrefix)
		}
		s = rest
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(d) {
		return d, fmt.Errorf("blob: %q is not a SHA-256 content name (%s and 64 hex digits)", s, NamePrefix)
	}
	copy(d[:], b)
	return d, nil
}

// ErrNotFound is returned for a digest the store does not hold.
var ErrNotFound = errors.New("blob: not in the content store")

// Store is a content store in a directory.
type Store struct {
	dir string
	// NoSync skips fsync; only for benchmarks that measure everything else.
	NoSync bool

	packs *packs // small blobs written whole (PutDeferred)

	// Group sync: writes committed with CommitDeferred are made durable
	// together by one syncfs(2), those of PutDeferred by one fdatasync of
	// their pack (see Sync).
	mu        sync.Mutex
	cond      *sync.Cond
	written   int64 // generation of the latest deferred write
	files     int64 // generation of the latest deferred write of a file of its own
	synced    int64 // every write up to this generation is durable
	syncing   bool
	lastError error
}

// Open opens (creating if needed) a content store in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	// One level of 256 directories, made once: blobs are spread by the
	// first byte of their digest.
	for i := 0; i < 256; i++ {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("%02x", i)), 0o700); err != nil {
			return nil, fmt.Errorf("blob: %w", err)
		}
	}
	p, err := openPacks(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, packs: p}
	s.cond = sync.NewCond(&s.mu)
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(d Digest) string {
	h := d.String()
	return filepath.Join(s.dir, h[:2], h)
}

// Writer streams a new blob into the store. Close (or Commit) makes it
// durable under its digest; Abort discards it.
type Writer struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// Create starts a new blob.
func (s *Store) Create() (*Writer, error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "in-*")
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Writer{s: s, f: f, h: sha256.New()}, nil
}

// Write appends to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Digest is the digest of the bytes written so far.
func (w *Writer) Digest() Digest {
	var d Digest
	copy(d[:], w.h.Sum(nil))
	return d
}

// File returns the temporary file being written, for reading back what was
// written before Commit (it is positioned at its end).
func (w *Writer) File() *os.File { return w.f }

// Commit makes the blob durable under its digest and returns it.
func (w *Writer) Commit() (Digest, error) {
	return w.commit(!w.s.NoSync)
}

// CommitDeferred puts the blob under its digest without waiting for the
// disk, and returns the generation to pass to Store.Sync, which makes it
// durable together with the other writes of the same moment.
func (w *Writer) CommitDeferred() (Digest, int64, error) {
	d, err := w.commit(false)
	if err != nil {
		return d, 0, err
	}
	return d, w.s.bump(true), nil
}

func (w *Writer) commit(durable bool) (Digest, error) {
	if w.done {
		return Digest{}, errors.New("blob: writer already finished")
	}
	w.done = true
	d := w.Digest()
	if durable {
		if err := w.f.Sync(); err != nil {
			w.abort()
			return d, fmt.Errorf("blob: sync: %w", err)
		}
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return d, fmt.Errorf("blob: %w", err)
	}
	// Renaming over a blob of the same digest replaces it with identical
	// bytes: harmless, and it repairs a half-written copy.
	final := w.s.path(d)
	dir := filepath.Dir(final)
	if err := os.Rename(w.f.Name(), final); err != nil {
		os.Remove(w.f.Name())
		return d, fmt.Errorf("blob: %w", err)
	}
	if durable {
		if err := syncDir(dir); err != nil {
			return d, err
		}
	}
	return d, nil
}

// Sync makes every deferred write up to generation gen durable. Callers
// arriving while a sync runs wait for the next one, which covers them all:
// one fdatasync of the pack, and one syncfs(2) when blobs of their own
// files were written, for a whole batch of messages (group commit for
// files).
func (s *Store) Sync(gen int64) error {
	if s.NoSync {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.synced < gen {
		if s.syncing {
			s.cond.Wait()
			continue
		}
		s.syncing = true
		target, files := s.written, s.files > s.synced
		s.mu.Unlock()
		err := s.packs.sync()
		if err == nil && files {
			err = s.syncfs()
		}
		s.mu.Lock()
		s.syncing = false
		if err == nil {
			s.synced = target
		}
		s.lastError = err
		s.cond.Broadcast()
		if err != nil {
			return err
		}
	}
	return nil
}

// syncfs flushes the file system holding the store: file data, the
// renames and the directories they are in.
func (s *Store) syncfs() error {
	f, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("blob: syncfs: %w", err)
	}
	return nil
}

// Abort discards the blob.
func (w *Writer) Abort() {
	if !w.done {
		w.done = true
		w.abort()
	}
}

func (w *Writer) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blob: sync directory: %w", err)
	}
	return nil
}

// PutDeferred stores a small blob held in memory — appended to a pack (see
// pack.go), no file of its own — and returns the generation to pass to Sync
// (see Writer.CommitDeferred). A blob larger than PackLimit gets a file of
// its own.
func (s *Store) PutDeferred(data []byte) (Digest, int64, error) {
	d := Digest(sha256.Sum256(data))
	if len(data) <= PackLimit {
		if err := s.packs.put(d, data); err != nil {
			return d, 0, err
		}
		return d, s.bump(false), nil
	}
	final := s.path(d)
	f, err := os.OpenFile(final, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		if have, err := os.ReadFile(final); err == nil && bytes.Equal(have, data) {
			return d, s.bump(true), nil
		}
		// Another writer is half-way through the same bytes: write a copy
		// of our own and rename it over (atomic).
		w, err := s.Create()
		if err != nil {
			return d, 0, err
		}
		w.Write(data)
		if _, err := w.commit(false); err != nil {
			return d, 0, err
		}
		return d, s.bump(true), nil
	}
	if err != nil {
		return d, 0, fmt.Errorf("blob: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(final)
		return d, 0, fmt.Errorf("blob: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(final)
		return d, 0, fmt.Errorf("blob: %w", err)
	}
	return d, s.bump(true), nil
}

// bump records a deferred write; file says it was a file of its own.
func (s *Store) bump(file bool) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written++
	if file {
		s.files = s.written
	}
	return s.written
}

// Put stores the bytes of r and returns their digest and size.
func (s *Store) Put(r io.Reader) (Digest, int64, error) {
	w, err := s.Create()
	if err != nil {
		return Digest{}, 0, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return Digest{}, 0, fmt.Errorf("blob: %w", err)
	}
	d, err := w.Commit()
	return d, w.n, err
}

// Open returns a reader over a blob.
func (s *Store) Open(d Digest) (*Reader, error) {
	if r, ok := s.packs.reader(d); ok {
		return r, nil
	}
	f, err := os.Open(s.path(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Reader{SectionReader: io.NewSectionReader(f, 0, st.Size()), f: f}, nil
}

// ReadAll returns a blob's bytes.
func (s *Store) ReadAll(d Digest) ([]byte, error) {
	if b, ok, err := s.packs.readAll(d); ok {
		return b, err
	}
	b, err := os.ReadFile(s.path(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	return b, err
}

// Has reports whether the store holds a blob.
func (s *Store) Has(d Digest) bool {
	if _, _, ok := s.packs.lookup(d); ok {
		return true
	}
	_, err := os.Stat(s.path(d))
	return err == nil
}

// Delete removes a blob; removing one that is not there is not an error.
func (s *Store) Delete(d Digest) error {
	if _, err := s.packs.delete(d); err != nil {
		return err
	}
	err := os.Remove(s.path(d))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob: %w", err)
	}
	return nil
}
