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

	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
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
		sync := func(p *providertest.Person) string {
			dir := t.TempDir()
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
Sync Pull
SyncState *
`, port, p.Account.Address, p.Password, w.Node.Config.Path("keys/provider-ca.crt"), maildir, maildir)
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
		md := sync(mehmet)
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
		// The sender: Delil items (10, 40) and the Sent copy.
		md = sync(ayse)
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
	})
}
