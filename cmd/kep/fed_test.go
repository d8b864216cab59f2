package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kephs/kep/config"
	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/relay"
	"github.com/kephs/kep/store"
)

// Federation with the built binary (issue 11, "Done means" and "Bad input
// and faults"): hs01 runs as `kep demo --provider hs01` (with the world's
// TSA and CA), hs02 as `kep serve` of its directory in the demo world, each
// a real process that the test stops, kills and starts again. SQLite only.
func TestFederationBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	python := testtool.Require(t, testtool.Python3)
	xmlsec := testtool.Require(t, testtool.XMLSec1OpenSSL)
	cli := newLogCLI(t)
	f := &fedWorld{t: t, cli: cli, dir: filepath.Join(t.TempDir(), "world")}
	f.hs01 = f.startHS01()
	info, err := demo.Load(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	f.info = info
	f.hs02 = f.startHS02()
	f.db1, f.db2 = f.open("hs01"), f.open("hs02")
	elif, _ := info.Account("elif")
	if elif == nil {
		t.Fatal("no elif at hs02 in demo.json")
	}

	t.Run("round trip", func(t *testing.T) {
		cli := &logCLI{t, cli.bin}
		id10 := f.send("round trip")
		// Read at hs02 over IMAP: the fetch without PEEK issues 60.
		if got := f.imap(t, python, elif); !strings.Contains(got, "round trip") {
			t.Fatalf("elif's INBOX at hs02: %q", got)
		}
		codes := f.waitCodes(t, id10, "20 40 60")
		anchors := f.info.Anchors.Dir
		for _, code := range []int{10, 20, 40, 60} {
			bundle := filepath.Join(t.TempDir(), fmt.Sprintf("delil-%d.zip", code))
			cli.must("evidence", "bundle", "--demo", f.dir, "--id", codes[code], "--out", bundle)
			// The directory as the trust anchor: one anchor for either
			// provider's evidence.
			out := cli.must("verify", bundle, "--directory", f.info.Directory.File, "--authority-key", f.info.Directory.AuthorityKey,
				"--tsa-ca", f.info.Anchors.TSACA)
			if !strings.Contains(out, "ok   directory") || !strings.HasSuffix(out, "VALID\n") {
				t.Fatalf("kep verify --directory, evidence %d:\n%s", code, out)
			}
			cli.must("verify", bundle, "--anchors", anchors)
			// xmlsec1, trusting the issuing provider's CA: hs01 signed the
			// 10, hs02 the others.
			ca := f.info.Anchors.ProviderCAs[0]
			if code != 10 {
				ca = f.info.Anchors.ProviderCAs[1]
			}
			doc := filepath.Join(t.TempDir(), "evidence.xml")
			if err := os.WriteFile(doc, bundleMember(t, bundle, evidence.MemberEvidence), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(xmlsec, "--verify", "--trusted-pem", ca, doc).CombinedOutput(); err != nil {
				t.Fatalf("xmlsec1 on evidence %d: %v\n%s", code, err, out)
			}
			// Under the other provider's CA it does not verify.
			other := f.info.Anchors.ProviderCAs[1]
			if code != 10 {
				other = f.info.Anchors.ProviderCAs[0]
			}
			if err := exec.Command(xmlsec, "--verify", "--trusted-pem", other, doc).Run(); err == nil {
				t.Fatalf("xmlsec1 verified evidence %d under the wrong provider's CA", code)
			}
		}
		// A directory signed by someone else is no anchor (exit 2).
		bundle := filepath.Join(t.TempDir(), "b.zip")
		cli.must("evidence", "bundle", "--demo", f.dir, "--id", codes[40], "--out", bundle)
		if code, _, errs := cli.run("verify", bundle, "--directory", f.info.Directory.File,
			"--authority-key", "KEP-Other+12345678+AS0gw7tqRL0mgoV6a9fLps4JsnxXfrmFJNnvfgjkTLGl", "--tsa-ca", f.info.Anchors.TSACA); code != 2 {
			t.Fatalf("verify with another authority's key: exit %d, %s", code, errs)
		}
	})

	t.Run("receiver down", func(t *testing.T) {
		f.hs02.stop()
		id10 := f.send("while hs02 was down")
		time.Sleep(2 * time.Second)
		if n := f.count(f.db2, `SELECT COUNT(*) FROM messages WHERE origin_evidence = ?`, id10); n != 0 {
			t.Fatalf("hs02 has the message while stopped: %d", n)
		}
		f.hs02 = f.startHS02()
		f.waitCodes(t, id10, "20 40")
		f.once(t, id10)
	})

	t.Run("sender killed before it saw the 250", func(t *testing.T) {
		f.hs01.stop()
		f.hs01 = f.startHS01(relay.PauseAfterDataEnv + "=60s")
		id10 := f.send("sender killed")
		f.hs01.waitLog(t, relay.PauseAfterDataEnv+": pausing", 30*time.Second)
		// hs02 committed (its 250 came), hs01 has not recorded it.
		if n := f.count(f.db2, `SELECT COUNT(*) FROM messages WHERE origin_evidence = ?`, id10); n != 1 {
			t.Fatalf("hs02 holds the message %d times at the pause", n)
		}
		if n := f.count(f.db1, `SELECT COUNT(*) FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE m.evidence_id = ? AND d.transport_state = 'pending'`, id10); n != 1 {
			t.Fatalf("hs01 recorded the 250 before the kill (%d recipients pending)", n)
		}
		f.hs01.kill()
		f.hs01 = f.startHS01()
		f.waitCodes(t, id10, "20 40")
		// The relay item is done: hs01 sent again, hs02 answered 250 again
		// and delivered nothing twice.
		deadline := time.Now().Add(30 * time.Second)
		for f.count(f.db1, `SELECT COUNT(*) FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE m.evidence_id = ? AND d.transport_state IN ('pending', 'awaiting')`, id10) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("hs01's recipient still waits 30 s after the restart")
			}
			time.Sleep(200 * time.Millisecond)
		}
		f.once(t, id10)
		// hs02 saw the envelope again and answered as before.
		f.hs02.waitLog(t, "duplicate=true", 10*time.Second)
	})
	// A company account's operator signs with their own e-signature (a
	// TCKN certificate; evidence 10 names the company's VKN as sender and
	// the operator in kep:Operator): hs02 takes what hs01 took
	// (docs/relay.md, "The reception point checks").
	t.Run("company operator's own signature", func(t *testing.T) {
		out := f.cli.must("send", "--demo", f.dir, "--as", "zeynep", "--to", "elif.demir@hs02.kep.tr", "--subject", "operator signs", "--body", "Navlun faturası.")
		id10, ok := strings.CutPrefix(strings.TrimSpace(out), "accepted: evidence ")
		if !ok {
			t.Fatalf("kep send --as zeynep: %q", out)
		}
		f.waitCodes(t, id10, "20 40")
	})
	// Each message once in elif's INBOX (the envelope's Subject is "KEP: "
	// and the original's).
	if got := f.imap(t, python, elif); strings.Count(got, "KEP: round trip") != 1 || strings.Count(got, "KEP: while hs02 was down") != 1 || strings.Count(got, "KEP: sender killed") != 1 {
		t.Fatalf("elif's INBOX at the end:\n%s", got)
	}
}

// fedWorld is a demo world whose two providers run as separate processes.
type fedWorld struct {
	t          *testing.T
	cli        *logCLI
	dir        string
	info       *demo.Info
	hs01, hs02 *process
	db1, db2   *store.DB
}

func (f *fedWorld) startHS01(env ...string) *process {
	return startProcess(f.t, f.cli.bin, env, "demo.json", "demo", "--dir", f.dir, "--quiet", "--provider", "hs01")
}

func (f *fedWorld) startHS02() *process {
	return startProcess(f.t, f.cli.bin, nil, "serving", "serve", "-v", "--config", filepath.Join(f.dir, "hs02", "kep.toml"))
}

// open reads a provider's database beside its running process (SQLite WAL).
func (f *fedWorld) open(id string) *store.DB {
	f.t.Helper()
	cfg, err := config.Load(filepath.Join(f.dir, id, "kep.toml"))
	if err != nil {
		f.t.Fatal(err)
	}
	db, err := store.Open(context.Background(), cfg.DSN())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { db.Close() })
	return db
}

func (f *fedWorld) count(db *store.DB, q string, args ...any) int {
	f.t.Helper()
	var n int
	if err := db.Q().QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// send sends from ayse at hs01 to elif at hs02 and returns the id of the
// acceptance evidence (10).
func (f *fedWorld) send(subject string) string {
	f.t.Helper()
	out := f.cli.must("send", "--demo", f.dir, "--as", "ayse", "--to", "elif.demir@hs02.kep.tr", "--subject", subject, "--body", "Merhaba.")
	id, ok := strings.CutPrefix(strings.TrimSpace(out), "accepted: evidence ")
	if !ok {
		f.t.Fatalf("kep send: %q", out)
	}
	return id
}

// waitCodes waits until hs01 holds hs02's evidence with the codes want
// (space-separated) for the message accepted with id10, and returns every
// evidence id of the message by code, 10 included.
func (f *fedWorld) waitCodes(t *testing.T, id10, want string) map[int]string {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		rows, err := f.db1.Q().Query(context.Background(), `SELECT f.code, f.evidence_id FROM foreign_evidence f JOIN messages m ON m.id = f.message_id
			WHERE m.evidence_id = ? ORDER BY f.code`, id10)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]string{10: id10}
		var codes []string
		for rows.Next() {
			var code int
			var id string
			rows.Scan(&code, &id)
			got[code] = id
			codes = append(codes, fmt.Sprint(code))
		}
		rows.Close()
		if strings.Join(codes, " ") == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("hs01 holds evidence %v from hs02 for %s after 45 s, want %s\nhs01:\n%s\nhs02:\n%s", codes, id10, want, f.hs01.log(), f.hs02.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// once checks that the message accepted with id10 reached hs02 once, that
// hs02 issued its 20 and 40 once each, and that hs01 holds exactly those.
func (f *fedWorld) once(t *testing.T, id10 string) {
	t.Helper()
	if n := f.count(f.db2, `SELECT COUNT(*) FROM messages WHERE origin_evidence = ?`, id10); n != 1 {
		t.Fatalf("hs02 stored the message %d times", n)
	}
	if n := f.count(f.db2, `SELECT COUNT(*) FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id WHERE m.origin_evidence = ?`, id10); n != 1 {
		t.Fatalf("hs02 delivered the message %d times", n)
	}
	issued := func(db *store.DB, q string) string {
		rows, err := db.Q().Query(context.Background(), q, id10)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var s []string
		for rows.Next() {
			var code int
			var id string
			rows.Scan(&code, &id)
			s = append(s, fmt.Sprintf("%d:%s", code, id))
		}
		return strings.Join(s, " ")
	}
	at2 := issued(f.db2, `SELECT e.code, e.id FROM evidence e JOIN messages m ON m.id = e.message_id WHERE m.origin_evidence = ? AND e.code IN (20, 40) ORDER BY e.code`)
	at1 := issued(f.db1, `SELECT f.code, f.evidence_id FROM foreign_evidence f JOIN messages m ON m.id = f.message_id WHERE m.evidence_id = ? AND f.code IN (20, 40) ORDER BY f.code`)
	if strings.Count(at2, ":") != 2 || at1 != at2 {
		t.Fatalf("hs02 issued %q, hs01 holds %q", at2, at1)
	}
}

// imap logs in as acc at its provider with Python's imaplib, fetches every
// INBOX message without PEEK (which is reading it) and returns their
// Subject lines.
func (f *fedWorld) imap(t *testing.T, python string, acc *demo.AccountInfo) string {
	t.Helper()
	var p *demo.ProviderInfo
	for i := range f.info.Providers {
		if f.info.Providers[i].ID == acc.Provider {
			p = &f.info.Providers[i]
		}
	}
	// From its configuration: a provider the demo process does not run
	// has no endpoints in demo.json.
	cfg, err := config.Load(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(cfg.IMAP.ListenTLS, ":")
	script := `
import imaplib, ssl, sys
host, port, ca, user, pw = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login(user, pw)
m.select("INBOX")
typ, data = m.search(None, "ALL")
for n in data[0].split():
    typ, msg = m.fetch(n, "(BODY[])")
    for line in msg[0][1].split(b"\r\n"):
        if line.startswith(b"Subject:"):
            print(line.decode())
m.logout()
`
	out, err := exec.Command(python, "-c", script, host, port, p.CA, acc.Username, acc.Password).CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	return string(out)
}

func bundleMember(t *testing.T, file, name string) []byte {
	t.Helper()
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, m := range zr.File {
		if m.Name == name {
			r, err := m.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("%s has no %s", file, name)
	return nil
}

// process is a kep process of a test: its standard error is kept.
type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	errs bytes.Buffer
	done chan struct{}
}

// startProcess runs kep with args (and env added to the test's) and waits
// until a line of its standard output contains ready.
func startProcess(t *testing.T, bin string, env []string, ready string, args ...string) *process {
	t.Helper()
	p := &process{t: t, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.errs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if !sent && strings.Contains(sc.Text(), ready) {
				up <- true
				sent = true
			}
		}
		if !sent {
			up <- false
		}
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	select {
	case ok := <-up:
		if !ok {
			t.Fatalf("kep %s stopped before it was ready:\n%s", strings.Join(args, " "), p.log())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("kep %s not ready in 60 s:\n%s", strings.Join(args, " "), p.log())
	}
	return p
}

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errs.String()
}

// waitLog waits until the process's standard error holds s.
func (p *process) waitLog(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %s:\n%s", s, d, p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop asks the process to stop (SIGTERM) and waits for it.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process at once (SIGKILL), as a crash does.
func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.done
}
