package tlog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	gosql "database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	sumtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
	"github.com/kephs/kep/tlog"
)

// evidenceReader reads evidence rows for tlog.Audit as the kep command
// does: the document decoded, and its identifier and code compared with
// the row's columns.
func evidenceReader(q store.Querier) tlog.AuditReader {
	return func(ctx context.Context, start, end int64) ([]tlog.AuditEntry, error) {
		rows, err := q.Query(ctx, `SELECT seq, id, code, format, xml FROM evidence WHERE seq >= ? AND seq < ? ORDER BY seq`, start, end)
		if err != nil {
			return nil, err
		}
		type raw struct {
			seq, format int64
			id          string
			code        int
			xml         []byte
		}
		var rs []raw
		for rows.Next() {
			var r raw
			if err := rows.Scan(&r.seq, &r.id, &r.code, &r.format, &r.xml); err != nil {
				rows.Close()
				return nil, err
			}
			rs = append(rs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		out := make([]tlog.AuditEntry, len(rs))
		for i, r := range rs {
			out[i] = tlog.AuditEntry{Seq: r.seq, ID: r.id}
			doc, err := evidence.Decode(ctx, q, r.format, r.xml)
			if err != nil {
				out[i].Err = err
				continue
			}
			out[i].Document = doc
			e, err := evidence.Parse(doc)
			if err == nil {
				out[i].Time = e.EventTime
			}
			switch {
			case err != nil:
				out[i].Err = err
			case e.ID != r.id:
				out[i].Err = fmt.Errorf("its id column says %s, its document %s", r.id, e.ID)
			case int(e.Code) != r.code:
				out[i].Err = fmt.Errorf("its code column says %d, its document %d", r.code, e.Code)
			}
		}
		return out, nil
	}
}

// auditWorld is a provider whose log has 40 evidences: checkpoints of
// sizes 8, 13 (re-time-stamped once) and 33 (re-time-stamped once, an hour
// later), and 7 not checkpointed yet.
type auditWorld struct {
	w    *providertest.World
	seqs []int64
	ids  []string
}

func newAuditWorld(t *testing.T, w *providertest.World) *auditWorld {
	t.Helper()
	ctx := context.Background()
	aw := &auditWorld{w: w}
	n := aw.w.Node
	issue := func(k int) {
		for range k {
			e := &evidence.Evidence{Code: evidence.Accepted, SubmissionTime: aw.w.Clock.Now(),
				SenderAuthentication: evidence.Authentication{Method: evidence.AuthSMTPCMS, Time: aw.w.Clock.Now()},
				Sender:               evidence.Party{Address: "ayse.yilmaz@hs01.kep.tr"},
				Recipients:           []evidence.Party{{Address: "mehmet.ozturk@hs01.kep.tr"}},
				Message: evidence.Message{MessageID: "<1@client>", IletiID: evidence.NewID(), IletiTip: evidence.IletiTipStandart,
					DigestAlgorithm: evidence.DigestSHA256, Digest: make([]byte, 32), Size: 100}}
			rec := &evidence.Record{Evidence: e}
			if err := n.Issuer.Issue(ctx, []*evidence.Record{rec}, nil); err != nil {
				t.Fatal(err)
			}
			aw.seqs = append(aw.seqs, rec.Seq)
			aw.ids = append(aw.ids, e.ID)
		}
		aw.w.Clock.Advance(time.Second)
	}
	checkpoint := func() {
		if _, err := n.Checkpointer.Catchup(ctx, n.Log.Size()); err != nil {
			t.Fatal(err)
		}
	}
	issue(8)
	checkpoint()
	issue(5)
	checkpoint()
	if _, _, err := n.Checkpointer.Retimestamp(ctx); err != nil {
		t.Fatal(err)
	}
	issue(20)
	checkpoint()
	aw.w.Clock.Advance(time.Hour)
	if _, _, err := n.Checkpointer.Retimestamp(ctx); err != nil {
		t.Fatal(err)
	}
	issue(7)
	return aw
}

func (aw *auditWorld) audit(t *testing.T, chunk int, against []byte) (tlog.AuditSummary, []tlog.Problem) {
	t.Helper()
	var got []tlog.Problem
	n := aw.w.Node
	sum, err := tlog.Audit(context.Background(), n.DB, evidenceReader(n.DB.Q()), tlog.AuditOptions{
		VerifierKey: n.LogKey, TSARoots: n.TSARoots, Chunk: chunk, Report: func(p tlog.Problem) { got = append(got, p) },
		Against: against, Interval: time.Second, Now: aw.w.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Problems != int64(len(got)) {
		t.Fatalf("summary counts %d problems, %d reported", sum.Problems, len(got))
	}
	return sum, got
}

// stmt is one SQL statement and its arguments.
type stmt struct {
	q    string
	args []any
}

func sql(q string, args ...any) stmt { return stmt{q, args} }

// tamper changes the store behind the application's back: the append-only
// triggers dropped (SQLite) or disabled (PostgreSQL), then raw SQL.
func tamper(t *testing.T, db *store.DB, stmts ...stmt) {
	t.Helper()
	ctx := context.Background()
	var pre []string
	if db.Dialect == store.SQLite {
		for _, tr := range []string{"evidence_no_update", "evidence_no_delete", "tlog_hashes_no_update", "tlog_hashes_no_delete",
			"checkpoints_no_update", "checkpoint_stamps_no_update", "checkpoints_no_delete", "checkpoint_stamps_no_delete"} {
			pre = append(pre, "DROP TRIGGER IF EXISTS "+tr)
		}
	} else {
		for _, table := range []string{"evidence", "tlog_hashes", "checkpoints", "checkpoint_stamps"} {
			pre = append(pre, "ALTER TABLE "+table+" DISABLE TRIGGER USER")
		}
	}
	for _, s := range pre {
		if _, err := db.Q().Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for _, s := range stmts {
		res, err := db.Q().Exec(ctx, s.q, s.args...)
		if err != nil {
			t.Fatalf("%s: %v", s.q, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			t.Fatalf("%s: no row changed", s.q)
		}
	}
}

// withoutForeignKeys runs a statement on one connection with the foreign
// key checks off, as the sqlite3 shell runs by default (PostgreSQL: as a
// replication role), the append-only triggers dropped first.
func withoutForeignKeys(t *testing.T, aw *auditWorld, q string) {
	t.Helper()
	ctx := context.Background()
	tamper(t, aw.w.Node.DB)
	driver, dsn, pre := "pgx", aw.w.Node.Config.DSN(), "SET session_replication_role = replica"
	if aw.w.Node.DB.Dialect == store.SQLite {
		driver, dsn, pre = "sqlite", strings.TrimPrefix(dsn, "sqlite:"), "PRAGMA foreign_keys = OFF"
	}
	db, err := gosql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range []string{pre, q} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// kinds summarises problems as "kind seq/size" strings, sorted.
func kinds(ps []tlog.Problem) []string {
	var out []string
	for _, p := range ps {
		switch {
		case p.Seq >= 0:
			out = append(out, fmt.Sprintf("%s %d", p.Kind, p.Seq))
		case p.Size > 0:
			out = append(out, fmt.Sprintf("%s @%d", p.Kind, p.Size))
		default:
			out = append(out, string(p.Kind))
		}
	}
	sort.Strings(out)
	return out
}

func storedDocument(t *testing.T, aw *auditWorld, seq int64) []byte {
	t.Helper()
	st, err := evidence.GetSeq(context.Background(), aw.w.Q(), seq)
	if err != nil {
		t.Fatal(err)
	}
	return st.Document
}

func TestAuditClean(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		aw := newAuditWorld(t, w)
		for _, chunk := range []int{1, 7, 1000} {
			sum, got := aw.audit(t, chunk, nil)
			if len(got) != 0 {
				t.Fatalf("chunk %d: problems in an untouched log: %v", chunk, got)
			}
			if sum.Size != 40 || sum.Evidence != 40 || sum.Checkpoints != 3 || sum.Stamps != 5 || sum.Links != 3 || sum.Covered != 33 || sum.Hashes != sumtlog.StoredHashCount(40) {
				t.Fatalf("chunk %d: summary %+v", chunk, sum)
			}
			root, err := tlog.TreeHash(context.Background(), aw.w.Q(), 40)
			if err != nil || sum.Root != root {
				t.Fatalf("recomputed root differs from the stored tree's: %v", err)
			}
		}
	})
}

func TestAuditTampering(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, aw *auditWorld) []stmt
		want   []string // kinds(problems)
		words  []string // in the problem lines
		// against is the size of a checkpoint an outside auditor saved
		// before the change, or 0.
		against int64
	}{
		{"document changed", func(t *testing.T, aw *auditWorld) []stmt {
			doc := bytes.Replace(storedDocument(t, aw, 5), []byte("mehmet.ozturk"), []byte("mehmet.ozturq"), 1)
			format, data := evidence.Encode(doc, aw.w.Node.Issuer.Dict)
			return []stmt{sql(`UPDATE evidence SET xml = ?, format = ? WHERE seq = 5`, data, format)}
		}, []string{"evidence-changed 5"}, []string{"evidence 5 (id ", "its document does not match the log (changed after it was logged)"}, 0},
		{"document stored raw and changed", func(t *testing.T, aw *auditWorld) []stmt {
			doc := slices.Clone(storedDocument(t, aw, 20))
			doc[len(doc)-2] ^= 1
			return []stmt{sql(`UPDATE evidence SET xml = ?, format = 0 WHERE seq = 20`, doc)}
		}, []string{"evidence-changed 20", "evidence-row 20"}, []string{"evidence 20 (id ", "changed after it was logged"}, 0},
		{"document damaged", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`UPDATE evidence SET xml = ? WHERE seq = 2`, []byte("not deflate at all"))}
		}, []string{"evidence-changed 2"}, []string{"evidence 2 (id ", "cannot be read"}, 0},
		{"code changed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`UPDATE evidence SET code = 41 WHERE seq = 6`)}
		}, []string{"evidence-row 6"}, []string{"evidence 6 (id ", "code column says 41"}, 0},
		{"row removed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`DELETE FROM evidence WHERE seq = 7`)}
		}, []string{"evidence-missing 7"}, []string{"evidence 7: missing from the store"}, 0},
		{"rows reordered", func(t *testing.T, aw *auditWorld) []stmt {
			// Two rows' leaf indexes swapped, through a free one.
			return []stmt{sql(`UPDATE evidence SET seq = -1 WHERE seq = 3`), sql(`UPDATE evidence SET seq = 3 WHERE seq = 30`), sql(`UPDATE evidence SET seq = 30 WHERE seq = -1`)}
		}, []string{"evidence-moved 3", "evidence-moved 30"}, []string{"holds the document logged at leaf 30", "holds the document logged at leaf 3 "}, 0},
		{"leaf hash changed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`UPDATE tlog_hashes SET hash = ? WHERE idx = ?`, make([]byte, 32), sumtlog.StoredHashIndex(0, 10))}
		}, []string{"log-hash 10"}, []string{fmt.Sprintf("stored log hash %d, the leaf of evidence 10", sumtlog.StoredHashIndex(0, 10)), "was changed"}, 0},
		{"inner hash changed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`UPDATE tlog_hashes SET hash = ? WHERE idx = ?`, make([]byte, 32), sumtlog.StoredHashIndex(2, 3))}
		}, []string{"log-hash"}, []string{"(level 2, node 3) was changed"}, 0},
		{"hash removed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`DELETE FROM tlog_hashes WHERE idx = ?`, sumtlog.StoredHashIndex(1, 4))}
		}, []string{"log-hash"}, []string{"(level 1, node 4) is missing"}, 0},
		{"checkpoint note changed", func(t *testing.T, aw *auditWorld) []stmt {
			cp, _ := tlog.GetCheckpoint(context.Background(), aw.w.Q(), 13)
			n := bytes.Replace(cp.Note, []byte("\n13\n"), []byte("\n12\n"), 1)
			return []stmt{sql(`UPDATE checkpoints SET note = ? WHERE size = 13`, n)}
		}, []string{"checkpoint @13", "timestamp @13", "timestamp @13"}, []string{"checkpoint of size 13: its note does not verify", "checkpoint of size 13: its time stamp does not verify"}, 0},
		{"checkpoint root changed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`UPDATE checkpoints SET root = ? WHERE size = 8`, make([]byte, 32))}
		}, []string{"checkpoint @8"}, []string{"checkpoint of size 8: its root column differs"}, 0},
		{"checkpoint time stamp changed", func(t *testing.T, aw *auditWorld) []stmt {
			cp, _ := tlog.GetCheckpoint(context.Background(), aw.w.Q(), 33)
			tst := slices.Clone(cp.TST)
			tst[len(tst)-3] ^= 1 // in the TSA's signature
			return []stmt{sql(`UPDATE checkpoints SET tst = ? WHERE size = 33`, tst)}
		}, []string{"timestamp @33"}, []string{"checkpoint of size 33: its time stamp does not verify"}, 0},
		{"checkpoint time stamp swapped", func(t *testing.T, aw *auditWorld) []stmt {
			cp, _ := tlog.GetCheckpoint(context.Background(), aw.w.Q(), 8)
			return []stmt{sql(`UPDATE checkpoints SET tst = ? WHERE size = 13`, cp.TST)}
		}, []string{"timestamp @13"}, []string{"checkpoint of size 13: its time stamp does not verify"}, 0},
		{"later time stamp changed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`UPDATE checkpoint_stamps SET tst_time = tst_time + 1000 WHERE size = 33`)}
		}, []string{"timestamp @33"}, []string{"checkpoint of size 33: its later time stamp 1 says"}, 0},
		{"row added", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`INSERT INTO evidence (seq, id, code, stage, event_time, format, xml) VALUES (45, 'extra', 10, 'submission', 0, 0, ?)`, []byte("<x/>"))}
		}, []string{"evidence-unlogged 45"}, []string{"evidence 45 (id extra): not in the log"}, 0},
		{"evidence after the last checkpoint changed", func(t *testing.T, aw *auditWorld) []stmt {
			doc := bytes.Replace(storedDocument(t, aw, 36), []byte("mehmet.ozturk"), []byte("mehmet.ozturq"), 1)
			return []stmt{sql(`UPDATE evidence SET xml = ?, format = 0 WHERE seq = 36`, doc)}
		}, []string{"evidence-changed 36"}, []string{"evidence 36 (id ", "no checkpoint covers it yet"}, 0},
		// Checkpoints and stamps removed: named by the next checkpoint's
		// link, by the leaves left uncovered, or by an outside checkpoint.
		{"first checkpoint removed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`DELETE FROM checkpoints WHERE size = 8`)}
		}, []string{"checkpoint-missing @8"}, []string{"checkpoint of size 8: missing from the store (removed), though the checkpoint of size 13 names it"}, 0},
		{"middle checkpoint removed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`DELETE FROM checkpoint_stamps WHERE size = 13`), sql(`DELETE FROM checkpoints WHERE size = 13`)}
		}, []string{"checkpoint-missing @13"}, []string{"checkpoint of size 13: missing from the store (removed), though the checkpoint of size 33 names it"}, 0},
		{"later time stamp removed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`DELETE FROM checkpoint_stamps WHERE size = 13`)}
		}, []string{"checkpoint-missing @13"}, []string{"checkpoint of size 13: 1 of its later time stamps are missing (removed)"}, 0},
		{"latest checkpoint removed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`DELETE FROM checkpoint_stamps WHERE size = 33`), sql(`DELETE FROM checkpoints WHERE size = 33`)}
		}, []string{"uncovered 13"}, []string{"evidence 13 to 39 (27 entries", "no checkpoint covers them, though the log went on for 1h0m"}, 0},
		{"latest checkpoint removed, an outside auditor saved it", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`DELETE FROM checkpoint_stamps WHERE size = 33`), sql(`DELETE FROM checkpoints WHERE size = 33`)}
		}, []string{"checkpoint-missing @33", "uncovered 13"}, []string{"checkpoint of size 33: missing from the store (removed), though an outside auditor saved it"}, 33},
		{"latest checkpoint removed, its later stamp left", func(t *testing.T, aw *auditWorld) []stmt {
			withoutForeignKeys(t, aw, `DELETE FROM checkpoints WHERE size = 33`)
			return nil
		}, []string{"checkpoint-missing @33", "uncovered 13"}, []string{"checkpoint of size 33: missing from the store (removed), though 1 later time stamps over it remain"}, 0},
		{"all checkpoints and stamps removed", func(t *testing.T, aw *auditWorld) []stmt {
			return []stmt{sql(`DELETE FROM checkpoint_stamps`), sql(`DELETE FROM checkpoints`)}
		}, []string{"uncovered 0"}, []string{"evidence 0 to 39 (40 entries", "no checkpoint covers them"}, 0},
	}
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		for _, c := range cases {
			t.Run(strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
				aw := newAuditWorld(t, providertest.New(t, w.Node.DB.Dialect))
				var against []byte
				if c.against > 0 {
					cp, err := tlog.GetCheckpoint(context.Background(), aw.w.Q(), c.against)
					if err != nil {
						t.Fatal(err)
					}
					against = cp.Note
				}
				tamper(t, aw.w.Node.DB, c.change(t, aw)...)
				_, got := aw.audit(t, 7, against)
				var lines []string
				for _, p := range got {
					lines = append(lines, p.String())
				}
				if k := kinds(got); !slices.Equal(k, c.want) {
					t.Fatalf("problems %v, want %v:\n%s", k, c.want, strings.Join(lines, "\n"))
				}
				all := strings.Join(lines, "\n") + "\n"
				for _, word := range c.words {
					if !strings.Contains(all, word) {
						t.Errorf("no problem says %q:\n%s", word, all)
					}
				}
				t.Logf("%s", all)
			})
		}
	})
}

// TestAuditLargeLog audits logs of many sizes whose entries are plain byte
// strings, against the tree as the log stores it: the recomputed right
// frontier must give every checkpoint's root and every stored hash.
func TestAuditLargeLog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l, err := tlog.Open(ctx, db, 256)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		skey, vkey, _ := tlog.GenerateLogKey("hs01.kep.tr/log")
		signer, _ := note.NewSigner(skey)
		cper := &tlog.Checkpointer{DB: db, Origin: "hs01.kep.tr/log", Signer: signer, Stamper: fakeStamper{}}
		doc := func(i int64) []byte { return fmt.Appendf(nil, "evidence %d", i) }
		next := int64(0)
		for _, batch := range []int{1, 1, 2, 5, 64, 100, 255, 256, 257, 1000, 1} {
			entries := make([][32]byte, batch)
			for i := range entries {
				entries[i] = sha256.Sum256(doc(next + int64(i)))
			}
			_, err := l.Append(ctx, entries, func(ctx context.Context, tx *store.Tx, first int64) error {
				for i := range entries {
					seq := first + int64(i)
					if _, err := tx.Exec(ctx, `INSERT INTO evidence (seq, id, code, stage, event_time, format, xml) VALUES (?, ?, 10, 'submission', 0, 0, ?)`,
						seq, fmt.Sprint("id-", seq), doc(seq)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			next += int64(batch)
			if _, err := cper.Catchup(ctx, l.Size()); err != nil {
				t.Fatal(err)
			}
		}
		read := func(ctx context.Context, start, end int64) ([]tlog.AuditEntry, error) {
			rows, err := db.Q().Query(ctx, `SELECT seq, id, xml FROM evidence WHERE seq >= ? AND seq < ? ORDER BY seq`, start, end)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []tlog.AuditEntry
			for rows.Next() {
				var e tlog.AuditEntry
				if err := rows.Scan(&e.Seq, &e.ID, &e.Document); err != nil {
					return nil, err
				}
				out = append(out, e)
			}
			return out, rows.Err()
		}
		for _, chunk := range []int{3, 256, 5000} {
			var got []tlog.Problem
			sum, err := tlog.Audit(ctx, db, read, tlog.AuditOptions{VerifierKey: vkey, Chunk: chunk, Report: func(p tlog.Problem) { got = append(got, p) }})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > 0 || sum.Size != next || sum.Checkpoints != 11 || sum.Hashes != sumtlog.StoredHashCount(next) {
				t.Fatalf("chunk %d: %+v %v", chunk, sum, got)
			}
			if root, _ := tlog.TreeHash(ctx, db.Q(), next); root != sum.Root {
				t.Fatal("root differs")
			}
		}
		// A checkpoint signed with another key is refused.
		_, other, _ := tlog.GenerateLogKey("hs01.kep.tr/log")
		var got []tlog.Problem
		if _, err := tlog.Audit(ctx, db, read, tlog.AuditOptions{VerifierKey: other, Report: func(p tlog.Problem) { got = append(got, p) }}); err != nil {
			t.Fatal(err)
		}
		if len(got) != 11 || got[0].Kind != tlog.ProblemCheckpoint {
			t.Fatalf("with another log key: %v", got)
		}
	})
}
