package blob

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// TestPackReopen: packed blobs survive a restart, whatever a crash left at
// the pack's end after the last sync; deleted ones stay deleted.
func TestPackReopen(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail func(f *os.File, size int64) // what a crash left after the synced records
	}{
		{"clean", func(*os.File, int64) {}},
		{"half a header", func(f *os.File, size int64) { f.WriteAt([]byte(packMagic+"\x01\x00"), size) }},
		{"header without its data", func(f *os.File, size int64) {
			h := make([]byte, packHeaderSize)
			copy(h, packMagic)
			h[4], h[15] = packLive, 200
			f.WriteAt(h, size)
		}},
		{"zeros", func(f *os.File, size int64) { f.WriteAt(make([]byte, 8192), size) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			var ds []Digest
			var gen int64
			for i := 0; i < 5; i++ {
				d, g, err := s.PutDeferred([]byte(fmt.Sprintf("original %d\r\n", i)))
				if err != nil {
					t.Fatal(err)
				}
				ds, gen = append(ds, d), g
			}
			if err := s.Sync(gen); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ds[1]); err != nil || s.Has(ds[1]) {
				t.Fatalf("delete: %v", err)
			}
			f := s.packs.files[s.packs.active]
			st, _ := f.Stat()
			tc.tail(f, st.Size())

			s2, err := Open(dir) // the restarted process
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range ds {
				got, err := s2.ReadVerified(d)
				if i == 1 {
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("deleted blob: %v", err)
					}
					continue
				}
				if want := fmt.Sprintf("original %d\r\n", i); err != nil || string(got) != want {
					t.Fatalf("blob %d: %q, %v", i, got, err)
				}
			}
			// The restarted process appends to a pack of its own.
			d, g, err := s2.PutDeferred([]byte("after the restart"))
			if err != nil || s2.Sync(g) != nil {
				t.Fatal(err)
			}
			if s2.packs.active == s.packs.active {
				t.Fatal("the restarted process appends to the old pack")
			}
			if r, err := s2.Open(d); err != nil || r.Size() != int64(len("after the restart")) {
				t.Fatalf("open: %v", err)
			}
		})
	}
}

// TestPackOtherProcess: a store opened before a blob was packed by another
// process (kep log verify beside a running node) finds it.
func TestPackOtherProcess(t *testing.T) {
	dir := t.TempDir()
	writer, _ := Open(dir)
	reader, _ := Open(dir)
	data := []byte("written by the node")
	d, gen, err := writer.PutDeferred(data)
	if err != nil || writer.Sync(gen) != nil {
		t.Fatal(err)
	}
	if err := reader.Check(d); err != nil {
		t.Fatalf("the other process does not see the blob: %v", err)
	}
}

// TestPackSameTwice: bytes stored twice are deleted at once, every copy.
func TestPackSameTwice(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	data := []byte("the same original")
	d, _, _ := s.PutDeferred(data)
	if _, g, err := s.PutDeferred(data); err != nil || s.Sync(g) != nil {
		t.Fatal(err)
	}
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	if s2, _ := Open(dir); s2.Has(d) {
		t.Fatal("a copy of the deleted blob came back after a restart")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "packs", fmt.Sprintf("%08d", s.packs.active)))
	if bytes.Contains(b, data) {
		t.Fatal("the deleted bytes are still in the pack")
	}
}

// TestPackLarge: a blob above PackLimit gets a file of its own.
func TestPackLarge(t *testing.T) {
	s, _ := Open(t.TempDir())
	data := bytes.Repeat([]byte("x"), PackLimit+1)
	d, g, err := s.PutDeferred(data)
	if err != nil || s.Sync(g) != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.path(d)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, _ := io.Copy(io.Discard, r); n != int64(len(data)) {
		t.Fatalf("read %d bytes", n)
	}
}

// BenchmarkPutDeferredPackParallel10KB is submission's path: a 10 KB
// original packed and made durable by a group sync, 32 at a time.
func BenchmarkPutDeferredPackParallel10KB(b *testing.B) {
	s, _ := Open(b.TempDir())
	b.SetParallelism(16)
	var mu sync.Mutex
	n := 0
	b.SetBytes(10 << 10)
	b.RunParallel(func(pb *testing.PB) {
		data := make([]byte, 10<<10)
		for pb.Next() {
			mu.Lock()
			n++
			i := n
			mu.Unlock()
			data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16)
			_, gen, err := s.PutDeferred(data)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Sync(gen); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPackKilled kills (SIGKILL) a process packing originals while it
// writes, and checks that every original it reported durable reads back
// whole in a new process, which then packs on.
func TestPackKilled(t *testing.T) {
	if dir := os.Getenv("KEP_PACK_WRITER"); dir != "" {
		packWriter(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestPackKilled$")
	cmd.Env = append(os.Environ(), "KEP_PACK_WRITER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var durable []Digest
	for sc.Scan() && len(durable) < 300 {
		d, err := ParseDigest(sc.Text())
		if err != nil {
			continue
		}
		durable = append(durable, d)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(durable) < 300 {
		t.Fatalf("the writer reported %d originals before it stopped", len(durable))
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range durable {
		if _, err := s.ReadVerified(d); err != nil {
			t.Fatalf("an original reported durable: %v", err)
		}
	}
	d, g, err := s.PutDeferred([]byte("after the kill"))
	if err != nil || s.Sync(g) != nil || s.Check(d) != nil {
		t.Fatalf("packing after the kill: %v", err)
	}
}

// packWriter packs originals of varied sizes from 8 goroutines until it is
// killed, printing each digest once Sync reported it durable.
func packWriter(dir string) {
	s, err := Open(dir)
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	for g := 0; g < 8; g++ {
		go func(g int) {
			for i := 0; ; i++ {
				data := bytes.Repeat([]byte{byte(g), byte(i)}, 100+(i*37+g*11)%20000)
				d, gen, err := s.PutDeferred(data)
				if err == nil {
					err = s.Sync(gen)
				}
				if err != nil {
					panic(err)
				}
				mu.Lock()
				fmt.Println(d.Name())
				mu.Unlock()
			}
		}(g)
	}
	select {}
}
