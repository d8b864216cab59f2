package tlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kephs/kep/store"
)

// TileHeight is the height of C2SP tlog-tiles tiles: 256 hashes wide.
const TileHeight = 8

// EntryReader returns the entries (32-byte evidence digests) at leaf
// indexes [start, end).
type EntryReader func(ctx context.Context, start, end int64) ([][]byte, error)

// TilePath formats a C2SP tlog-tiles path for level (or -1 for the entry
// bundle), tile index n and partial width w (0 for a full tile).
func TilePath(level int, n int64, w int) string {
	var b strings.Builder
	b.WriteString("tile/")
	if level < 0 {
		b.WriteString("entries")
	} else {
		b.WriteString(strconv.Itoa(level))
	}
	b.WriteByte('/')
	b.WriteString(encodeIndex(n))
	if w > 0 && w < 1<<TileHeight {
		fmt.Fprintf(&b, ".p/%d", w)
	}
	return b.String()
}

// encodeIndex writes n in groups of three digits, all but the last prefixed
// with "x" (C2SP tlog-tiles, "Merkle Tree").
func encodeIndex(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

// parseTilePath reads "tile/<L>/<N>[.p/<W>]" or "tile/entries/<N>[.p/<W>]".
func parseTilePath(p string) (level int, n int64, w int, err error) {
	bad := fmt.Errorf("not a tile path: %q", p)
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return 0, 0, 0, bad
	}
	first, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, bad
	}
	if first == "entries" {
		level = -1
	} else if level, err = strconv.Atoi(first); err != nil || level < 0 || level > 63 || strconv.Itoa(level) != first {
		return 0, 0, 0, bad
	}
	w = 1 << TileHeight
	if i := strings.Index(rest, ".p/"); i >= 0 {
		if w, err = strconv.Atoi(rest[i+3:]); err != nil || w < 1 || w >= 1<<TileHeight || strconv.Itoa(w) != rest[i+3:] {
			return 0, 0, 0, bad
		}
		rest = rest[:i]
	}
	parts := strings.Split(rest, "/")
	for i, part := range parts {
		if i < len(parts)-1 {
			if !strings.HasPrefix(part, "x") {
				return 0, 0, 0, bad
			}
			part = part[1:]
		}
		if len(part) != 3 {
			return 0, 0, 0, bad
		}
		d, err := strconv.Atoi(part)
		if err != nil || d < 0 {
			return 0, 0, 0, bad
		}
		n = n*1000 + int64(d)
	}
	if len(parts) > 1 && parts[0] == "x000" {
		return 0, 0, 0, bad
	}
	return level, n, w, nil
}

// Handler serves the log to auditors (C2SP tlog-tiles):
//
//	GET /checkpoint                   the latest signed checkpoint
//	GET /tile/<L>/<N>[.p/<W>]         hash tiles
//	GET /tile/entries/<N>[.p/<W>]     entry bundles: 32-byte evidence digests,
//	                                  each prefixed by its big-endian uint16 length
//
// Mount it under a prefix with http.StripPrefix.
func Handler(db *store.DB, entries EntryReader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ctx := r.Context()
		p := strings.TrimPrefix(r.URL.Path, "/")
		cp, err := LatestCheckpoint(ctx, db.Q())
		if errors.Is(err, store.ErrNotFound) {
			http.Error(w, "the log has no checkpoint yet", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, "cannot read the log", http.StatusInternalServerError)
			return
		}
		if p == "checkpoint" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			w.Write(cp.Note)
			return
		}
		level, n, width, err := parseTilePath(p)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		data, err := tileData(ctx, db, entries, cp.Size, level, n, width)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if width == 1<<TileHeight {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		w.Write(data)
	})
}

func tileData(ctx context.Context, db *store.DB, entries EntryReader, size int64, level int, n int64, width int) ([]byte, error) {
	if level < 0 {
		start := n << TileHeight
		end := start + int64(width)
		if end > size {
			return nil, fmt.Errorf("entry bundle beyond the checkpoint of size %d", size)
		}
		es, err := entries(ctx, start, end)
		if err != nil {
			return nil, err
		}
		var out []byte
		for _, e := range es {
			out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
			out = append(out, e...)
		}
		return out, nil
	}
	t := tlog.Tile{H: TileHeight, L: level, N: n, W: width}
	// The tile must lie within the checkpointed tree.
	last := (n<<TileHeight + int64(width)) << (uint(level) * TileHeight)
	if last > size {
		return nil, fmt.Errorf("tile beyond the checkpoint of size %d", size)
	}
	return tlog.ReadTileData(t, HashReader(ctx, db.Q()))
}
