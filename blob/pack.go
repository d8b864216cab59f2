package blob

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Packs hold the small blobs that arrive whole in memory (PutDeferred):
// appended one after another to a pack file instead of one file each.
// Creating a file costs the file system far more than appending to an open
// one (on the reference machine about 300 µs of CPU against 20 µs for
// 10 KB, see docs/architecture.md "Rows and files per message"), and one
// fdatasync of the pack makes a whole batch durable where syncfs(2) had to
// flush the whole file system.
//
// A pack is packs/NNNNNNNN, a sequence of records, each a 48-byte header —
// the magic "KEPB", a state byte (live or deleted), three zero bytes, the
// length of the data (8 bytes, big-endian), the SHA-256 of the data — then
// the data. Records are appended under a lock, in order, so that after a
// crash the durable records form a prefix of the file: scanning stops at
// the first header that is not whole and well formed (a torn, unsynced
// tail). A process appends only to a pack it created, so that no two
// processes write one pack and nobody truncates one. Deleting a blob marks
// its header deleted and punches a hole over its data: the bytes are gone
// at once, the space is returned to the file system.

const (
	packMagic      = "KEPB"
	packHeaderSize = 48
	packLive       = 1
	packDeleted    = 2
	// PackLimit is the largest blob PutDeferred appends to a pack; a
	// larger one gets a file of its own.
	PackLimit = 4 << 20
	// packRoll is the size after which the next append starts a new pack.
	packRoll = 1 << 30
)

// packLoc is where a packed blob's data lies.
type packLoc struct {
	pack int   // pack number
	off  int64 // offset of the record's header
	n    int64 // length of the data
}

// packs is the set of pack files of one store.
type packs struct {
	dir string

	mu      sync.Mutex
	index   map[Digest]packLoc
	older   map[Digest][]packLoc // earlier live copies of a digest stored again
	files   map[int]*os.File     // every pack known, open for reading (the active one for writing too)
	scanned map[int]int64        // how far each pack was indexed
	active  int                  // the pack this process appends to; 0: none yet
	size    int64                // its size
	dirty   bool                 // appended to since the last sync
}

func openPacks(dir string) (*packs, error) {
	p := &packs{dir: filepath.Join(dir, "packs"), index: map[Digest]packLoc{}, older: map[Digest][]packLoc{}, files: map[int]*os.File{}, scanned: map[int]int64{}}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refresh(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *packs) name(n int) string { return filepath.Join(p.dir, fmt.Sprintf("%08d", n)) }

// refresh indexes the packs and records this process has not seen yet
// (written by another process, or before it started). p.mu is held.
func (p *packs) refresh() error {
	ents, err := os.ReadDir(p.dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	var nums []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 0 && !strings.HasPrefix(e.Name(), "-") {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	for _, n := range nums {
		if n == p.active {
			continue // ours: indexed as it is written
		}
		f := p.files[n]
		if f == nil {
			if f, err = os.Open(p.name(n)); err != nil {
				return fmt.Errorf("blob: %w", err)
			}
			p.files[n] = f
		}
		if err := p.scan(n, f); err != nil {
			return err
		}
	}
	return nil
}

// scan indexes the records of pack n from where the last scan stopped, up
// to the first one not whole. A later record of a digest replaces an
// earlier one.
func (p *packs) scan(n int, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	off := p.scanned[n]
	var h [packHeaderSize]byte
	for off+packHeaderSize <= st.Size() {
		if _, err := f.ReadAt(h[:], off); err != nil {
			return fmt.Errorf("blob: pack %d: %w", n, err)
		}
		length := int64(binary.BigEndian.Uint64(h[8:16]))
		if string(h[:4]) != packMagic || (h[4] != packLive && h[4] != packDeleted) || length < 0 || length > st.Size()-off-packHeaderSize {
			break // a torn tail, or a record still being written
		}
		var d Digest
		copy(d[:], h[16:48])
		l := packLoc{pack: n, off: off, n: length}
		if h[4] == packLive {
			if old, ok := p.index[d]; !ok {
				p.index[d] = l
			} else if p.holds(f, l, d) {
				// The same bytes stored again: the later copy serves,
				// once it is known whole (a torn copy is left alone).
				p.older[d] = append(p.older[d], old)
				p.index[d] = l
			} else {
				p.older[d] = append(p.older[d], l)
			}
		}
		off += packHeaderSize + length
	}
	p.scanned[n] = off
	return nil
}

// put appends data, whose digest is d, to the active pack.
func (p *packs) put(d Digest, data []byte) error {
	buf := make([]byte, packHeaderSize+len(data))
	copy(buf, packMagic)
	buf[4] = packLive
	binary.BigEndian.PutUint64(buf[8:16], uint64(len(data)))
	copy(buf[16:48], d[:])
	copy(buf[packHeaderSize:], data)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active == 0 || p.size+int64(len(buf)) > packRoll {
		if err := p.roll(); err != nil {
			return err
		}
	}
	f := p.files[p.active]
	if _, err := f.WriteAt(buf, p.size); err != nil {
		// Whatever part was written is beyond the size recorded: the next
		// record overwrites it.
		return fmt.Errorf("blob: %w", err)
	}
	if old, ok := p.index[d]; ok {
		// The earlier copy stays live until d is deleted: marking it
		// now could reach the disk before the new copy does.
		p.older[d] = append(p.older[d], old)
	}
	p.index[d] = packLoc{pack: p.active, off: p.size, n: int64(len(data))}
	p.size += int64(len(buf))
	p.scanned[p.active] = p.size
	p.dirty = true
	return nil
}

// holds reports whether the record at l holds bytes that hash to d.
func (p *packs) holds(f *os.File, l packLoc, d Digest) bool {
	h := sha256.New()
	_, err := io.Copy(h, io.NewSectionReader(f, l.off+packHeaderSize, l.n))
	return err == nil && Digest(h.Sum(nil)) == d
}

// roll starts a new pack, after every existing one, and makes the earlier
// active pack and the new name durable. p.mu is held.
func (p *packs) roll() error {
	if err := p.refresh(); err != nil {
		return err
	}
	if p.active != 0 {
		if err := unix.Fdatasync(int(p.files[p.active].Fd())); err != nil {
			return fmt.Errorf("blob: sync pack: %w", err)
		}
	}
	n := 1
	for k := range p.files {
		n = max(n, k+1)
	}
	f, err := os.OpenFile(p.name(n), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if err := syncDir(p.dir); err != nil {
		f.Close()
		return err
	}
	p.files[n], p.active, p.size, p.scanned[n] = f, n, 0, 0
	return nil
}

// sync makes the records appended so far durable.
func (p *packs) sync() error {
	p.mu.Lock()
	if !p.dirty {
		p.mu.Unlock()
		return nil
	}
	p.dirty = false
	f := p.files[p.active]
	p.mu.Unlock()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		p.mu.Lock()
		p.dirty = true
		p.mu.Unlock()
		return fmt.Errorf("blob: sync pack: %w", err)
	}
	return nil
}

// lookup finds a packed blob, looking for records written since the last
// look when it is not known.
func (p *packs) lookup(d Digest) (packLoc, *os.File, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.index[d]
	if !ok {
		if p.refresh() != nil {
			return l, nil, false
		}
		if l, ok = p.index[d]; !ok {
			return l, nil, false
		}
	}
	return l, p.files[l.pack], true
}

// reader returns a reader over a packed blob's data.
func (p *packs) reader(d Digest) (*Reader, bool) {
	l, f, ok := p.lookup(d)
	if !ok {
		return nil, false
	}
	return &Reader{SectionReader: io.NewSectionReader(f, l.off+packHeaderSize, l.n)}, true
}

// delete removes a packed blob; it reports false when d is not packed.
func (p *packs) delete(d Digest) (bool, error) {
	if _, _, ok := p.lookup(d); !ok {
		return false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.index[d]
	if !ok {
		return true, nil
	}
	delete(p.index, d)
	err := p.retire(l)
	for _, o := range p.older[d] {
		if e := p.retire(o); err == nil {
			err = e
		}
	}
	delete(p.older, d)
	return true, err
}

// retire marks a record deleted and frees its data. p.mu is held.
func (p *packs) retire(l packLoc) error {
	f := p.files[l.pack]
	if l.pack != p.active {
		// Packs not ours are open read-only: reopen to write the mark.
		w, err := os.OpenFile(p.name(l.pack), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("blob: %w", err)
		}
		defer w.Close()
		f = w
	}
	if _, err := f.WriteAt([]byte{packDeleted}, l.off+4); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if l.n > 0 {
		// Best effort: a file system without hole punching keeps the
		// bytes, unreachable, until the pack is removed.
		unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, l.off+packHeaderSize, l.n)
	}
	return nil
}

// Reader is one blob open for reading, from its own file or from a pack.
type Reader struct {
	*io.SectionReader
	f *os.File // the blob's own file, closed by Close; nil for a packed blob
}

// Close releases the reader.
func (r *Reader) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}

// readAll reads a packed blob whole.
func (p *packs) readAll(d Digest) ([]byte, bool, error) {
	r, ok := p.reader(d)
	if !ok {
		return nil, false, nil
	}
	b := make([]byte, r.Size())
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, true, fmt.Errorf("blob: %w", err)
	}
	return b, true, nil
}
