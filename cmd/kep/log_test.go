package main

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/kephs/kep/config"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
	"github.com/kephs/kep/tlog"
)

// logCLI runs a kep binary built for the test.
type logCLI struct {
	t   *testing.T
	bin string
}

func newLogCLI(t *testing.T) *logCLI {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kep")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build kep: %v\n%s", err, out)
	}
	return &logCLI{t, bin}
}

// run runs kep and returns its exit code, standard output and error.
func (c *logCLI) run(args ...string) (int, string, string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	case err != nil:
		c.t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// must runs kep and wants exit code 0.
func (c *logCLI) must(args ...string) string {
	c.t.Helper()
	code, out, errs := c.run(args...)
	if code != 0 {
		c.t.Fatalf("kep %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// logProvider makes a provider directory with `kep init` on backend d and
// has its node issue 12 evidences under three checkpoints (sizes 4, 9, 12):
// rejections (11), which file under no account or message, so that the
// audit's filing checks find them as issued.
func logProvider(t *testing.T, cli *logCLI, d store.Dialect) (dir string, cfg *config.Config) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "hs01")
	cli.must("init", "--dir", dir, "--provider", "hs01")
	if d == store.Postgres {
		path := filepath.Join(dir, "kep.toml")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b = regexp.MustCompile(`(?m)^dsn = .*$`).ReplaceAll(b, []byte(`dsn = "`+storetest.DSN(t, d)+`"`))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "kep.toml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := provider.Open(ctx, cfg, provider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, batch := range []int{4, 5, 3} {
		for range batch {
			now := time.Now()
			e := &evidence.Evidence{Code: evidence.Rejected, SubmissionTime: now, Reasons: []evidence.Reason{evidence.ReasonNotSigned()},
				SenderAuthentication: evidence.Authentication{Method: evidence.AuthSMTPCMS, Time: now},
				Sender:               evidence.Party{Address: "ayse.yilmaz@hs01.kep.tr"},
				Recipients:           []evidence.Party{{Address: "mehmet.ozturk@hs01.kep.tr"}},
				Message: evidence.Message{MessageID: "<1@client>", IletiID: evidence.NewID(), IletiTip: evidence.IletiTipStandart,
					DigestAlgorithm: evidence.DigestSHA256, Digest: make([]byte, 32), Size: 100}}
			if err := n.Issuer.Issue(ctx, []*evidence.Record{{Evidence: e}}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := n.Checkpointer.Catchup(ctx, n.Log.Size()); err != nil {
			t.Fatal(err)
		}
	}
	return dir, cfg
}

func TestLogCommands(t *testing.T) {
	bin := newLogCLI(t).bin
	for _, d := range storetest.Backends(t) {
		t.Run(string(d), func(t *testing.T) {
			cli := &logCLI{t, bin}
			dir, cfg := logProvider(t, cli, d)
			ctx := context.Background()

			out := cli.must("log", "verify", "--dir", dir)
			if !strings.Contains(out, "the log is sound: 12 entries") || !strings.Contains(out, "checked: 12 entries, 12 evidence rows") || !strings.Contains(out, "3 checkpoints and 3 time stamps") {
				t.Fatalf("log verify: %s", out)
			}

			// The latest checkpoint, as a signed note.
			note := cli.must("log", "checkpoint", "--dir", dir)
			vkey, err := os.ReadFile(filepath.Join(dir, "keys", "log.pub"))
			if err != nil {
				t.Fatal(err)
			}
			_, size, root, err := tlog.OpenCheckpoint([]byte(note), strings.TrimSpace(string(vkey)))
			if err != nil || size != 12 {
				t.Fatalf("log checkpoint: %v, size %d\n%s", err, size, note)
			}

			// An inclusion proof that leads to it.
			proofText := cli.must("log", "proof", "7", "--dir", dir)
			index, psize, proof, err := evidence.ParseProof([]byte(proofText))
			if err != nil || index != 7 || psize != 12 {
				t.Fatalf("log proof: %v\n%s", err, proofText)
			}
			db, err := store.Open(ctx, cfg.DSN())
			if err != nil {
				t.Fatal(err)
			}
			st, err := evidence.GetSeq(ctx, db.Q(), 7)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			entry := tlog.EntryFor(st.Document)
			if err := tlog.CheckInclusion(proof, 12, root, 7, entry[:]); err != nil {
				t.Fatalf("the printed proof does not lead to the printed checkpoint: %v", err)
			}
			if code, _, errs := cli.run("log", "proof", "12", "--dir", dir); code == 0 || !strings.Contains(errs, "not in the latest checkpoint") {
				t.Fatalf("proof beyond the checkpoint: %d %s", code, errs)
			}

			// Consistency, between stored sizes and between note files.
			if out := cli.must("log", "consistency", "4", "12", "--dir", dir); !strings.Contains(out, "extends the checkpoint of size 4") {
				t.Fatalf("log consistency: %s", out)
			}
			cli.must("log", "consistency", "9", "9", "--dir", dir)
			if code, _, errs := cli.run("log", "consistency", "12", "4", "--dir", dir); code != 1 || !strings.Contains(errs, "does NOT extend") {
				t.Fatalf("consistency backwards: %d %s", code, errs)
			}
			newFile := filepath.Join(t.TempDir(), "new.note")
			os.WriteFile(newFile, []byte(note), 0o644)
			cli.must("log", "consistency", "9", newFile, "--dir", dir, "--log-key", filepath.Join(dir, "keys", "log.pub"))
			forged := filepath.Join(t.TempDir(), "forged.note")
			os.WriteFile(forged, bytes.Replace([]byte(note), []byte("\n12\n"), []byte("\n13\n"), 1), 0o644)
			if code, _, errs := cli.run("log", "consistency", "9", forged, "--dir", dir); code == 0 || !strings.Contains(errs, "signature") {
				t.Fatalf("consistency with a forged note: %d %s", code, errs)
			}

			// A later time stamp, checked by the audit.
			if out := cli.must("log", "retimestamp", "--dir", dir); !strings.Contains(out, "checkpoint of size 12 re-time-stamped at ") {
				t.Fatalf("log retimestamp: %s", out)
			}
			if out := cli.must("log", "verify", "--dir", dir); !strings.Contains(out, "3 checkpoints and 4 time stamps") {
				t.Fatalf("log verify after retimestamp: %s", out)
			}

			// Evidence changed behind the application's back: the append-only
			// triggers dropped, rows updated with raw SQL.
			db, err = store.Open(ctx, cfg.DSN())
			if err != nil {
				t.Fatal(err)
			}
			st5, err := evidence.GetSeq(ctx, db.Q(), 5)
			if err != nil {
				t.Fatal(err)
			}
			st2, _ := evidence.GetSeq(ctx, db.Q(), 2)
			db.Close()
			driver, dsn := "sqlite", strings.TrimPrefix(cfg.DSN(), "sqlite:")
			disable := []string{`DROP TRIGGER evidence_no_update`}
			if d == store.Postgres {
				driver, dsn = "pgx", cfg.DSN()
				disable = []string{`ALTER TABLE evidence DISABLE TRIGGER USER`}
			}
			raw, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			changed := bytes.Replace(st5.Document, []byte("mehmet.ozturk"), []byte("mehmet.ozturq"), 1)
			stmts := []struct {
				q    string
				args []any
			}{
				{`UPDATE evidence SET format = 0, xml = $1 WHERE seq = 5`, []any{changed}},
				{`UPDATE evidence SET code = 41 WHERE seq = 2`, nil},
			}
			for _, q := range disable {
				if _, err := raw.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range stmts {
				if _, err := raw.Exec(s.q, s.args...); err != nil {
					t.Fatalf("%s: %v", s.q, err)
				}
			}
			code, out, errs := cli.run("log", "verify", "--dir", dir)
			if code != 1 || !strings.Contains(errs, "kep log verify: 2 problems found") {
				t.Fatalf("log verify of a tampered store: exit %d\n%s%s", code, out, errs)
			}
			for _, want := range []string{
				"evidence 5 (id " + st5.ID + "): its document does not match the log (changed after it was logged)",
				"evidence 2 (id " + st2.ID + "): its code column says 41, its document 11",
				"the log is NOT sound",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("log verify does not say %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestVerifyBinaryRefusesAlterations runs `kep verify` on a bundle made by
// `kep evidence bundle` and on altered copies of it: each must fail and
// name the check that broke. (evidence/bundle_test.go alters every byte of
// every member through evidence.VerifyBundle; this is the binary's path.)
func TestVerifyBinaryRefusesAlterations(t *testing.T) {
	cli := newLogCLI(t)
	if _, usage, _ := cli.run("help"); !regexp.MustCompile(`(?m)^  verify `).MatchString(usage) {
		t.Skip("this kep has no verify command")
	}
	dir, cfg := logProvider(t, cli, store.SQLite)
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	st, err := evidence.GetSeq(ctx, db.Q(), 3)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	good := filepath.Join(tmp, "good.zip")
	cli.must("evidence", "bundle", "--dir", dir, "--id", st.ID, "--out", good)
	keys := filepath.Join(dir, "keys")
	verify := func(file string) (int, string, string) {
		return cli.run("verify", file, "--provider-ca", filepath.Join(keys, "provider-ca.crt"), "--tsa-ca", filepath.Join(keys, "tsa-ca.crt"),
			"--log-key", filepath.Join(keys, "log.pub"))
	}
	if code, out, errs := verify(good); code != 0 {
		t.Fatalf("kep verify of the node's bundle: exit %d\n%s%s", code, out, errs)
	}
	// kep init wrote the anchors directory the demo has (issue 10.5):
	// --anchors DIR/anchors checks one's own provider's evidence.
	if code, out, errs := cli.run("verify", good, "--anchors", filepath.Join(dir, "anchors")); code != 0 {
		t.Fatalf("kep verify --anchors DIR/anchors of a kep init provider: exit %d\n%s%s", code, out, errs)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	type member struct {
		name string
		data []byte
	}
	var ms []member
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		ms = append(ms, member{f.Name, b})
	}
	// repack writes the members as the bundle's canonical container does,
	// with one member's content changed.
	repack := func(name string, change func([]byte) []byte) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, m := range ms {
			d := m.data
			if m.name == name {
				d = change(bytes.Clone(d))
			}
			w, err := zw.CreateRaw(&zip.FileHeader{Name: m.name, Method: zip.Store, CreatorVersion: 20, ReaderVersion: 20,
				ModifiedDate: (2020-1980)<<9 | 1<<5 | 1, CRC32: crc32.ChecksumIEEE(d), CompressedSize64: uint64(len(d)), UncompressedSize64: uint64(len(d))})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(d)
		}
		zw.Close()
		return buf.Bytes()
	}
	flip := func(i int) func([]byte) []byte {
		return func(b []byte) []byte { b[i%len(b)] ^= 0x01; return b }
	}
	for _, c := range []struct {
		what  string
		data  []byte
		check string
	}{
		{"the file truncated", data[:len(data)-1], evidence.CheckContainer},
		{"a byte of the file flipped", func() []byte { d := bytes.Clone(data); d[len(d)/2] ^= 0x80; return d }(), evidence.CheckContainer},
		{"evidence.xml changed", repack(evidence.MemberEvidence, flip(1000)), evidence.CheckXMLSignature},
		{"the certificate's PEM header changed", repack(evidence.MemberCertificates, flip(12)), evidence.CheckContainer},
		{"the certificate changed", repack(evidence.MemberCertificates, flip(300)), evidence.CheckXMLSignature},
		// A letter of the checkpoint's signature, in another case: still
		// base64, a wrong signature whatever the log's size (a byte flipped
		// at a fixed offset fell in the root or the size as the log grew,
		// and another check failed first).
		{"the checkpoint changed", repack(evidence.MemberCheckpoint, func(b []byte) []byte {
			for i := len(b) - 2; i > bytes.LastIndexByte(b[:len(b)-1], ' '); i-- {
				if c := b[i] | 0x20; c >= 'a' && c <= 'z' {
					b[i] ^= 0x20
					return b
				}
			}
			t.Fatal("no letter in the checkpoint's signature")
			return b
		}), evidence.CheckCheckpoint},
		{"the time stamp changed", repack(evidence.MemberTimestamp, flip(34)), evidence.CheckTimestamp},
		{"the proof changed", repack(evidence.MemberProof, func(b []byte) []byte { return bytes.Replace(b, []byte("index 3"), []byte("index 2"), 1) }), evidence.CheckInclusion},
		{"the log key changed", repack(evidence.MemberLogKey, flip(20)), evidence.CheckLogKey},
	} {
		file := filepath.Join(tmp, "altered.zip")
		if err := os.WriteFile(file, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := verify(file)
		if code == 0 || !strings.Contains(out, "FAIL "+c.check+" ") || !strings.Contains(errs, c.check) {
			t.Errorf("%s: kep verify exit %d, want a failed %s check:\n%s%s", c.what, code, c.check, out, errs)
		}
	}
}
