package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

// schema is what the two backends must agree on, read back from a migrated
// database rather than from the migration files, so that every migration
// added later is compared without changing this test.
type schema struct {
	columns  map[string]string // "table.column" → "class null|notnull [pk]"
	indexes  map[string]string // index name → "table(col,…) unique? partial?"
	uniques  map[string]bool   // "table(col,…)": UNIQUE constraints of tables
	triggers map[string]bool   // "table INSERT|UPDATE|DELETE": a trigger guards it
}

// typeClass maps a declared column type to what both backends must share:
// SQLite's INTEGER is PostgreSQL's BIGINT, BLOB is BYTEA, and so on.
func typeClass(t string) string {
	t = strings.ToLower(t)
	switch {
	case strings.Contains(t, "int"), t == "serial", t == "bigserial":
		return "integer"
	case strings.Contains(t, "char"), strings.Contains(t, "text"), strings.Contains(t, "clob"):
		return "text"
	case strings.Contains(t, "blob"), t == "bytea":
		return "bytes"
	case strings.Contains(t, "real"), strings.Contains(t, "floa"), strings.Contains(t, "doub"), strings.Contains(t, "numeric"):
		return "real"
	case strings.Contains(t, "bool"):
		return "boolean"
	case strings.Contains(t, "time"), strings.Contains(t, "date"):
		return "time"
	}
	return t
}

func queryStrings(t *testing.T, db *store.DB, q string, args ...any) [][]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func newSchema() *schema {
	return &schema{columns: map[string]string{}, indexes: map[string]string{}, uniques: map[string]bool{}, triggers: map[string]bool{}}
}

// sqliteTrigger reads the table and event a trigger guards from its SQL.
var sqliteTrigger = regexp.MustCompile(`(?is)\bCREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+(?:BEFORE\s+|AFTER\s+|INSTEAD\s+OF\s+)?(INSERT|UPDATE|DELETE)\b.*?\bON\s+"?(\w+)"?`)

func sqliteSchema(t *testing.T, db *store.DB) *schema {
	s := newSchema()
	for _, r := range queryStrings(t, db, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`) {
		table := r[0]
		for _, c := range queryStrings(t, db, `SELECT name, type, "notnull", pk FROM pragma_table_info(?)`, table) {
			v := typeClass(c[1])
			// A PRIMARY KEY column is NOT NULL in PostgreSQL; say so here too.
			if c[2] == "1" || c[3] != "0" {
				v += " notnull"
			} else {
				v += " null"
			}
			if c[3] != "0" {
				v += " pk"
			}
			s.columns[table+"."+c[0]] = v
		}
		for _, ix := range queryStrings(t, db, `SELECT name, "unique", origin, partial FROM pragma_index_list(?)`, table) {
			var cols []string
			for _, c := range queryStrings(t, db, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, ix[0]) {
				cols = append(cols, c[0])
			}
			switch ix[2] {
			case "c":
				s.indexes[ix[0]] = indexDesc(table, cols, ix[1] == "1", ix[3] == "1")
			case "u":
				s.uniques[table+"("+strings.Join(cols, ",")+")"] = true
			}
		}
	}
	for _, r := range queryStrings(t, db, `SELECT name, sql FROM sqlite_master WHERE type = 'trigger'`) {
		m := sqliteTrigger.FindStringSubmatch(r[1])
		if m == nil {
			t.Fatalf("trigger %s: cannot read its event and table from %q", r[0], r[1])
		}
		s.triggers[m[2]+" "+strings.ToUpper(m[1])] = true
	}
	return s
}

func indexDesc(table string, cols []string, unique, partial bool) string {
	d := table + "(" + strings.Join(cols, ",") + ")"
	if unique {
		d += " unique"
	}
	if partial {
		d += " partial"
	}
	return d
}

func postgresSchema(t *testing.T, db *store.DB) *schema {
	s := newSchema()
	for _, c := range queryStrings(t, db, `
		SELECT c.table_name, c.column_name, c.data_type, c.is_nullable,
		       EXISTS (SELECT 1 FROM information_schema.table_constraints tc
		               JOIN information_schema.key_column_usage k
		                 ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema AND k.table_name = tc.table_name
		               WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema
		                 AND tc.table_name = c.table_name AND k.column_name = c.column_name)
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'`) {
		v := typeClass(c[2])
		if c[3] == "NO" {
			v += " notnull"
		} else {
			v += " null"
		}
		if c[4] == "true" {
			v += " pk"
		}
		s.columns[c[0]+"."+c[1]] = v
	}
	// Indexes made by CREATE INDEX: those that back no constraint.
	for _, r := range queryStrings(t, db, `
		SELECT i.relname, tb.relname, ix.indisunique, ix.indpred IS NOT NULL,
		       (SELECT string_agg(COALESCE(a.attname, 'expr'), ',' ORDER BY k.ord)
		          FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
		          LEFT JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum)
		FROM pg_index ix
		JOIN pg_class i ON i.oid = ix.indexrelid
		JOIN pg_class tb ON tb.oid = ix.indrelid
		JOIN pg_namespace n ON n.oid = tb.relnamespace
		WHERE n.nspname = current_schema()
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = ix.indexrelid)`) {
		s.indexes[r[0]] = indexDesc(r[1], strings.Split(r[4], ","), r[2] == "true", r[3] == "true")
	}
	for _, r := range queryStrings(t, db, `
		SELECT tb.relname,
		       (SELECT string_agg(a.attname, ',' ORDER BY k.ord)
		          FROM unnest(co.conkey) WITH ORDINALITY k(attnum, ord)
		          JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum)
		FROM pg_constraint co
		JOIN pg_class tb ON tb.oid = co.conrelid
		JOIN pg_namespace n ON n.oid = tb.relnamespace
		WHERE n.nspname = current_schema() AND co.contype = 'u'`) {
		s.uniques[r[0]+"("+r[1]+")"] = true
	}
	// pg_trigger.tgtype bits: 4 INSERT, 8 DELETE, 16 UPDATE (32 TRUNCATE,
	// which SQLite has no statement for, is not compared).
	for _, r := range queryStrings(t, db, `
		SELECT tb.relname, tg.tgtype & 4 <> 0, tg.tgtype & 8 <> 0, tg.tgtype & 16 <> 0
		FROM pg_trigger tg
		JOIN pg_class tb ON tb.oid = tg.tgrelid
		JOIN pg_namespace n ON n.oid = tb.relnamespace
		WHERE n.nspname = current_schema() AND NOT tg.tgisinternal`) {
		for i, ev := range []string{"INSERT", "DELETE", "UPDATE"} {
			if r[1+i] == "true" {
				s.triggers[r[0]+" "+ev] = true
			}
		}
	}
	return s
}

// diff lists the keys whose values differ between the two maps.
func diff[V comparable](what string, a, b map[string]V) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		va, ina := a[k]
		vb, inb := b[k]
		switch {
		case !inb:
			out = append(out, fmt.Sprintf("%s %s: only in SQLite (%v)", what, k, va))
		case !ina:
			out = append(out, fmt.Sprintf("%s %s: only in PostgreSQL (%v)", what, k, vb))
		case va != vb:
			out = append(out, fmt.Sprintf("%s %s: SQLite %v, PostgreSQL %v", what, k, va, vb))
		}
	}
	sort.Strings(out)
	return out
}

// TestSchemasAgree migrates a fresh database on each backend and compares
// what the database itself reports: tables and columns (type class,
// nullability, primary key), the indexes made by CREATE INDEX (table,
// columns, unique, partial), UNIQUE constraints, and which of INSERT,
// UPDATE and DELETE a trigger guards on each table (the invariants the
// database enforces: append-only evidence, addresses never reassigned, …).
func TestSchemasAgree(t *testing.T) {
	backends := storetest.Backends(t)
	if len(backends) < 2 {
		t.Skip("KEP_TEST_POSTGRES not set: only SQLite to compare (scripts/test sets it)")
	}
	lite := sqliteSchema(t, storetest.Open(t, store.SQLite))
	pg := postgresSchema(t, storetest.Open(t, store.Postgres))
	if len(lite.columns) == 0 || len(lite.triggers) == 0 || len(lite.indexes) == 0 {
		t.Fatalf("the SQLite schema looks empty: %d columns, %d indexes, %d guarded events", len(lite.columns), len(lite.indexes), len(lite.triggers))
	}
	var problems []string
	problems = append(problems, diff("column", lite.columns, pg.columns)...)
	problems = append(problems, diff("index", lite.indexes, pg.indexes)...)
	problems = append(problems, diff("unique constraint", lite.uniques, pg.uniques)...)
	problems = append(problems, diff("trigger on", lite.triggers, pg.triggers)...)
	for _, p := range problems {
		t.Error(p)
	}
	if len(problems) > 0 {
		t.Log("store/migrations/sqlite and store/migrations/postgres must describe the same schema: add the missing part to the other dialect's migration")
	}
}

// TestMigrationsInBothDialects: every migration exists for both backends,
// under the same number and name.
func TestMigrationsInBothDialects(t *testing.T) {
	names := func(d string) map[string]bool {
		out := map[string]bool{}
		err := fs.WalkDir(os.DirFS(filepath.Join("migrations", d)), ".", func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() && strings.HasSuffix(p, ".sql") {
				out[p] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	lite, pg := names("sqlite"), names("postgres")
	if len(lite) == 0 {
		t.Fatal("no migrations found under store/migrations/sqlite")
	}
	for _, p := range diff("migration", lite, pg) {
		t.Error(p)
	}
	numbers := map[string]string{}
	for n := range lite {
		num := strings.SplitN(n, "_", 2)[0]
		if other, ok := numbers[num]; ok {
			t.Errorf("migrations %s and %s share the number %s", other, n, num)
		}
		numbers[num] = n
	}
}
