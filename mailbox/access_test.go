package mailbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// deliver submits raw from p with the Message-ID it carries, and delivers.
func deliver(t *testing.T, w *providertest.World, p *providertest.Person, headerID string, to ...string) *mailbox.KEPMessage {
	t.Helper()
	ctx := context.Background()
	raw := signedMessage(t, p, "standart", to...)
	raw = bytes.Replace(raw, []byte("Message-ID: <"), []byte("Message-ID: <"+strings.Trim(headerID, "<>")+"."), 1)
	bw, err := w.Node.Blobs.Create()
	if err != nil {
		t.Fatal(err)
	}
	bw.Write(raw)
	d, gen, err := bw.CommitDeferred()
	if err != nil {
		t.Fatal(err)
	}
	msg, _, err := w.Node.Mailbox.Accept(ctx, &mailbox.Submission{Sender: p.Account, Original: d, Size: int64(len(raw)), BlobGen: gen,
		From: p.Account.Address, Recipients: to, HeaderID: headerID, IletiID: "ileti-" + evidence.NewID(), IletiTip: "standart",
		AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Node.Mailbox.DeliverQueued(ctx, 100); err != nil {
		t.Fatal(err)
	}
	return msg
}

// Thunderbird and Outlook APPEND a copy of every sent message to Sent.
// One whose Message-ID names the account's own KEP message is the
// provider's Sent copy: no error, no duplicate (and the copy comes back if
// it was deleted). Anything else is a plain user copy, not attested. No
// evidence ever comes from an APPEND.
func TestAppendSentDeduplicates(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		mb := w.Node.Mailbox
		ayse, mehmet := w.Person("Ayşe", "Gonderen"), w.Person("Mehmet", "Alan")
		msg := deliver(t, w, ayse, "<fatura-1@client>", mehmet.Account.Address)
		p := &account.Principal{Account: w.Refresh(ayse.Account)}
		sent, err := mb.OpenFolder(ctx, p, p.Account, mailbox.Sent)
		if err != nil {
			t.Fatal(err)
		}
		before, _ := mailbox.ListMessages(ctx, w.Q(), sent.ID)
		if len(before) != 1 || before[0].Kind != mailbox.KindSent {
			t.Fatalf("Sent before: %+v", before)
		}
		var evBefore int
		w.Q().QueryRow(ctx, `SELECT COUNT(*) FROM evidence`).Scan(&evBefore)
		appendSent := func(msgID string) *mailbox.Appended {
			t.Helper()
			body := "From: " + ayse.Account.Address + "\r\nTo: " + mehmet.Account.Address + "\r\nSubject: Fatura\r\nMessage-ID: " + msgID + "\r\n\r\nThunderbird's copy.\r\n"
			res, err := mb.AppendMessage(ctx, p, sent, mailbox.AppendRequest{Content: strings.NewReader(body), Size: int64(len(body)), Flags: []string{`\Seen`}})
			if err != nil {
				t.Fatalf("APPEND Sent %s: %v", msgID, err)
			}
			return res
		}
		res := appendSent("<fatura-1@client>")
		if !res.Deduplicated || res.UID != before[0].UID {
			t.Fatalf("APPEND of the sent KEP message: %+v, want the provider's copy UID %d", res, before[0].UID)
		}
		if after, _ := mailbox.ListMessages(ctx, w.Q(), sent.ID); len(after) != 1 {
			t.Fatalf("duplicate in Sent: %d messages", len(after))
		}
		// Deleted by the user, the provider's copy comes back.
		if err := mb.RemoveMessages(ctx, p, sent, []uint32{before[0].UID}); err != nil {
			t.Fatal(err)
		}
		res = appendSent("<fatura-1@client>")
		after, _ := mailbox.ListMessages(ctx, w.Q(), sent.ID)
		if !res.Deduplicated || len(after) != 1 || after[0].Kind != mailbox.KindSent || after[0].MessageID != msg.ID {
			t.Fatalf("APPEND after the Sent copy was deleted: %+v, Sent %+v", res, after)
		}
		// Another account's Message-ID, or none we know: a user copy.
		res = appendSent("<not-a-kep-message@client>")
		if res.Deduplicated || res.Kind != mailbox.KindCopy {
			t.Fatalf("APPEND of an unknown message: %+v", res)
		}
		var evAfter int
		w.Q().QueryRow(ctx, `SELECT COUNT(*) FROM evidence`).Scan(&evAfter)
		if evAfter != evBefore {
			t.Fatalf("APPEND issued evidence: %d -> %d", evBefore, evAfter)
		}
		// Mehmet's APPEND of the same Message-ID is not deduplicated
		// against Ayşe's message: only the account's own KEP messages
		// count.
		pm := &account.Principal{Account: w.Refresh(mehmet.Account)}
		msent, _ := mb.OpenFolder(ctx, pm, pm.Account, mailbox.Sent)
		body := "Subject: x\r\nMessage-ID: <fatura-1.x@client>\r\n\r\nx\r\n"
		if r, err := mb.AppendMessage(ctx, pm, msent, mailbox.AppendRequest{Content: strings.NewReader(body), Size: int64(len(body))}); err != nil || r.Deduplicated {
			t.Fatalf("APPEND by another account: %+v %v", r, err)
		}
	})
}

// kep evidence list: by account, by Message-ID (rejections included) and
// by recipient, with the reason of a rejection; and only what the
// principal may read.
func TestListEvidence(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		mb := w.Node.Mailbox
		ayse, mehmet, zehra := w.Person("Ayşe", "Liste"), w.Person("Mehmet", "Liste"), w.Person("Zehra", "Liste")
		deliver(t, w, ayse, "<liste-1@client>", mehmet.Account.Address)
		if _, err := mb.Reject(ctx, &mailbox.Rejection{Sender: ayse.Account, From: ayse.Account.Address, Recipients: []string{"x@gmail.com"},
			Digest: make([]byte, 32), Size: 10, HeaderID: "<liste-2@client>", IletiTip: "standart", Reason: evidence.Reason{Code: evidence.ReasonCodeRecipientNotKEP, Text: "x@gmail.com is not a KEP address"},
			AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()}); err != nil {
			t.Fatal(err)
		}
		staff := &account.Principal{Staff: "test"}
		list := func(p *account.Principal, q mailbox.EvidenceQuery) []*mailbox.EvidenceEntry {
			t.Helper()
			es, err := mb.ListEvidence(ctx, p, q)
			if err != nil {
				t.Fatal(err)
			}
			return es
		}
		codesOf := func(es []*mailbox.EvidenceEntry) string {
			var cs []string
			for _, e := range es {
				cs = append(cs, fmt.Sprint(int(e.Code)))
			}
			return strings.Join(cs, " ")
		}
		if got := codesOf(list(staff, mailbox.EvidenceQuery{Account: ayse.Account})); got != "11 40 10" {
			t.Fatalf("by account: %s", got)
		}
		es := list(staff, mailbox.EvidenceQuery{HeaderID: "liste-2@client"})
		if codesOf(es) != "11" || !strings.Contains(es[0].Reason, "not a KEP address") {
			t.Fatalf("by Message-ID (a rejection): %+v", es)
		}
		if got := codesOf(list(staff, mailbox.EvidenceQuery{HeaderID: "<liste-1@client>"})); got != "40 10" {
			t.Fatalf("by Message-ID: %s", got)
		}
		if got := codesOf(list(staff, mailbox.EvidenceQuery{Recipient: mehmet.Account.Address})); got != "40" {
			t.Fatalf("by recipient: %s", got)
		}
		// The recipient reads the evidence about deliveries to them;
		// another account reads nothing.
		if got := codesOf(list(&account.Principal{Account: mehmet.Account}, mailbox.EvidenceQuery{Recipient: mehmet.Account.Address})); got != "40" {
			t.Fatalf("the recipient's own: %s", got)
		}
		if got := list(&account.Principal{Account: zehra.Account}, mailbox.EvidenceQuery{HeaderID: "<liste-1@client>"}); len(got) != 0 {
			t.Fatalf("another account sees %s", codesOf(got))
		}
		var r *mailbox.Refusal
		if _, err := mb.ListEvidence(ctx, &account.Principal{Account: zehra.Account}, mailbox.EvidenceQuery{Account: ayse.Account}); !errors.As(err, &r) || r.Kind != mailbox.NotFound {
			t.Fatalf("another account's Delil: %v", err)
		}
	})
}

// Evidence 60 and 61 go through one path, which refuses to sign when part
// of the evidence cannot be read (here the recipient's account row is
// unreadable): no evidence, and the delivery stays as it was.
func TestRetrievalRefusesIncompleteEvidence(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		ayse, mehmet := w.Person("Ayşe", "Eksik"), w.Person("Mehmet", "Eksik")
		msg := deliver(t, w, ayse, "<eksik@client>", mehmet.Account.Address)
		// Point the delivery at an account that does not exist.
		if _, err := w.Q().Exec(ctx, `UPDATE deliveries SET account_id = NULL WHERE message_id = ?`, msg.ID); err != nil {
			t.Fatal(err)
		}
		w.Clock.Advance(25 * 60 * 60 * 1e9)
		if _, err := w.Node.Mailbox.DeemRead(ctx, 10); err == nil {
			t.Fatal("deemed-read evidence signed without the recipient's account")
		}
		if cs := codes(t, w, msg.ID); strings.Contains(cs, "61") {
			t.Fatalf("evidence: %s", cs)
		}
		var state string
		w.Q().QueryRow(ctx, `SELECT state FROM deliveries WHERE message_id = ?`, msg.ID).Scan(&state)
		if state != string(mailbox.DeliveredTo) {
			t.Fatalf("delivery state %s", state)
		}
	})
}

// The log's WriteFunc can run twice: when a group-commit batch fails, the
// log retries the other requests of the batch in a new transaction, and
// their write functions run again (tlog.WriteFunc). The retrieval write
// survives it: after a rollback it applies again; after a commit a second
// run changes nothing and reports evidence.ErrAlreadyIssued, so that no
// second 60/61 is made. The Delil courier's write checks its cursor the
// same way: run again, it places nothing twice.
func TestWriteFuncRunsTwice(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		ayse, mehmet := w.Person("Ayşe", "Iki"), w.Person("Mehmet", "Iki")
		msg := deliver(t, w, ayse, "<iki@client>", mehmet.Account.Address)
		var id int64
		if err := w.Q().QueryRow(ctx, `SELECT id FROM deliveries WHERE message_id = ?`, msg.ID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		write := mailbox.RetrievalWrite(id, mailbox.ReadBy)
		rollback := errors.New("the batch failed")
		if err := w.Node.DB.InTx(ctx, func(tx *store.Tx) error {
			if err := write(ctx, tx); err != nil {
				return err
			}
			return rollback
		}); !errors.Is(err, rollback) {
			t.Fatal(err)
		}
		for i, want := range []error{nil, evidence.ErrAlreadyIssued} {
			err := w.Node.DB.InTx(ctx, func(tx *store.Tx) error { return write(ctx, tx) })
			if !errors.Is(err, want) && err != want {
				t.Fatalf("run %d: %v, want %v", i+2, err, want)
			}
		}
		var state string
		w.Q().QueryRow(ctx, `SELECT state FROM deliveries WHERE id = ?`, id).Scan(&state)
		if state != string(mailbox.ReadBy) {
			t.Fatalf("state %s", state)
		}
		// The courier, run twice over the same range, places each item once.
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		size := w.Node.Log.Size()
		if _, err := w.Node.Mailbox.Courier(ctx, size); err != nil {
			t.Fatal(err)
		}
		delil, _ := mailbox.GetFolder(ctx, w.Q(), ayse.Account.ID, mailbox.Delil)
		n1, _, _, _ := mailbox.Counts(ctx, w.Q(), delil.ID)
		if _, err := w.Node.Mailbox.Courier(ctx, size); err != nil {
			t.Fatal(err)
		}
		if n2, _, _, _ := mailbox.Counts(ctx, w.Q(), delil.ID); n2 != n1 || n1 == 0 {
			t.Fatalf("Delil after two courier runs: %d then %d", n1, n2)
		}
	})
}

// A Delil item is a mailbox copy: a read-only operator cannot remove it
// (nor flag it \Deleted), an operator with the delete grant can; the
// evidence itself stays in the evidence store and can still be read.
func TestDelilItemRemoval(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		mb := w.Node.Mailbox
		co, main := w.Company("Delil Lojistik", 0)
		emre := w.Operator(co, "Emre", "Okur", account.SubOperator, account.GrantRead)
		rec, err := mb.Reject(ctx, &mailbox.Rejection{Sender: co, From: co.Address, Recipients: []string{"x@gmail.com"},
			Digest: make([]byte, 32), Size: 10, HeaderID: "<delil-sil@client>", IletiTip: "standart",
			Reason: evidence.Reason{Code: evidence.ReasonCodeRecipientNotKEP, Text: "not a KEP address"}, AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		login := func(p *providertest.Person) *account.Principal {
			pr, err := w.Node.Accounts.Authenticate(ctx, p.TCKN, p.Password, "")
			if err != nil {
				t.Fatal(err)
			}
			return pr
		}
		reader, deleter := login(emre), login(main)
		delil, err := mb.FolderByRole(ctx, reader, co, mailbox.RoleDelil)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := mb.Messages(ctx, reader, delil)
		if err != nil || len(ms) != 1 {
			t.Fatalf("Delil: %d items, %v", len(ms), err)
		}
		uid := []uint32{ms[0].UID}
		if _, _, err := mb.StoreFlags(ctx, reader, delil, uid, mailbox.FlagsAdd, []string{`\Deleted`}); !errors.Is(err, mailbox.ErrNoAccess) {
			t.Fatalf("read-only operator flags a Delil item \\Deleted: %v", err)
		}
		if err := mb.RemoveMessages(ctx, reader, delil, uid); !errors.Is(err, mailbox.ErrNoAccess) {
			t.Fatalf("read-only operator removes a Delil item: %v", err)
		}
		trash, _ := mb.FolderByRole(ctx, reader, co, mailbox.RoleTrash)
		if _, err := mb.Move(ctx, reader, delil, uid, trash); !errors.Is(err, mailbox.ErrNoAccess) {
			t.Fatalf("read-only operator moves a Delil item to Trash: %v", err)
		}
		if n, _, _, _ := mailbox.Counts(ctx, w.Q(), delil.ID); n != 1 {
			t.Fatalf("refused removals changed Delil: %d items", n)
		}
		if err := mb.RemoveMessages(ctx, deleter, delil, uid); err != nil {
			t.Fatalf("main operator removes a Delil item: %v", err)
		}
		if n, _, _, _ := mailbox.Counts(ctx, w.Q(), delil.ID); n != 0 {
			t.Fatalf("Delil after removal: %d items", n)
		}
		// The evidence stays, readable by the account's operators, and the
		// store refuses to delete it.
		if _, err := mb.GetEvidence(ctx, reader, rec.Evidence.ID); err != nil {
			t.Fatalf("evidence after its Delil item was removed: %v", err)
		}
		if _, err := w.Q().Exec(ctx, `DELETE FROM evidence WHERE id = ?`, rec.Evidence.ID); err == nil {
			t.Fatal("the store deleted an evidence")
		}
	})
}

// TestSendAccount: the send grant alone resolves an account for sending
// (an işlem yetkilisi with send authority), and lists it as send-only; the
// read grant alone does not, and names the missing grant; no role at all
// is not found, as for an account that does not exist.
func TestSendAccount(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		co, main := w.Company("Yazar Lojistik", 0)
		other := w.Person("Baska", "Kisi")
		for _, tc := range []struct {
			name     string
			grants   account.Grant
			addr     string
			kind     mailbox.RefusalKind // "" when resolved
			sendOnly bool
			visible  bool
		}{
			{"send only", account.GrantSend, co.Address, "", true, false},
			{"read only", account.GrantRead, co.Address, mailbox.NoPermission, false, true},
			{"read and send", account.GrantRead | account.GrantSend, co.Address, "", false, true},
			{"archive only", account.GrantArchive, co.Address, mailbox.NotFound, false, false},
			{"another account", account.GrantSend, other.Account.Address, mailbox.NotFound, true, false},
			{"no such account", account.GrantSend, "yok@hs01.kep.tr", mailbox.NotFound, true, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				op := w.Operator(co, "Sena", "Yazar", account.SubOperator, tc.grants)
				p, err := w.Node.Accounts.Authenticate(ctx, op.TCKN, op.Password, "")
				if err != nil {
					t.Fatal(err)
				}
				a, err := w.Node.Mailbox.SendAccount(ctx, p, tc.addr)
				var rf *mailbox.Refusal
				switch {
				case tc.kind == "" && (err != nil || a.Address != tc.addr):
					t.Fatalf("SendAccount: %v %v", a, err)
				case tc.kind != "" && (!errors.As(err, &rf) || rf.Kind != tc.kind):
					t.Fatalf("SendAccount: %v, want a refusal %s", err, tc.kind)
				case tc.kind == mailbox.NoPermission && !strings.Contains(rf.Reason, "send grant"):
					t.Fatalf("the refusal does not name the grant: %s", rf.Reason)
				}
				so, err := w.Node.Mailbox.SendOnly(ctx, p)
				if err != nil || (len(so) == 1 && so[0].ID == co.ID) != tc.sendOnly {
					t.Fatalf("SendOnly: %v %v", so, err)
				}
				vis, err := w.Node.Mailbox.Visible(ctx, p)
				if err != nil || (len(vis) == 1 && vis[0].ID == co.ID) != tc.visible {
					t.Fatalf("Visible: %v %v", vis, err)
				}
			})
		}
		// The main operator holds every grant: readable, so not send-only.
		p, err := w.Node.Accounts.Authenticate(ctx, main.TCKN, main.Password, "")
		if err != nil {
			t.Fatal(err)
		}
		if so, err := w.Node.Mailbox.SendOnly(ctx, p); err != nil || len(so) != 0 {
			t.Fatalf("the main operator's send-only accounts: %v %v", so, err)
		}
	})
}
