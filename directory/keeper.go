package directory

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kephs/kep/store"
)

// Keeper holds the directory a node trusts now. It loads the directory
// from a file or an HTTPS URL, checks the authority's signature, refuses
// any version older than the newest it has seen (persisted in the store,
// so that a restart cannot be rolled back either), and keeps the last good
// copy when a refresh fails or is forged.
type Keeper struct {
	Source        string   // a file path, or an https:// URL
	AuthorityKeys []string // the authority's note verifier keys
	DB            *store.DB
	HTTP          *http.Client // for an https:// source; nil uses http.DefaultClient
	Log           *slog.Logger
	Now           func() time.Time

	cur atomic.Pointer[held]
}

type held struct {
	dir    *Directory
	signed []byte
	at     time.Time
}

// Current returns the directory in force, or nil before the first load.
func (k *Keeper) Current() *Directory {
	if h := k.cur.Load(); h != nil {
		return h.dir
	}
	return nil
}

// Signed returns the signed bytes of the directory in force.
func (k *Keeper) Signed() []byte {
	if h := k.cur.Load(); h != nil {
		return h.signed
	}
	return nil
}

func (k *Keeper) now() time.Time {
	if k.Now != nil {
		return k.Now().UTC()
	}
	return time.Now().UTC()
}

func (k *Keeper) log() *slog.Logger {
	if k.Log != nil {
		return k.Log
	}
	return slog.Default()
}

// Load starts the keeper: the newest directory persisted in the store,
// then a refresh from the source. A failing source is tolerated when a
// persisted copy exists (logged); with neither, Load fails.
func (k *Keeper) Load(ctx context.Context) error {
	signed, err := k.persisted(ctx)
	if err != nil {
		return err
	}
	if signed != nil {
		d, err := Open(signed, k.AuthorityKeys...)
		if err != nil {
			return fmt.Errorf("directory: the stored copy no longer verifies: %w", err)
		}
		k.cur.Store(&held{dir: d, signed: signed, at: k.now()})
	}
	if err := k.Refresh(ctx); err != nil {
		if k.Current() == nil {
			return err
		}
		k.log().Error("directory refresh failed; keeping the last good copy", "err", err, "version", k.Current().Version)
	}
	return nil
}

// Refresh fetches the source and takes it when it verifies and is not
// older than the directory in force. The same version with other bytes is
// refused too: the authority never signs two editions under one number.
func (k *Keeper) Refresh(ctx context.Context) error {
	signed, err := k.fetch(ctx)
	if err != nil {
		return fmt.Errorf("directory: fetch %s: %w", k.Source, err)
	}
	d, err := Open(signed, k.AuthorityKeys...)
	if err != nil {
		return err
	}
	if cur := k.cur.Load(); cur != nil {
		switch {
		case d.Version < cur.dir.Version:
			return fmt.Errorf("%w: got version %d, have %d", ErrRollback, d.Version, cur.dir.Version)
		case d.Version == cur.dir.Version:
			if !bytes.Equal(signed, cur.signed) && !sameText(signed, cur.signed) {
				return fmt.Errorf("%w: version %d exists with other content", ErrMalformed, d.Version)
			}
			return nil
		}
	}
	if err := k.persist(ctx, d.Version, signed); err != nil {
		return err
	}
	k.cur.Store(&held{dir: d, signed: signed, at: k.now()})
	k.log().Info("directory loaded", "version", d.Version, "providers", len(d.Providers))
	return nil
}

// sameText reports whether two signed notes carry the same text (they may
// differ in signatures when the authority added a co-signature).
func sameText(a, b []byte) bool {
	ta, _, _ := strings.Cut(string(a), "\n\n")
	tb, _, _ := strings.Cut(string(b), "\n\n")
	return ta == tb
}

// Run refreshes every interval until ctx ends.
func (k *Keeper) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := k.Refresh(ctx); err != nil && ctx.Err() == nil {
			k.log().Error("directory refresh failed; keeping the last good copy", "err", err)
		}
	}
}

// maxDirectory bounds what a fetch reads.
const maxDirectory = 16 << 20

func (k *Keeper) fetch(ctx context.Context) ([]byte, error) {
	if !strings.HasPrefix(k.Source, "https://") {
		if strings.HasPrefix(k.Source, "http://") {
			return nil, errors.New("only https:// URLs or files are accepted")
		}
		f, err := os.Open(k.Source)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxDirectory))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.Source, nil)
	if err != nil {
		return nil, err
	}
	c := k.HTTP
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxDirectory))
}

func (k *Keeper) persisted(ctx context.Context) ([]byte, error) {
	if k.DB == nil {
		return nil, nil
	}
	var signed []byte
	err := k.DB.Q().QueryRow(ctx, `SELECT signed FROM directory_state WHERE id = 1`).Scan(&signed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return signed, err
}

// persist stores a newer directory; the statement itself refuses to lower
// the version, whatever another node did meanwhile.
func (k *Keeper) persist(ctx context.Context, version uint64, signed []byte) error {
	if k.DB == nil {
		return nil
	}
	_, err := k.DB.Q().Exec(ctx, `INSERT INTO directory_state (id, version, signed, updated_at) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version, signed = excluded.signed, updated_at = excluded.updated_at
		WHERE directory_state.version < excluded.version`, int64(version), signed, store.Millis(k.now()))
	return err
}
