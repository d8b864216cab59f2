package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sumtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
	"github.com/kephs/kep/tlog"
)

// tamperWorld is a provider whose log holds four messages' evidence:
//
//	m1 ayşe → mehmet: 10, 40                      checkpoint of size 2
//	m2 mehmet → ayşe, nobody: 10, 40, 41          checkpoint of size 5, re-time-stamped
//	m3 ayşe → mehmet: 10, 40                      checkpoint of size 7
//	m4 ayşe → mehmet: 10 (still queued)           not checkpointed
//
// a minute apart.
type tamperWorld struct {
	w              *providertest.World
	config         string // its kep.toml
	ayse, mehmet   *providertest.Person
	m1, m2, m3, m4 *mailbox.KEPMessage
}

func newTamperWorld(t *testing.T, d store.Dialect) *tamperWorld {
	t.Helper()
	ctx := context.Background()
	w := providertest.New(t, d)
	tw := &tamperWorld{w: w, config: filepath.Join(w.Node.Config.Dir, "kep.toml")}
	tw.ayse, tw.mehmet = w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
	n := w.Node
	send := func(p *providertest.Person, to ...string) *mailbox.KEPMessage {
		hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: test\r\nMessage-ID: <%d@client>\r\nX-TR-REM-iletiTip: standart\r\nMIME-Version: 1.0\r\n",
			p.Account.Address, strings.Join(to, ", "), time.Now().UnixNano())
		raw, err := cms.BuildSigned([]byte(hdr), []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nÖdeme emri.\r\n"), p.Signer.Key, p.Signer.Cert, nil)
		if err != nil {
			t.Fatal(err)
		}
		bw, err := n.Blobs.Create()
		if err != nil {
			t.Fatal(err)
		}
		bw.Write(raw)
		dg, gen, err := bw.CommitDeferred()
		if err != nil {
			t.Fatal(err)
		}
		msg, _, err := n.Mailbox.Accept(ctx, &mailbox.Submission{Sender: p.Account, Original: dg, Size: int64(len(raw)), BlobGen: gen,
			From: p.Account.Address, Recipients: to, HeaderID: fmt.Sprintf("<%d@client>", time.Now().UnixNano()), IletiID: "ileti-" + evidence.NewID(),
			IletiTip: evidence.IletiTipStandart, AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	deliver := func() {
		if _, err := n.Mailbox.DeliverQueued(ctx, 100); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint := func() {
		if _, err := n.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		w.Clock.Advance(time.Minute)
	}
	tw.m1 = send(tw.ayse, tw.mehmet.Account.Address)
	deliver()
	checkpoint()
	tw.m2 = send(tw.mehmet, tw.ayse.Account.Address, "nobody@hs01.kep.tr")
	deliver()
	checkpoint()
	if _, _, err := n.Checkpointer.Retimestamp(ctx); err != nil {
		t.Fatal(err)
	}
	tw.m3 = send(tw.ayse, tw.mehmet.Account.Address)
	deliver()
	checkpoint()
	tw.m4 = send(tw.ayse, tw.mehmet.Account.Address)
	return tw
}

// seq returns the leaf index of a message's evidence of a code.
func (tw *tamperWorld) seq(t *testing.T, m *mailbox.KEPMessage, c evidence.Code) int64 {
	t.Helper()
	var s int64
	if err := tw.w.Q().QueryRow(context.Background(), `SELECT seq FROM evidence WHERE message_id = ? AND code = ?`, m.ID, int(c)).Scan(&s); err != nil {
		t.Fatalf("evidence %d of message %d: %v", c, m.ID, err)
	}
	return s
}

// original returns the path of a message's original in the content store.
func (tw *tamperWorld) original(m *mailbox.KEPMessage) string {
	h := m.Digest.String()
	return filepath.Join(tw.w.Node.Blobs.Dir(), h[:2], h)
}

// rawSQL runs statements with the append-only triggers out of the way, as
// someone with the database's credentials would.
func rawSQL(t *testing.T, db *store.DB, stmts ...stmt) {
	t.Helper()
	ctx := context.Background()
	var pre []string
	tables := []string{"evidence", "tlog_hashes", "checkpoints", "checkpoint_stamps"}
	for _, table := range tables {
		if db.Dialect == store.SQLite {
			pre = append(pre, "DROP TRIGGER IF EXISTS "+table+"_no_update", "DROP TRIGGER IF EXISTS "+table+"_no_delete")
		} else {
			pre = append(pre, "ALTER TABLE "+table+" DISABLE TRIGGER USER")
		}
	}
	for _, s := range append(pre, "") {
		if s == "" {
			break
		}
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

type stmt struct {
	q    string
	args []any
}

func q(sql string, args ...any) stmt { return stmt{sql, args} }

// TestLogVerifyTamperKinds makes every kind of change the probes
// made on a stopped world (issue 9.4: raw SQL on every evidence, log,
// checkpoint, message and delivery column, row deletions, and file edits,
// replacement and deletion in the content store), each in a fresh world,
// and runs `kep log verify` on it: each must be found and named, with the
// exit code 1.
func TestLogVerifyTamperKinds(t *testing.T) {
	type tamper struct {
		name   string
		change func(t *testing.T, tw *tamperWorld) []stmt
		files  func(t *testing.T, tw *tamperWorld)
		// against saves the latest checkpoint for --against before the change.
		against bool
		args    []string
		want    []string
	}
	zero := make([]byte, 32)
	cases := []tamper{
		// The evidence table, column by column, and its rows.
		{name: "evidence document changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			s := tw.seq(t, tw.m1, evidence.Delivered)
			st, err := evidence.GetSeq(context.Background(), tw.w.Q(), s)
			if err != nil {
				t.Fatal(err)
			}
			doc := bytes.Replace(st.Document, []byte("mehmet"), []byte("mehmeT"), 1)
			return []stmt{q(`UPDATE evidence SET xml = ?, format = 0 WHERE seq = ?`, doc, s)}
		}, want: []string{"its document does not match the log (changed after it was logged)"}},
		{name: "evidence id changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE evidence SET id = '01900000-0000-7000-8000-000000000000' WHERE seq = ?`, tw.seq(t, tw.m1, evidence.Delivered))}
		}, want: []string{"its id column says 01900000-0000-7000-8000-000000000000"}},
		{name: "evidence code changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE evidence SET code = 41 WHERE seq = ?`, tw.seq(t, tw.m1, evidence.Delivered))}
		}, want: []string{"its code column says 41, its document 40"}},
		{name: "evidence stage changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE evidence SET stage = 'retrieval' WHERE seq = ?`, tw.seq(t, tw.m3, evidence.Delivered))}
		}, want: []string{"its stage column says retrieval, its document delivery"}},
		{name: "evidence event_time changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE evidence SET event_time = event_time - 3600000 WHERE seq = ?`, tw.seq(t, tw.m2, evidence.Accepted))}
		}, want: []string{"its event_time column says"}},
		{name: "evidence account_id changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE evidence SET account_id = ? WHERE seq = ?`, tw.mehmet.Account.ID, tw.seq(t, tw.m1, evidence.Accepted))}
		}, want: []string{"its account_id column says", "its document the sender"}},
		{name: "evidence account_id emptied", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE evidence SET account_id = NULL WHERE seq = ?`, tw.seq(t, tw.m3, evidence.Delivered))}
		}, want: []string{"its account_id column is empty, its document names the sender"}},
		{name: "evidence subject changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE evidence SET subject = 'nobody2@hs01.kep.tr' WHERE seq = ?`, tw.seq(t, tw.m2, evidence.NotDelivered))}
		}, want: []string{`its subject column says "nobody2@hs01.kep.tr", its document "nobody@hs01.kep.tr"`, "state column says failed"}},
		{name: "evidence message_id changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE evidence SET message_id = ? WHERE seq = ?`, tw.m1.ID, tw.seq(t, tw.m2, evidence.Delivered))}
		}, want: []string{"a message with another digest than its document's"}},
		{name: "evidence message_id emptied", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE evidence SET message_id = NULL WHERE seq = ?`, tw.seq(t, tw.m1, evidence.Delivered))}
		}, want: []string{"its message_id column is empty, its document is about a message"}},
		{name: "evidence row removed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`DELETE FROM evidence WHERE seq = ?`, tw.seq(t, tw.m3, evidence.Delivered))}
		}, want: []string{"missing from the store, though the log has its entry (removed)"}},
		// The log's hashes.
		{name: "leaf hash changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE tlog_hashes SET hash = ? WHERE idx = ?`, zero, sumtlog.StoredHashIndex(0, 3))}
		}, want: []string{fmt.Sprintf("stored log hash %d, the leaf of evidence 3", sumtlog.StoredHashIndex(0, 3))}},
		{name: "inner hash removed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`DELETE FROM tlog_hashes WHERE idx = ?`, sumtlog.StoredHashIndex(1, 1))}
		}, want: []string{"(level 1, node 1) is missing"}},
		// Checkpoints and their stamps.
		{name: "checkpoint note changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			cp, _ := tlog.GetCheckpoint(context.Background(), tw.w.Q(), 5)
			return []stmt{q(`UPDATE checkpoints SET note = ? WHERE size = 5`, bytes.Replace(cp.Note, []byte("\n5\n"), []byte("\n4\n"), 1))}
		}, want: []string{"checkpoint of size 5: its note does not verify with the log key"}},
		{name: "checkpoint root changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE checkpoints SET root = ? WHERE size = 2`, zero)}
		}, want: []string{"checkpoint of size 2: its root column differs"}},
		{name: "checkpoint time stamp changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			cp, _ := tlog.GetCheckpoint(context.Background(), tw.w.Q(), 7)
			tst := bytes.Clone(cp.TST)
			tst[len(tst)-3] ^= 1
			return []stmt{q(`UPDATE checkpoints SET tst = ? WHERE size = 7`, tst)}
		}, want: []string{"checkpoint of size 7: its time stamp does not verify"}},
		{name: "checkpoint tst_time changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE checkpoints SET tst_time = tst_time - 60000 WHERE size = 7`)}
		}, want: []string{"checkpoint of size 7: its time stamp says"}},
		{name: "later time stamp changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE checkpoint_stamps SET tst_time = tst_time + 1000 WHERE size = 5`)}
		}, want: []string{"checkpoint of size 5: its later time stamp 1 says"}},
		{name: "later time stamp removed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`DELETE FROM checkpoint_stamps WHERE size = 5`)}
		}, want: []string{"checkpoint of size 5: 1 of its later time stamps are missing (removed)"}},
		{name: "first checkpoint removed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`DELETE FROM checkpoints WHERE size = 2`)}
		}, want: []string{"checkpoint of size 2: missing from the store (removed), though the checkpoint of size 5 names it"}},
		{name: "middle checkpoint removed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`DELETE FROM checkpoint_stamps WHERE size = 5`), q(`DELETE FROM checkpoints WHERE size = 5`)}
		}, want: []string{"checkpoint of size 5: missing from the store (removed), though the checkpoint of size 7 names it"}},
		{name: "latest checkpoint removed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`DELETE FROM checkpoints WHERE size = 7`)}
		}, want: []string{"evidence 5 to 7 (3 entries", "no checkpoint covers them, though the log went on for 1m"}},
		{name: "latest checkpoint removed, saved by an outside auditor", against: true, change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`DELETE FROM checkpoints WHERE size = 7`)}
		}, want: []string{"checkpoint of size 7: missing from the store (removed), though an outside auditor saved it"}},
		{name: "all checkpoints and stamps removed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`DELETE FROM checkpoint_stamps`), q(`DELETE FROM checkpoints`)}
		}, want: []string{"evidence 0 to 7 (8 entries", "no checkpoint covers them"}},
		// Messages and deliveries, against their evidence.
		{name: "message digest changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE messages SET digest = ? WHERE id = ?`, tw.m2.Digest[:], tw.m1.ID)}
		}, want: []string{"its digest column says"}},
		{name: "message size changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE messages SET size = size + 1 WHERE id = ?`, tw.m2.ID)}
		}, want: []string{"its size column says"}},
		{name: "message sender changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE messages SET sender_account = ?, from_addr = ? WHERE id = ?`, tw.mehmet.Account.ID, tw.mehmet.Account.Address, tw.m3.ID)}
		}, want: []string{"its sender_account (the evidence's account_id) column says", "its from_addr column says"}},
		{name: "message identifiers changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE messages SET header_id = '<other@client>', ileti_id = 'other', ileti_tip = 'eTebligat', submitted_at = submitted_at + 1 WHERE id = ?`, tw.m4.ID)}
		}, want: []string{"its header_id column says <other@client>", "its ileti_id column says other", "its ileti_tip column says eTebligat", "its submitted_at column says"}},
		{name: "message evidence_id changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE messages SET evidence_id = ? WHERE id = ?`, tw.m1.EvidenceID, tw.m4.ID)}
		}, want: []string{"its id (the evidence's message_id) column says"}},
		{name: "delivery state changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE deliveries SET state = 'delivered' WHERE message_id = ?`, tw.m4.ID)}
		}, want: []string{"its state column says delivered, which needs evidence 40, but the evidence for this recipient is none"}},
		{name: "delivery recipient changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE deliveries SET recipient = 'nobody3@hs01.kep.tr' WHERE message_id = ? AND recipient = 'nobody@hs01.kep.tr'`, tw.m2.ID)}
		}, want: []string{"to nobody3@hs01.kep.tr): its state column says failed, which needs evidence 41, but the evidence for this recipient is none"}},
		{name: "delivery account changed", change: func(t *testing.T, tw *tamperWorld) []stmt {
			return []stmt{q(`UPDATE deliveries SET account_id = ? WHERE message_id = ?`, tw.ayse.Account.ID, tw.m1.ID)}
		}, want: []string{"its account_id column says"}},
		// The content store.
		{name: "original byte flipped", files: func(t *testing.T, tw *tamperWorld) {
			p := tw.original(tw.m2)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			os.WriteFile(p, b, 0o600)
		}, want: []string{"in the content store does not match its digest (changed or replaced)"}},
		{name: "original replaced", files: func(t *testing.T, tw *tamperWorld) {
			b, _ := os.ReadFile(tw.original(tw.m1))
			os.WriteFile(tw.original(tw.m3), b, 0o600)
		}, want: []string{"in the content store does not match its digest (changed or replaced)"}},
		{name: "original removed", files: func(t *testing.T, tw *tamperWorld) {
			if err := os.Remove(tw.original(tw.m4)); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"is missing from the content store (removed)"}},
		{name: "original replaced, sampled", args: []string{"--originals", "sample", "--sample", "50"}, files: func(t *testing.T, tw *tamperWorld) {
			os.WriteFile(tw.original(tw.m1), []byte("another message\r\n"), 0o600)
		}, want: []string{"in the content store does not match its digest (changed or replaced)", "4 of 4 originals"}},
	}
	bin := newLogCLI(t).bin
	for _, d := range storetest.Backends(t) {
		t.Run(string(d), func(t *testing.T) {
			// The untouched world is sound, and says what it checked.
			tw := newTamperWorld(t, d)
			cli := &logCLI{t, bin}
			out := cli.must("log", "verify", "--config", tw.config, "--originals", "full")
			for _, want := range []string{"checked: 8 entries, 8 evidence rows", "3 checkpoints and 4 time stamps checked, 3 checkpoint links followed", "7 entries covered by checkpoints",
				"checked: 4 message rows and 5 delivery rows against their evidence; 4 of 4 originals", "the log is sound: 8 entries"} {
				if !strings.Contains(out, want) {
					t.Fatalf("an untouched world: no %q in\n%s", want, out)
				}
			}
			for _, c := range cases {
				t.Run(strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
					tw := newTamperWorld(t, d)
					args := []string{"log", "verify", "--config", tw.config, "--originals", "full"}
					if c.against {
						cp, err := tlog.LatestCheckpoint(context.Background(), tw.w.Q())
						if err != nil {
							t.Fatal(err)
						}
						file := filepath.Join(t.TempDir(), "checkpoint")
						os.WriteFile(file, cp.Note, 0o644)
						args = append(args, "--against", file)
					}
					args = append(args, c.args...)
					if c.change != nil {
						rawSQL(t, tw.w.Node.DB, c.change(t, tw)...)
					}
					if c.files != nil {
						c.files(t, tw)
					}
					code, out, errs := cli.run(args...)
					if code != 1 || !strings.Contains(out, "the log is NOT sound") {
						t.Fatalf("exit %d, want 1 and NOT sound:\n%s%s", code, out, errs)
					}
					for _, want := range c.want {
						if !strings.Contains(out, want) {
							t.Errorf("no %q in\n%s", want, out)
						}
					}
					t.Logf("%s", out)
				})
			}
		})
	}
}

// TestServeRefusesChangedContent serves messages whose originals were
// changed on disk after they were accepted, through the mailbox (what IMAP
// FETCH reads): the sender's copy and the recipient's envelope are refused
// with blob.ErrMismatch and counted, never served (issue 9.4).
func TestServeRefusesChangedContent(t *testing.T) {
	tw := newTamperWorld(t, store.SQLite)
	ctx := context.Background()
	b, _ := os.ReadFile(tw.original(tw.m1))
	os.WriteFile(tw.original(tw.m3), b, 0o600)
	var sent, kep int64
	if err := tw.w.Q().QueryRow(ctx, `SELECT id FROM mailbox_messages WHERE message_id = ? AND kind = 'sent'`, tw.m3.ID).Scan(&sent); err != nil {
		t.Fatal(err)
	}
	if err := tw.w.Q().QueryRow(ctx, `SELECT id FROM mailbox_messages WHERE message_id = ? AND kind = 'kep'`, tw.m3.ID).Scan(&kep); err != nil {
		t.Fatal(err)
	}
	mb := tw.w.Node.Mailbox
	for _, id := range []int64{sent, kep} {
		m, err := mailbox.GetMessageByID(ctx, tw.w.Q(), id)
		if err != nil {
			t.Fatal(err)
		}
		before := blob.Mismatches()
		if f, _, err := mb.OpenContent(ctx, m); !errors.Is(err, blob.ErrMismatch) {
			if f != nil {
				f.Close()
			}
			t.Errorf("%s copy: OpenContent of a replaced original: %v, want blob.ErrMismatch", m.Kind, err)
		}
		if _, err := mb.Content(ctx, m); !errors.Is(err, blob.ErrMismatch) {
			t.Errorf("%s copy: Content of a replaced original: %v, want blob.ErrMismatch", m.Kind, err)
		}
		if got := blob.Mismatches(); got != before+2 {
			t.Errorf("%s copy: the mismatch counter went %d → %d, want +2", m.Kind, before, got)
		}
	}
	// An untouched message is served.
	var ok int64
	if err := tw.w.Q().QueryRow(ctx, `SELECT id FROM mailbox_messages WHERE message_id = ? AND kind = 'sent'`, tw.m1.ID).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	m, _ := mailbox.GetMessageByID(ctx, tw.w.Q(), ok)
	f, n, err := mb.OpenContent(ctx, m)
	if err != nil || n != tw.m1.Size {
		t.Fatalf("an untouched original: %v, %d bytes", err, n)
	}
	f.Close()
}
