package tlog_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
	"github.com/kephs/kep/tlog"
)

// TestTilePaths requests canonical and non-canonical tile paths of a
// 300-entry log (one full level-0 tile, a partial one of 44 hashes, a
// partial level-1 tile of 1): only canonical paths within the tree are
// served (C2SP tlog-tiles), full tiles alone are immutable, and refusals
// carry no internal detail (issue 9.6).
func TestTilePaths(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, err := tlog.Open(ctx, db, 512)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		const n = 300
		var es [][32]byte
		for i := range n {
			es = append(es, entry(i))
		}
		if _, err := l.Append(ctx, es, nil); err != nil {
			t.Fatal(err)
		}
		skey, _, _ := tlog.GenerateLogKey("hs01.kep.tr/log")
		signer, _ := note.NewSigner(skey)
		cper := &tlog.Checkpointer{DB: db, Origin: "hs01.kep.tr/log", Signer: signer, Stamper: fakeStamper{}}
		if _, err := cper.Catchup(ctx, n); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(tlog.Handler(db, func(ctx context.Context, start, end int64) ([][]byte, error) {
			var out [][]byte
			for s := start; s < end && s < n; s++ {
				e := entry(int(s))
				out = append(out, e[:])
			}
			return out, nil
		}))
		defer srv.Close()
		for _, c := range []struct {
			path      string
			status    int
			size      int
			immutable bool
		}{
			{"tile/0/000", 200, 256 * 32, true},
			{"tile/0/001.p/44", 200, 44 * 32, false},
			{"tile/0/001.p/10", 200, 10 * 32, false}, // an older tree's partial tile
			{"tile/1/000.p/1", 200, 32, false},
			{"tile/entries/000", 200, 256 * 34, true},
			{"tile/entries/001.p/44", 200, 44 * 34, false},
			// Beyond the tree.
			{"tile/0/001", 404, 0, false},
			{"tile/0/001.p/45", 404, 0, false},
			{"tile/0/002", 404, 0, false},
			{"tile/1/000", 404, 0, false},
			{"tile/1/000.p/2", 404, 0, false},
			{"tile/2/000.p/1", 404, 0, false},
			{"tile/7/000", 404, 0, false},
			{"tile/8/000", 404, 0, false}, // the shift overflowed: 8192 bytes of repeated hash, immutable
			{"tile/63/000", 404, 0, false},
			{"tile/entries/001", 404, 0, false},
			{"tile/entries/002.p/1", 404, 0, false},
			{"tile/0/x999/x999/x999/x999/x999/x999/x999/999", 404, 0, false},
			// Non-canonical spellings of served tiles.
			{"tile/0/+00.p/1", 404, 0, false},
			{"tile/0/-00", 404, 0, false},
			{"tile/0/ 00", 404, 0, false},
			{"tile/00/000", 404, 0, false},
			{"tile/+0/000", 404, 0, false},
			{"tile/0/x000/000", 404, 0, false},
			{"tile/0/00", 404, 0, false},
			{"tile/0/0000", 404, 0, false},
			{"tile/0/001.p/044", 404, 0, false},
			{"tile/0/001.p/+44", 404, 0, false},
			{"tile/0/000.p/256", 404, 0, false},
			{"tile/0/000.p/0", 404, 0, false},
			{"tile/0/000/", 404, 0, false},
			{"tile/0/000.p/", 404, 0, false},
			{"tile/entries/+00", 404, 0, false},
			{"tile/0//000", 404, 0, false},
			{"tiles/0/000", 404, 0, false},
		} {
			resp, err := http.Get(srv.URL + "/" + c.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cc := resp.Header.Get("Cache-Control")
			switch {
			case resp.StatusCode != c.status:
				t.Errorf("GET %s: %d, want %d (%d bytes, Cache-Control %q)", c.path, resp.StatusCode, c.status, len(body), cc)
			case c.status == 200 && len(body) != c.size:
				t.Errorf("GET %s: %d bytes, want %d", c.path, len(body), c.size)
			case strings.Contains(cc, "immutable") != c.immutable:
				t.Errorf("GET %s: Cache-Control %q", c.path, cc)
			case c.status != 200 && (strings.Contains(string(body), "tlog") || strings.Contains(string(body), "size") || len(body) > 40):
				t.Errorf("GET %s: the error body says too much: %q", c.path, body)
			}
		}
	})
}
