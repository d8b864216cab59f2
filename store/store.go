// Package store is in charge of persistence: one repository layer over
// database/sql with two backends — SQLite through modernc.org/sqlite (the
// default; pure Go, WAL, fsync on every commit) and PostgreSQL through pgx —
// and the embedded, per-dialect migrations that shape both databases.
//
// Code above this package writes SQL with '?' placeholders; the DB rebinds
// them for PostgreSQL. Rules the provider must never break (an address is
// never reassigned, an account's owner never changes, evidence and the log
// are append-only) are enforced by constraints and triggers in the
// migrations, so that not even a bug above this package can break them.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names a database backend.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open store.
type DB struct {
	*sql.DB
	Dialect Dialect
	dsn     string

	// stmts caches prepared statements by query text: SQLite otherwise
	// parses every statement again on every execution.
	stmts  sync.Map // string → *sql.Stmt
	nstmts atomic.Int64
	// nrun counts the statements run through Q and Tx (Statements).
	nrun atomic.Int64
}

// maxCachedStmts bounds the statement cache (queries built with variable
// IN lists would otherwise grow it without end).
const maxCachedStmts = 2000

// stmt returns the prepared statement for q (already rebound), or nil when
// the cache is full or preparing fails (the caller then runs q directly).
func (db *DB) stmt(ctx context.Context, q string) *sql.Stmt {
	if v, ok := db.stmts.Load(q); ok {
		return v.(*sql.Stmt)
	}
	if db.nstmts.Load() >= maxCachedStmts {
		return nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	if v, loaded := db.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return v.(*sql.Stmt)
	}
	db.nstmts.Add(1)
	return st
}

// Errors the repositories return; match with errors.Is.
var (
	ErrNotFound   = errors.New("not found")
	ErrConflict   = errors.New("already exists")
	ErrAppendOnly = errors.New("append-only record cannot be changed or removed")
	ErrImmutable  = errors.New("field cannot be changed")
)

// Open opens the database named by dsn and brings its schema up to date.
//
//	sqlite:/path/to/kep.db   (or a bare path)  SQLite, WAL, synchronous=FULL
//	postgres://user@host/db?sslmode=disable     PostgreSQL
func Open(ctx context.Context, dsn string) (*DB, error) {
	var db *DB
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		sdb, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		sdb.SetMaxOpenConns(32)
		sdb.SetMaxIdleConns(16)
		sdb.SetConnMaxIdleTime(5 * time.Minute)
		db = &DB{DB: sdb, Dialect: Postgres, dsn: dsn}
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, errors.New("store: empty database path")
		}
		if path != ":memory:" {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, fmt.Errorf("store: %w", err)
			}
		}
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "busy_timeout(30000)", "cache_size(-65536)", "wal_autocheckpoint(8192)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		sdb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		sdb.SetMaxOpenConns(8)
		sdb.SetMaxIdleConns(8)
		sdb.SetConnMaxIdleTime(0)
		sdb.SetConnMaxLifetime(0)
		db = &DB{DB: sdb, Dialect: SQLite, dsn: dsn}
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: cannot reach the database: %w", err)
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Rebind rewrites '?' placeholders as $1, $2, … for PostgreSQL. Question
// marks inside single-quoted literals are left alone.
func (db *DB) Rebind(q string) string {
	return rebind(db.Dialect, q)
}

func rebind(d Dialect, q string) string {
	if d != Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n, inStr := 0, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			inStr = !inStr
			b.WriteByte(c)
		case c == '?' && !inStr:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Querier is what both *DB and *Tx offer: queries with '?' placeholders.
type Querier interface {
	Exec(ctx context.Context, q string, args ...any) (sql.Result, error)
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
	Dialect() Dialect
}

// Statements returns how many statements have been run through Q and Tx
// since Open: benchmarks divide it by the messages handled to report
// statements per message (docs/architecture.md, "Rows and files per
// message").
func (db *DB) Statements() int64 { return db.nrun.Load() }

// Q returns the DB as a Querier.
func (db *DB) Q() Querier { return dbq{db} }

type dbq struct{ db *DB }

func (q dbq) Exec(ctx context.Context, s string, args ...any) (sql.Result, error) {
	q.db.nrun.Add(1)
	s = q.db.Rebind(s)
	if st := q.db.stmt(ctx, s); st != nil {
		r, err := st.ExecContext(ctx, args...)
		return r, mapErr(err)
	}
	r, err := q.db.ExecContext(ctx, s, args...)
	return r, mapErr(err)
}
func (q dbq) Query(ctx context.Context, s string, args ...any) (*sql.Rows, error) {
	q.db.nrun.Add(1)
	s = q.db.Rebind(s)
	if st := q.db.stmt(ctx, s); st != nil {
		r, err := st.QueryContext(ctx, args...)
		return r, mapErr(err)
	}
	r, err := q.db.QueryContext(ctx, s, args...)
	return r, mapErr(err)
}
func (q dbq) QueryRow(ctx context.Context, s string, args ...any) *sql.Row {
	q.db.nrun.Add(1)
	s = q.db.Rebind(s)
	if st := q.db.stmt(ctx, s); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.db.QueryRowContext(ctx, s, args...)
}
func (q dbq) Dialect() Dialect { return q.db.Dialect }

// Tx is a transaction with '?' placeholders.
type Tx struct {
	tx *sql.Tx
	d  Dialect
	db *DB
}

// txStmt returns the cached statement bound to the transaction, or nil.
// database/sql reuses the statement already prepared on the transaction's
// connection.
func (t *Tx) txStmt(ctx context.Context, s string) *sql.Stmt {
	if t.db == nil || strings.HasPrefix(s, "SAVEPOINT") || strings.HasPrefix(s, "RELEASE") || strings.HasPrefix(s, "ROLLBACK") {
		return nil
	}
	// Only a statement prepared already: preparing takes a connection from
	// the pool, and a transaction holding SQLite's write lock while it
	// waits for one deadlocks with the BEGINs that hold the pool's
	// connections waiting for that lock (until busy_timeout). The first
	// use runs unprepared and prepares for the next, off the transaction.
	v, ok := t.db.stmts.Load(s)
	if !ok {
		if t.db.nstmts.Load() < maxCachedStmts {
			go t.db.stmt(context.WithoutCancel(ctx), s)
		}
		return nil
	}
	return t.tx.StmtContext(ctx, v.(*sql.Stmt))
}

func (t *Tx) Exec(ctx context.Context, s string, args ...any) (sql.Result, error) {
	if t.db != nil {
		t.db.nrun.Add(1)
	}
	s = rebind(t.d, s)
	if st := t.txStmt(ctx, s); st != nil {
		r, err := st.ExecContext(ctx, args...)
		return r, mapErr(err)
	}
	r, err := t.tx.ExecContext(ctx, s, args...)
	return r, mapErr(err)
}
func (t *Tx) Query(ctx context.Context, s string, args ...any) (*sql.Rows, error) {
	if t.db != nil {
		t.db.nrun.Add(1)
	}
	s = rebind(t.d, s)
	if st := t.txStmt(ctx, s); st != nil {
		r, err := st.QueryContext(ctx, args...)
		return r, mapErr(err)
	}
	r, err := t.tx.QueryContext(ctx, s, args...)
	return r, mapErr(err)
}
func (t *Tx) QueryRow(ctx context.Context, s string, args ...any) *sql.Row {
	if t.db != nil {
		t.db.nrun.Add(1)
	}
	s = rebind(t.d, s)
	if st := t.txStmt(ctx, s); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, s, args...)
}
func (t *Tx) Dialect() Dialect { return t.d }

// InTx runs fn in one transaction, committing when fn returns nil and rolling
// back otherwise. Nothing fn writes is visible unless all of it is.
func (db *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	stx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", mapErr(err))
	}
	tx := &Tx{tx: stx, d: db.Dialect, db: db}
	if err := fn(tx); err != nil {
		stx.Rollback()
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", mapErr(err))
	}
	return nil
}

// InsertID runs an INSERT … RETURNING id and returns the id.
func InsertID(ctx context.Context, q Querier, s string, args ...any) (int64, error) {
	var id int64
	if err := q.QueryRow(ctx, s+" RETURNING id", args...).Scan(&id); err != nil {
		return 0, mapErr(err)
	}
	return id, nil
}

// mapErr turns driver errors into the package's sentinel errors, keeping
// the driver's message for people.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "append-only"):
		return fmt.Errorf("%w: %s", ErrAppendOnly, msg)
	case strings.Contains(msg, "immutable"):
		return fmt.Errorf("%w: %s", ErrImmutable, msg)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %s", ErrConflict, msg)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: %s (%s)", ErrConflict, pe.Message, pe.ConstraintName)
	}
	return err
}

// MapErr is mapErr for callers scanning rows themselves.
func MapErr(err error) error { return mapErr(err) }

// Millis converts a time to the integer milliseconds the schema stores.
func Millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// FromMillis is the inverse of Millis.
func FromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// NullMillis stores a zero time as NULL.
func NullMillis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}
