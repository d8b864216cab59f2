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

// parseTilePath reads "tile/<L>/<N>[.p/<W>]" or "tile/entries/<N>[.p/<W>]"
// in their canonical form only (C2SP tlog-tiles, "Merkle Tree"): a level
// in decimal without leading zeroes, each index group three ASCII digits,
// all but the last prefixed with "x" and the first not "x000", a width in
// decimal from 1 to 255. A path any other spelling of which would name the
// same tile ("+00", "x000/001", ".p/256") is not a tile path. Index n
// comes back at most maxN, so that the arithmetic on it cannot overflow.
func parseTilePath(p string, maxN int64) (level int, n int64, w int, err error) {
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
	} else if !allDigits(first) || len(first) > 2 {
		return 0, 0, 0, bad
	} else if level, _ = strconv.Atoi(first); strconv.Itoa(level) != first || level > 63/TileHeight {
		return 0, 0, 0, bad
	}
	w = 1 << TileHeight
	if i := strings.Index(rest, ".p/"); i >= 0 {
		ws := rest[i+3:]
		if !allDigits(ws) || len(ws) > 3 {
			return 0, 0, 0, bad
		}
		if w, _ = strconv.Atoi(ws); w < 1 || w >= 1<<TileHeight || strconv.Itoa(w) != ws {
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
		if len(part) != 3 || !allDigits(part) {
			return 0, 0, 0, bad
		}
		d, _ := strconv.Atoi(part)
		if n > (maxN-int64(d))/1000 {
			return 0, 0, 0, bad // beyond any tile the tree has
		}
		n = n*1000 + int64(d)
	}
	if len(parts) > 1 && parts[0] == "x000" {
		return 0, 0, 0, bad
	}
	return level, n, w, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// tileWithin reports whether the tile (level, n, width) lies within the
// tree of size leaves: at tile level L the tree has size>>(L·H) complete
// hashes (C2SP tlog-tiles: "the tile at level L, index N, holds the hashes
// N·2^H … N·2^H+W−1 of level L·H"); entry bundles are level 0.
func tileWithin(size int64, level int, n int64, width int) bool {
	if level < 0 {
		level = 0
	}
	count := size >> (uint(level) * TileHeight)
	if n < 0 || n > count>>TileHeight {
		return false
	}
	return n<<TileHeight+int64(width) <= count
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
		// Only canonical paths of tiles within the checkpointed tree are
		// served; the rest is 404 with a body that says no more than that.
		level, n, width, err := parseTilePath(p, cp.Size>>TileHeight)
		if err != nil || !tileWithin(cp.Size, level, n, width) {
			http.Error(w, "no such tile in this log", http.StatusNotFound)
			return
		}
		data, err := tileData(ctx, db, entries, level, n, width)
		if err != nil {
			http.Error(w, "cannot read the log", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if width == 1<<TileHeight {
			// A full tile within the tree never changes.
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		w.Write(data)
	})
}

// tileData reads a tile that tileWithin has placed in the tree.
func tileData(ctx context.Context, db *store.DB, entries EntryReader, level int, n int64, width int) ([]byte, error) {
	if level < 0 {
		start := n << TileHeight
		es, err := entries(ctx, start, start+int64(width))
		if err != nil {
			return nil, err
		}
		if len(es) != width {
			return nil, fmt.Errorf("tlog: entry bundle %d: %d of %d entries found", n, len(es), width)
		}
		var out []byte
		for _, e := range es {
			out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
			out = append(out, e...)
		}
		return out, nil
	}
	t := tlog.Tile{H: TileHeight, L: level, N: n, W: width}
	return tlog.ReadTileData(t, HashReader(ctx, db.Q()))
}
