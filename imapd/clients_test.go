package imapd

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// Python's imaplib over TLS: list, select, fetch a KEP message with RFC822
// (exactly one evidence 60 at the sender), and read the sender's Delil.
func TestPythonImaplib(t *testing.T) {
	python := testtool.Require(t, testtool.Python3)
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		e := startServer(t, w)
		// The recipient's password is ASCII (imaplib's LOGIN sends nothing
		// else); the sender's is not, and goes through AUTHENTICATE PLAIN.
		ayse, mehmet := w.Person("Ayşe", "Python"), w.Person("Mehmet", "Python")
		msg := send(t, w, ayse, "Tebligat", mehmet.Account.Address)
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(e.tlsAddr)
		cmd := exec.Command(python, "testdata/imaplib_check.py", "localhost", port, w.Node.Config.Path("keys/provider-ca.crt"),
			mehmet.Account.Address, mehmet.Password, ayse.Account.Address, ayse.Password)
		outb, err := cmd.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				t.Fatalf("imaplib: %v\n%s", err, ee.Stderr)
			}
			t.Fatal(err)
		}
		var out struct {
			Folders       []string `json:"folders"`
			InboxExists   int      `json:"inbox_exists"`
			RFC822Size    int      `json:"rfc822_size"`
			RFC822Subject string   `json:"rfc822_subject"`
			FlagsAfter    string   `json:"flags_after"`
			DelilExists   int      `json:"delil_exists"`
			DelilCodes    []int    `json:"delil_codes"`
		}
		if err := json.Unmarshal(outb, &out); err != nil {
			t.Fatalf("%v: %s", err, outb)
		}
		t.Logf("imaplib saw: %s", outb)
		want := slices.Clone(mailbox.Folders)
		slices.Sort(want)
		if !slices.Equal(out.Folders, want) || out.InboxExists != 1 || !strings.Contains(out.RFC822Subject, "KEP:") {
			t.Fatalf("imaplib: %+v", out)
		}
		inbox, _ := mailbox.GetFolder(ctx, w.Q(), mehmet.Account.ID, mailbox.Inbox)
		ms, _ := mailbox.ListMessages(ctx, w.Q(), inbox.ID)
		if int64(out.RFC822Size) != ms[0].Size || !strings.Contains(out.FlagsAfter, `\Seen`) {
			t.Fatalf("RFC822 size %d (stored %d), flags %q", out.RFC822Size, ms[0].Size, out.FlagsAfter)
		}
		if cs := codes(t, w, msg.ID); count(cs, 60) != 1 {
			t.Fatalf("evidence %v, want one 60", cs)
		}
		// Delil: acceptance (10) and delivery (40); the 60 comes with the
		// next checkpoint.
		if out.DelilExists != 2 || !slices.Equal(out.DelilCodes, []int{10, 40}) {
			t.Fatalf("Delil: %+v", out)
		}
	})
}

// mbsync (isync), a real mail client, syncs every folder to a Maildir over
// IMAPS.
func TestMbsync(t *testing.T) {
	mbsync := testtool.Require(t, testtool.Mbsync)
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		e := startServer(t, w)
		ayse, mehmet := w.Person("Ayşe", "Sync"), w.Person("Mehmet", "Sync")
		msg := send(t, w, ayse, "Senkron", mehmet.Account.Address)
		send(t, w, mehmet, "Yanıt", ayse.Account.Address)
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		sync := func(p *providertest.Person, dir, mode string) string {
			maildir := filepath.Join(dir, "mail") + "/"
			if err := os.MkdirAll(maildir, 0o700); err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(e.tlsAddr)
			conf := fmt.Sprintf(`IMAPAccount kep
Host localhost
Port %s
User %s
Pass "%s"
TLSType IMAPS
CertificateFile %s

IMAPStore far
Account kep

MaildirStore near
Path %s
Inbox %sINBOX
SubFolders Verbatim

Channel all
Far :far:
Near :near:
Patterns *
Create Near
Sync %s
SyncState *
`, port, p.Account.Address, p.Password, w.Node.Config.Path("keys/provider-ca.crt"), maildir, maildir, mode)
			rc := filepath.Join(dir, "mbsyncrc")
			if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(mbsync, "-c", rc, "-a").CombinedOutput()
			if err != nil && strings.Contains(string(out), "TLSType") {
				// isync before 1.5 spells it SSLType.
				conf = strings.Replace(conf, "TLSType IMAPS", "SSLType IMAPS", 1)
				os.WriteFile(rc, []byte(conf), 0o600)
				out, err = exec.Command(mbsync, "-c", rc, "-a").CombinedOutput()
			}
			if err != nil {
				t.Fatalf("mbsync: %v\n%s", err, out)
			}
			return maildir
		}
		files := func(dir string) []string {
			var out []string
			for _, sub := range []string{"cur", "new"} {
				ents, _ := os.ReadDir(filepath.Join(dir, sub))
				for _, e := range ents {
					out = append(out, filepath.Join(dir, sub, e.Name()))
				}
			}
			return out
		}
		// The recipient: the KEP message in INBOX, the folders all there.
		mdir := t.TempDir()
		md := sync(mehmet, mdir, "Pull")
		inbox := files(filepath.Join(md, "INBOX"))
		if len(inbox) != 1 {
			t.Fatalf("Maildir INBOX: %v", inbox)
		}
		b, _ := os.ReadFile(inbox[0])
		if !strings.Contains(string(b), "X-TR-REM-iletiTip: standart") || !strings.Contains(string(b), "Subject: KEP: Senkron") {
			t.Fatalf("INBOX message: %.300s", b)
		}
		for _, f := range mailbox.Folders {
			if _, err := os.Stat(filepath.Join(md, f)); err != nil {
				t.Fatalf("folder %s not synced: %v", f, err)
			}
		}
		// mbsync fetches with BODY.PEEK[]: synchronising is not reading.
		if cs := codes(t, w, msg.ID); count(cs, 60) != 0 {
			t.Fatalf("evidence after mbsync: %v", cs)
		}
		// The user reads the message locally (the Maildir "S" flag) and
		// syncs again: mbsync stores \Seen on the downloaded message, which
		// is the retrieval: one evidence 60. A second sync adds none.
		seen := filepath.Join(md, "INBOX", "cur", strings.SplitN(filepath.Base(inbox[0]), ":2,", 2)[0]+":2,S")
		if err := os.Rename(inbox[0], seen); err != nil {
			t.Fatal(err)
		}
		sync(mehmet, mdir, "All")
		sync(mehmet, mdir, "All")
		if cs := codes(t, w, msg.ID); count(cs, 60) != 1 {
			t.Fatalf("evidence after mbsync pushed \\Seen: %v, want one 60", cs)
		}
		if doc, _ := mustEvidence(t, w, msg.ID, 60); !strings.Contains(string(doc), mailbox.ReasonRetrievalSeenFlag) {
			t.Fatalf("evidence 60 does not name the \\Seen after a download")
		}
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		// The sender: Delil items (10, 40, 60) and the Sent copy.
		md = sync(ayse, t.TempDir(), "Pull")
		delil := files(filepath.Join(md, "Delil"))
		if len(delil) < 2 {
			t.Fatalf("Maildir Delil: %v", delil)
		}
		for _, f := range delil {
			b, _ := os.ReadFile(f)
			if !strings.Contains(string(b), "X-KEP-Delil-Kodu: ") || !strings.Contains(string(b), "application/vnd.kep.evidence-bundle+zip") {
				t.Fatalf("Delil item: %.300s", b)
			}
		}
		if sent := files(filepath.Join(md, "Sent")); len(sent) != 1 {
			t.Fatalf("Maildir Sent: %v", sent)
		}
		// Read as a mail client threads it (Python's email package): every
		// Delil item names the sent message by its subject and replies to
		// its Message-ID, so Delil threads with Sent.
		python, err := exec.LookPath("python3")
		if err != nil {
			t.Skip("python3 is not installed")
		}
		outb, err := exec.Command(python, "testdata/maildir_threads.py", md).Output()
		if err != nil {
			t.Fatalf("maildir_threads.py: %v", err)
		}
		var th struct {
			Sent []struct {
				MessageID string `json:"message_id"`
				Subject   string
			} `json:"sent"`
			Delil []struct {
				Subject    string
				InReplyTo  string `json:"in_reply_to"`
				References string
			} `json:"delil"`
		}
		if err := json.Unmarshal(outb, &th); err != nil {
			t.Fatalf("%v: %s", err, outb)
		}
		t.Logf("threads: %s", outb)
		if len(th.Sent) != 1 || th.Sent[0].Subject != "Senkron" || len(th.Delil) != 3 {
			t.Fatalf("Sent and Delil as parsed: %s", outb)
		}
		for _, d := range th.Delil {
			if d.InReplyTo != th.Sent[0].MessageID || d.References != th.Sent[0].MessageID || !strings.HasPrefix(d.Subject, "Senkron [KEP delil") {
				t.Fatalf("Delil item does not thread with the sent message %s: %+v", th.Sent[0].MessageID, d)
			}
		}
	})
}

// A Thunderbird-style client (Python's imaplib): it downloads a message
// with BODY.PEEK[], reconnects and sets \Seen. That is the retrieval: one
// evidence 60, naming how it was seen. A \Seen on a message never
// downloaded ("mark all as read") is not a retrieval.
func TestPythonPeekThenSeen(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		ayse, mehmet := w.Person("Ayşe", "Peek"), w.Person("Mehmet", "Peek")
		read := send(t, w, ayse, "Okunan", mehmet.Account.Address)
		unread := send(t, w, ayse, "Okunmayan", mehmet.Account.Address)
		_, port, _ := net.SplitHostPort(e.tlsAddr)
		outb, err := exec.Command(python, "testdata/imaplib_peek_seen.py", "localhost", port, w.Node.Config.Path("keys/provider-ca.crt"),
			mehmet.Account.Address, mehmet.Password).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				t.Fatalf("imaplib: %v\n%s", err, ee.Stderr)
			}
			t.Fatal(err)
		}
		var out struct {
			Exists          int      `json:"exists"`
			PeekSize        int      `json:"peek_size"`
			FlagsAfterPeek  string   `json:"flags_after_peek"`
			Store           string   `json:"store"`
			FlagsAfterStore []string `json:"flags_after_store"`
		}
		if err := json.Unmarshal(outb, &out); err != nil {
			t.Fatalf("%v: %s", err, outb)
		}
		t.Logf("imaplib saw: %s", outb)
		if out.Exists != 2 || out.PeekSize == 0 || strings.Contains(out.FlagsAfterPeek, `\Seen`) || out.Store != "OK" {
			t.Fatalf("imaplib: %+v", out)
		}
		if cs := codes(t, w, read.ID); count(cs, 60) != 1 {
			t.Fatalf("downloaded, then \\Seen: evidence %v, want one 60", cs)
		}
		doc, _ := mustEvidence(t, w, read.ID, 60)
		if !strings.Contains(string(doc), mailbox.ReasonRetrievalSeenFlag) {
			t.Fatalf("evidence 60 does not say the retrieval was a \\Seen after a download: %s", doc)
		}
		if cs := codes(t, w, unread.ID); count(cs, 60) != 0 {
			t.Fatalf("marked read without a download: evidence %v, want no 60", cs)
		}
	})
}

// neomutt at its defaults (imap_peek=yes: it downloads with BODY.PEEK[]
// and sets \Seen itself), driven in tmux as a person would: open the
// message, go back, quit. The sender gets exactly one evidence 60.
func TestNeomutt(t *testing.T) {
	neomutt := testtool.Require(t, testtool.NeoMutt)
	tmux := testtool.Require(t, testtool.Tmux)
	// Tool-driven: SQLite only (the repository suite covers both backends).
	t.Run("sqlite", func(t *testing.T) {
		w := providertest.New(t, store.SQLite)
		e := startServer(t, w)
		ayse, mehmet := w.Person("Ayşe", "Mutt"), w.Person("Mehmet", "Mutt")
		msg := send(t, w, ayse, "Neomutt denemesi", mehmet.Account.Address)
		dir := t.TempDir()
		_, port, _ := net.SplitHostPort(e.tlsAddr)
		rc := filepath.Join(dir, "neomuttrc")
		conf := fmt.Sprintf(`set folder="imaps://localhost:%s/"
set spoolfile="+INBOX"
set imap_user="%s"
set imap_pass="%s"
set ssl_ca_certificates_file="%s"
set ssl_force_tls=yes
set record=""
set postponed=""
set header_cache=""
set message_cachedir=""
set mbox_type=Maildir
set move=no
set crypt_verify_sig=no
set timeout=1
`, port, mehmet.Account.Address, mehmet.Password, w.Node.Config.Path("keys/provider-ca.crt"))
		if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		session := fmt.Sprintf("kep-neomutt-%d", os.Getpid())
		run := func(args ...string) string {
			out, err := exec.Command(tmux, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("tmux %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		run("new-session", "-d", "-s", session, "-x", "160", "-y", "40", "-e", "HOME="+dir, "-e", "TERM=xterm",
			neomutt+" -n -F "+rc+"; sleep 30")
		t.Cleanup(func() { exec.Command(tmux, "kill-session", "-t", session).Run() })
		waitFor := func(what string) string {
			var screen string
			for i := 0; i < 100; i++ {
				screen = run("capture-pane", "-p", "-t", session)
				if strings.Contains(screen, what) {
					return screen
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Fatalf("neomutt never showed %q; screen:\n%s", what, screen)
			return ""
		}
		waitFor("Neomutt denemesi") // the index
		if cs := codes(t, w, msg.ID); count(cs, 60) != 0 {
			t.Fatalf("evidence before the message was opened: %v", cs)
		}
		run("send-keys", "-t", session, "Enter")
		waitFor("Kayıtlı Elektronik Posta") // the pager shows the body
		run("send-keys", "-t", session, "q")
		waitFor("Neomutt denemesi")
		run("send-keys", "-t", session, "q") // quitting syncs the flags
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && count(codes(t, w, msg.ID), 60) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if cs := codes(t, w, msg.ID); count(cs, 60) != 1 {
			t.Fatalf("neomutt at its defaults: evidence %v, want one 60; screen:\n%s", cs, run("capture-pane", "-p", "-t", session))
		}
		if doc, _ := mustEvidence(t, w, msg.ID, 60); !strings.Contains(string(doc), mailbox.ReasonRetrievalSeenFlag) {
			t.Fatal("neomutt peeks: its evidence 60 should name the \\Seen after a download")
		}
	})
}
