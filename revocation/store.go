package revocation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kephs/kep/store"
)

// ErrNotStored: no revocation data with that digest is stored.
var ErrNotStored = errors.New("revocation: no such revocation data")

// Put stores d under its digest (table revocation_data, migration 0009),
// once: storing the same bytes again does nothing. The table is append-only;
// the data is kept as long as the evidence citing it.
func Put(ctx context.Context, q store.Querier, d *Data) error {
	var next sql.NullInt64
	if !d.NextUpdate.IsZero() {
		next = sql.NullInt64{Int64: store.Millis(d.NextUpdate), Valid: true}
	}
	_, err := q.Exec(ctx, `INSERT INTO revocation_data (digest, kind, der, source, this_update, next_update, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
		d.DigestHex(), d.Kind, d.DER, d.Source, store.Millis(d.ThisUpdate), next, store.Millis(time.Now()))
	if err != nil {
		return fmt.Errorf("revocation: store %s data: %w", d.Kind, err)
	}
	return nil
}

// Keep stores d as Put does, once per process: the checker remembers the
// digests it has stored, so that every message a signer sends while one
// response is fresh costs no database write beyond the first. A Checker
// that keeps data serves one database.
func (c *Checker) Keep(ctx context.Context, q store.Querier, d *Data) error {
	key := d.Digest()
	c.mu.Lock()
	_, done := c.stored[key]
	c.mu.Unlock()
	if done {
		return nil
	}
	var err error
	if c.write != nil {
		err = c.write(ctx, func(ctx context.Context, tx *store.Tx) error { return Put(ctx, tx, d) })
	} else {
		err = Put(ctx, q, d)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	if len(c.stored) > 100000 {
		clear(c.stored)
	}
	c.stored[key] = struct{}{}
	c.mu.Unlock()
	return nil
}

// Get reads the revocation data stored under digest (hexadecimal SHA-256).
// The error matches ErrNotStored when there is none.
func Get(ctx context.Context, q store.Querier, digest string) (*Data, error) {
	d := &Data{}
	var this int64
	var next sql.NullInt64
	err := q.QueryRow(ctx, `SELECT kind, der, source, this_update, next_update FROM revocation_data WHERE digest = ?`, digest).
		Scan(&d.Kind, &d.DER, &d.Source, &this, &next)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotStored, digest)
	}
	if err != nil {
		return nil, fmt.Errorf("revocation: read %s: %w", digest, err)
	}
	d.ThisUpdate = store.FromMillis(this)
	if next.Valid {
		d.NextUpdate = store.FromMillis(next.Int64)
	}
	if d.DigestHex() != digest {
		return nil, fmt.Errorf("revocation: stored data %s does not match its digest", digest)
	}
	return d, nil
}
