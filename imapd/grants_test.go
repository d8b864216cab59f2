package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// The grants table (issue 9.1): every IMAP command against every demo
// identity. Each identity acts on a target account of its own setting
// (so that one identity's successes do not change another's starting
// point): three KEP messages in INBOX, the third flagged \Deleted, and the
// user folders "Ad" and "Sil". A refused command must leave the target's
// store exactly as it was (folders, messages, flags, delivery states,
// evidence), not only answer NO.
//
// The API and the web extend the table with their own column of commands
// over the same identities and outcomes: an identity is who acts and on
// what; a command is what it tries; the expectation is "ok" or the kind of
// refusal.

// grantIdentity is one demo identity and how it names the target's INBOX.
type grantIdentity struct {
	name string
	// setup makes the target account and returns the login and the
	// target's mailbox name prefix ("" for a holder's own, "ADDR/" for an
	// operator's) and the target account.
	setup func(t *testing.T, w *providertest.World) (user, pass, prefix string, target *store.Account)
}

var grantIdentities = []grantIdentity{
	{"holder", func(t *testing.T, w *providertest.World) (string, string, string, *store.Account) {
		p := w.Person("Hale", "Sahip")
		return p.Account.Address, p.Password, "", p.Account
	}},
	{"main-operator", func(t *testing.T, w *providertest.World) (string, string, string, *store.Account) {
		co, main := w.Company("Ana Lojistik", 0)
		return main.TCKN, main.Password, co.Address + "/", co
	}},
	{"read-only-operator", func(t *testing.T, w *providertest.World) (string, string, string, *store.Account) {
		co, _ := w.Company("Okur Lojistik", 0)
		emre := w.Operator(co, "Emre", "Okur", account.SubOperator, account.GrantRead)
		return emre.TCKN, emre.Password, co.Address + "/", co
	}},
	{"another-account", func(t *testing.T, w *providertest.World) (string, string, string, *store.Account) {
		victim := w.Person("Veli", "Hedef")
		other := w.Person("Zehra", "Baska")
		return other.Account.Address, other.Password, victim.Account.Address + "/", victim.Account
	}},
	{"receive-only", func(t *testing.T, w *providertest.World) (string, string, string, *store.Account) {
		tckn := w.TCKN()
		pass := "password of Ruya"
		a, err := w.Node.Accounts.Create(context.Background(), account.SystemActor, account.CreateRequest{
			Kind: account.Person, Capability: account.ReceiveOnly, Owner: identity.ID{Scheme: identity.TCKN, Value: tckn},
			GivenName: "Rüya", Surname: "Alici", Password: pass, VerifiedBy: "test", Activate: true})
		if err != nil {
			t.Fatal(err)
		}
		return a.Address, pass, "", a
	}},
}

// grantCommand is one IMAP command; it runs with the target's INBOX
// selected when selected is true.
type grantCommand struct {
	name     string
	selected bool
	run      func(c *imapclient.Client, prefix string) error
}

func storeCmd(op imap.StoreFlagsOp, f imap.Flag) func(c *imapclient.Client, prefix string) error {
	return func(c *imapclient.Client, _ string) error {
		return c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: op, Flags: []imap.Flag{f}}, nil).Close()
	}
}

func appendCmd(box string) func(c *imapclient.Client, prefix string) error {
	return func(c *imapclient.Client, prefix string) error {
		_, err := appendMsg(c, prefix+box, "From: x@hs01.kep.tr\r\nSubject: Ek\r\nMessage-ID: <ek@client>\r\n\r\nEk.\r\n", nil)
		return err
	}
}

var grantCommands = []grantCommand{
	{"SELECT", false, func(c *imapclient.Client, p string) error { _, err := c.Select(p+"INBOX", nil).Wait(); return err }},
	{"EXAMINE", false, func(c *imapclient.Client, p string) error {
		_, err := c.Select(p+"INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
		return err
	}},
	{"STATUS", false, func(c *imapclient.Client, p string) error {
		_, err := c.Status(p+"INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		return err
	}},
	{"FETCH BODY.PEEK[]", true, func(c *imapclient.Client, _ string) error {
		_, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		return err
	}},
	{"FETCH BODY[]", true, func(c *imapclient.Client, _ string) error {
		_, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
		return err
	}},
	{`STORE +\Seen`, true, storeCmd(imap.StoreFlagsAdd, imap.FlagSeen)},
	{`STORE -\Seen`, true, storeCmd(imap.StoreFlagsDel, imap.FlagSeen)},
	{`STORE +\Flagged`, true, storeCmd(imap.StoreFlagsAdd, imap.FlagFlagged)},
	{`STORE +$Etiket`, true, storeCmd(imap.StoreFlagsAdd, "$Etiket")},
	{`STORE +\Answered`, true, storeCmd(imap.StoreFlagsAdd, imap.FlagAnswered)},
	{`STORE +\Deleted`, true, storeCmd(imap.StoreFlagsAdd, imap.FlagDeleted)},
	{"COPY Archive", true, func(c *imapclient.Client, p string) error {
		_, err := c.Copy(imap.SeqSetNum(1), p+"Archive").Wait()
		return err
	}},
	{"APPEND Drafts", false, appendCmd("Drafts")},
	{"APPEND Sent", false, appendCmd("Sent")},
	{"APPEND INBOX", false, appendCmd("INBOX")},
	{"APPEND Delil", false, appendCmd("Delil")},
	{"CREATE", false, func(c *imapclient.Client, p string) error { return c.Create(p+"Yeni", nil).Wait() }},
	{"RENAME", false, func(c *imapclient.Client, p string) error { return c.Rename(p+"Ad", p+"Ad2", nil).Wait() }},
	{"DELETE user folder", false, func(c *imapclient.Client, p string) error { return c.Delete(p + "Sil").Wait() }},
	{"DELETE Delil", false, func(c *imapclient.Client, p string) error { return c.Delete(p + "Delil").Wait() }},
	{"MOVE Archive", true, func(c *imapclient.Client, p string) error {
		_, err := c.Move(imap.SeqSetNum(1), p+"Archive").Wait()
		return err
	}},
	{"MOVE Trash", true, func(c *imapclient.Client, p string) error {
		_, err := c.Move(imap.SeqSetNum(1), p+"Trash").Wait()
		return err
	}},
	{"EXPUNGE", true, func(c *imapclient.Client, _ string) error { return c.Expunge().Close() }},
}

// Outcomes: "ok", or the response code of the NO; "-" means the command
// cannot be reached (the identity cannot select the target).
var grantTable = map[string]map[string]string{
	// command:             holder, main-operator, read-only-operator, another-account, receive-only
	"SELECT":             row("ok", "ok", "ok", "NONEXISTENT", "ok"),
	"EXAMINE":            row("ok", "ok", "ok", "NONEXISTENT", "ok"),
	"STATUS":             row("ok", "ok", "ok", "NONEXISTENT", "ok"),
	"FETCH BODY.PEEK[]":  row("ok", "ok", "ok", "-", "ok"),
	"FETCH BODY[]":       row("ok", "ok", "ok", "-", "ok"),
	`STORE +\Seen`:       row("ok", "ok", "ok", "-", "ok"),
	`STORE -\Seen`:       row("ok", "ok", "NOPERM", "-", "ok"),
	`STORE +\Flagged`:    row("ok", "ok", "NOPERM", "-", "ok"),
	`STORE +$Etiket`:     row("ok", "ok", "NOPERM", "-", "ok"),
	`STORE +\Answered`:   row("ok", "ok", "NOPERM", "-", "ok"),
	`STORE +\Deleted`:    row("ok", "ok", "NOPERM", "-", "ok"),
	"COPY Archive":       row("ok", "ok", "NOPERM", "-", "ok"),
	"APPEND Drafts":      row("ok", "ok", "NOPERM", "NONEXISTENT", "CANNOT"),
	"APPEND Sent":        row("ok", "ok", "NOPERM", "NONEXISTENT", "CANNOT"),
	"APPEND INBOX":       row("CANNOT", "CANNOT", "CANNOT", "NONEXISTENT", "CANNOT"),
	"APPEND Delil":       row("CANNOT", "CANNOT", "CANNOT", "NONEXISTENT", "CANNOT"),
	"CREATE":             row("ok", "ok", "NOPERM", "CANNOT", "ok"),
	"RENAME":             row("ok", "ok", "NOPERM", "NONEXISTENT", "ok"),
	"DELETE user folder": row("ok", "ok", "NOPERM", "NONEXISTENT", "ok"),
	"DELETE Delil":       row("CANNOT", "CANNOT", "CANNOT", "NONEXISTENT", "CANNOT"),
	"MOVE Archive":       row("ok", "ok", "NOPERM", "-", "ok"),
	"MOVE Trash":         row("ok", "ok", "NOPERM", "-", "ok"),
	"EXPUNGE":            row("ok", "ok", "NOPERM", "-", "ok"),
}

func row(outcomes ...string) map[string]string {
	m := map[string]string{}
	for i, id := range grantIdentities {
		m[id.name] = outcomes[i]
	}
	return m
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	if c := imapCode(err); c != "" {
		return string(c)
	}
	return "error: " + err.Error()
}

// snapshot is everything a refused command must leave unchanged on the
// target account.
func snapshot(t *testing.T, w *providertest.World, a *store.Account) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	rows, err := w.Q().Query(ctx, `SELECT f.name, f.uidnext, m.uid, m.kind, m.flags, COALESCE(d.state, '') FROM mailboxes f
		LEFT JOIN mailbox_messages m ON m.mailbox_id = f.id LEFT JOIN deliveries d ON d.id = m.delivery_id
		WHERE f.account_id = ? ORDER BY f.name, m.uid`, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, kind, flags, state *string
		var next, uid *int64
		if err := rows.Scan(&name, &next, &uid, &kind, &flags, &state); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d %v %v %v %v\n", deref(name), *next, ptr(uid), deref(kind), deref(flags), deref(state))
	}
	rows.Close()
	var n int
	if err := w.Q().QueryRow(ctx, `SELECT COUNT(*) FROM evidence`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "evidence %d\n", n)
	return b.String()
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func ptr(n *int64) any {
	if n == nil {
		return "-"
	}
	return *n
}

func TestGrantsEveryCommandEveryIdentity(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		e := startServer(t, w)
		sender := w.Person("Gönderen", "Kişi")
		for _, id := range grantIdentities {
			t.Run(id.name, func(t *testing.T) {
				user, pass, prefix, target := id.setup(t, w)
				for i := 0; i < 3; i++ {
					m := send(t, w, sender, fmt.Sprintf("İleti %d", i+1), target.Address)
					if cs := codes(t, w, m.ID); count(cs, 40) != 1 {
						t.Fatalf("setup: delivery to %s: evidence %v (status %s)", target.Address, cs, w.Refresh(target).Status)
					}
				}
				owner := &account.Principal{Account: target, Method: account.AuthLocal}
				if target.Kind == string(account.Company) {
					owner = &account.Principal{Staff: "test"} // no mailbox rights: set up through the store below
				}
				inbox, err := mailbox.GetFolder(ctx, w.Q(), target.ID, mailbox.Inbox)
				if err != nil {
					t.Fatal(err)
				}
				if err := mailbox.SetFlags(ctx, w.Q(), inbox.ID, 3, []string{`\Deleted`}); err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"Ad", "Sil"} {
					if owner.Kind() == account.Holder {
						if _, err := w.Node.Mailbox.CreateFolder(ctx, owner, target, name); err != nil {
							t.Fatal(err)
						}
					} else if _, err := w.Q().Exec(ctx, `INSERT INTO mailboxes (account_id, name, uidvalidity, uidnext, modseq) VALUES (?, ?, 1, 1, 1)`, target.ID, name); err != nil {
						t.Fatal(err)
					}
				}
				c := e.login(user, pass)
				for _, cmd := range grantCommands {
					want := grantTable[cmd.name][id.name]
					if want == "-" {
						continue
					}
					if cmd.selected {
						mustSelect(t, c, prefix+"INBOX", false)
					}
					before := snapshot(t, w, target)
					got := outcome(cmd.run(c, prefix))
					if got != want {
						t.Errorf("%s as %s: %s, want %s", cmd.name, id.name, got, want)
						continue
					}
					if got != "ok" {
						if after := snapshot(t, w, target); after != before {
							t.Errorf("%s as %s was refused (%s) but changed the store:\nbefore:\n%safter:\n%s", cmd.name, id.name, got, before, after)
						}
					}
				}
				c.Logout().Wait()
			})
		}
	})
}
