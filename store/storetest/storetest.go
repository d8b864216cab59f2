// Package storetest gives tests a fresh database on every backend: SQLite in
// a temporary directory always, and PostgreSQL when KEP_TEST_POSTGRES names
// a server (a DSN such as postgres://kep@127.0.0.1:54329/postgres). The
// test script sets it and KEP_REQUIRE_POSTGRES=1, so that in CI a missing
// PostgreSQL fails the run instead of silently testing one backend.
//
// Two ways to run a test keep the suite within its time budget: Each, on
// every backend, for what the repository does (SQL, migrations, invariants,
// transactions); OnSQLite, on SQLite alone, for tests whose cost and whose
// point is an external tool or a browser driving a front-end (swaks,
// mbsync, xmlsec1, chromium). The behaviour such a test relies on must be
// covered on every backend by an Each test of its own.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/kephs/kep/store"
)

// Backends lists the backends available to this run.
func Backends(t testing.TB) []store.Dialect {
	out := []store.Dialect{store.SQLite}
	if os.Getenv("KEP_TEST_POSTGRES") != "" {
		out = append(out, store.Postgres)
	} else if os.Getenv("KEP_REQUIRE_POSTGRES") == "1" {
		t.Fatal("KEP_REQUIRE_POSTGRES=1 but KEP_TEST_POSTGRES is not set")
	}
	return out
}

// Each runs fn once per backend, each time on a fresh, migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, d := range Backends(t) {
		t.Run(string(d), func(t *testing.T) {
			fn(t, Open(t, d))
		})
	}
}

// OnSQLite runs fn once, as subtest "sqlite", on a fresh migrated SQLite
// database: for tool-driven and browser tests (see the package comment).
func OnSQLite(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Run(string(store.SQLite), func(t *testing.T) {
		fn(t, Open(t, store.SQLite))
	})
}

// DSN creates a fresh empty database on backend d and returns its DSN; it
// is dropped when the test ends.
func DSN(t testing.TB, d store.Dialect) string {
	t.Helper()
	if d == store.SQLite {
		return "sqlite:" + filepath.Join(t.TempDir(), "kep.db")
	}
	base := os.Getenv("KEP_TEST_POSTGRES")
	if base == "" {
		t.Skip("KEP_TEST_POSTGRES not set")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	rand.Read(b[:])
	name := "kept_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// Open returns a fresh migrated database on backend d, closed when the test
// ends.
func Open(t testing.TB, d store.Dialect) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), DSN(t, d))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
