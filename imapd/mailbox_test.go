package imapd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
)

func listNames(t testing.TB, c *imapclient.Client, ref, pattern string, o *imap.ListOptions) map[string][]imap.MailboxAttr {
	t.Helper()
	l, err := c.List(ref, pattern, o).Collect()
	if err != nil {
		t.Fatalf("list %q %q: %v", ref, pattern, err)
	}
	out := map[string][]imap.MailboxAttr{}
	for _, d := range l {
		out[d.Mailbox] = d.Attrs
		if d.Delim != '/' {
			t.Fatalf("delimiter %q", d.Delim)
		}
	}
	return out
}

// LIST, NAMESPACE, SELECT/EXAMINE, STATUS, and the fixed folders.
func TestFolders(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		send(t, w, ayse, "Birinci", mehmet.Account.Address)
		send(t, w, ayse, "İkinci", mehmet.Account.Address)
		c := e.login(mehmet.Account.Address, mehmet.Password)

		names := listNames(t, c, "", "*", nil)
		for _, f := range mailbox.Folders {
			if _, ok := names[f]; !ok {
				t.Fatalf("LIST lacks %s: %v", f, names)
			}
		}
		if len(names) != len(mailbox.Folders) {
			t.Fatalf("LIST: %v", names)
		}
		if !slices.Contains(names["Sent"], imap.MailboxAttrSent) || !slices.Contains(names["Trash"], imap.MailboxAttrTrash) ||
			!slices.Contains(names["Drafts"], imap.MailboxAttrDrafts) || !slices.Contains(names["Archive"], imap.MailboxAttrArchive) {
			t.Fatalf("special-use attributes: %v", names)
		}
		if n := listNames(t, c, "", "inbox", nil); len(n) != 1 {
			t.Fatalf("LIST inbox: %v", n)
		}
		if n := listNames(t, c, "", "D%", nil); len(n) != 2 {
			t.Fatalf("LIST D%%: %v", n)
		}
		if n := listNames(t, c, "", "*", &imap.ListOptions{SelectSpecialUse: true}); len(n) != 4 {
			t.Fatalf("LIST (SPECIAL-USE): %v", n)
		}
		ns, err := c.Namespace().Wait()
		if err != nil {
			t.Fatal(err)
		}
		if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "" || ns.Personal[0].Delim != '/' || ns.Shared != nil {
			t.Fatalf("namespace: %+v", ns)
		}

		// LIST-STATUS and STATUS.
		l, err := c.List("", "INBOX", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true}}).Collect()
		if err != nil || len(l) != 1 || l[0].Status == nil || *l[0].Status.NumMessages != 2 || *l[0].Status.NumUnseen != 2 {
			t.Fatalf("LIST RETURN (STATUS): %v %+v", err, l)
		}
		st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, NumDeleted: true, Size: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		inbox, _ := mailbox.GetFolder(context.Background(), w.Q(), mehmet.Account.ID, mailbox.Inbox)
		_, _, size, _ := mailbox.Counts(context.Background(), w.Q(), inbox.ID)
		if *st.NumMessages != 2 || st.UIDNext != 3 || st.UIDValidity != inbox.UIDValidity || *st.NumUnseen != 2 || *st.NumDeleted != 0 || *st.Size != size {
			t.Fatalf("STATUS: %+v", st)
		}

		// SELECT.
		sd := mustSelect(t, c, "inbox", false)
		if sd.NumMessages != 2 || sd.UIDValidity != inbox.UIDValidity || sd.UIDNext != 3 {
			t.Fatalf("SELECT: %+v", sd)
		}
		// EXAMINE is read-only: STORE and EXPUNGE are refused.
		mustSelect(t, c, "INBOX", true)
		if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err == nil {
			t.Fatal("STORE in EXAMINE accepted")
		}
		if err := c.Expunge().Close(); err == nil {
			t.Fatal("EXPUNGE in EXAMINE accepted")
		}

		// Standard folders are fixed; user folders come and go; unknown
		// names do not exist.
		for _, err := range []error{c.Delete("Archive").Wait(), c.Rename("Archive", "Old", nil).Wait(), c.Create("archive", nil).Wait()} {
			if imapCode(err) != imap.ResponseCodeCannot && imapCode(err) != imap.ResponseCodeAlreadyExists {
				t.Fatalf("DELETE/RENAME/CREATE of a standard folder: %v", err)
			}
		}
		if err := c.Create("Projects", nil).Wait(); err != nil {
			t.Fatalf("CREATE Projects: %v", err)
		}
		if err := c.Rename("Projects", "Projeler", nil).Wait(); err != nil {
			t.Fatalf("RENAME Projects: %v", err)
		}
		if err := c.Delete("Projeler").Wait(); err != nil {
			t.Fatalf("DELETE Projeler: %v", err)
		}
		if _, err := c.Select("Nonexistent", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
			t.Fatalf("SELECT Nonexistent: %v", err)
		}
		if err := c.Subscribe("Archive").Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Status("../../etc", &imap.StatusOptions{NumMessages: true}).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
			t.Fatalf("STATUS of a strange name: %v", err)
		}
		// The connection goes on.
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
	})
}

// Read evidence: header fetches and PEEK are not reads; the first body
// fetch without PEEK is, once, whatever the session; \Seen follows RFC 9051.
func TestFetchReadEvidence(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		e := startServer(t, w)
		ayse, mehmet := w.Person("Ayşe", "Kaya"), w.Person("Mehmet", "Kara")
		msg := send(t, w, ayse, "=?utf-8?q?=C3=96deme_emri?=", mehmet.Account.Address)
		inbox, _ := mailbox.GetFolder(ctx, w.Q(), mehmet.Account.ID, mailbox.Inbox)
		ms, _ := mailbox.ListMessages(ctx, w.Q(), inbox.ID)
		want, err := w.Node.Mailbox.Content(ctx, ms[0])
		if err != nil {
			t.Fatal(err)
		}
		c := e.login(mehmet.Account.Address, mehmet.Password)
		mustSelect(t, c, "INBOX", false)

		// Not reads.
		got := fetch(t, c, imap.SeqSetNum(1), &imap.FetchOptions{
			UID: true, Flags: true, Envelope: true, RFC822Size: true, InternalDate: true,
			BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
			BodySection: []*imap.FetchItemBodySection{
				{Peek: true},
				{Specifier: imap.PartSpecifierHeader, Peek: true},
				{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "From"}, Peek: true},
				{Peek: true, Specifier: imap.PartSpecifierText, Partial: &imap.SectionPartial{Offset: 10, Size: 100}},
				{Part: []int{1}, Specifier: imap.PartSpecifierMIME, Peek: true},
			},
			BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{1}}},
		})
		if len(got) != 1 {
			t.Fatalf("fetch: %d messages", len(got))
		}
		m := got[0]
		if m.UID != 1 || m.RFC822Size != int64(len(want)) || m.Envelope == nil || m.Envelope.Subject != "KEP: Ödeme emri" {
			t.Fatalf("UID %d size %d envelope %+v", m.UID, m.RFC822Size, m.Envelope)
		}
		if len(m.Envelope.From) != 1 || m.Envelope.From[0].Addr() != ayse.Account.Address {
			t.Fatalf("envelope from: %+v", m.Envelope.From)
		}
		if !bytes.Equal(m.FindBodySection(&imap.FetchItemBodySection{}), want) {
			t.Fatal("BODY.PEEK[] differs from the stored message")
		}
		hdr := m.FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader})
		hdrEnd := bytes.Index(want, []byte("\r\n\r\n")) + 4
		if !bytes.Equal(hdr, want[:hdrEnd]) {
			t.Fatalf("BODY[HEADER]: %q", hdr)
		}
		text := m.FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Partial: &imap.SectionPartial{Offset: 10, Size: 100}})
		if !bytes.Equal(text, want[hdrEnd+10:hdrEnd+110]) {
			t.Fatalf("BODY.PEEK[TEXT]<10.100>: %q", text)
		}
		fields := m.FindBodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "From"}})
		if !bytes.Contains(fields, []byte("Subject: ")) || bytes.Contains(fields, []byte("To: ")) {
			t.Fatalf("HEADER.FIELDS: %q", fields)
		}
		mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
		if !ok || mp.Subtype != "signed" || len(mp.Children) != 2 {
			t.Fatalf("BODYSTRUCTURE: %#v", m.BodyStructure)
		}
		if slices.Contains(m.Flags, imap.FlagSeen) {
			t.Fatal("\\Seen set by a PEEK fetch")
		}
		if cs := codes(t, w, msg.ID); count(cs, 60) != 0 {
			t.Fatalf("evidence after PEEK fetches: %v", cs)
		}
		// BODY[HEADER] and BODY[1.MIME] without PEEK set \Seen (RFC 9051
		// §6.4.5), and the FETCH response says so, but they are no read.
		got = fetch(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
			{Specifier: imap.PartSpecifierHeader}, {Part: []int{1}, Specifier: imap.PartSpecifierMIME},
			{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}}})
		if !slices.Contains(got[0].Flags, imap.FlagSeen) {
			t.Fatalf("flags after BODY[HEADER]: %v", got[0].Flags)
		}
		if cs := codes(t, w, msg.ID); count(cs, 60) != 0 {
			t.Fatalf("evidence after header fetches: %v", cs)
		}
		// RFC822.HEADER, ENVELOPE, RFC822.SIZE: no read either.
		if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}}}).Collect(); err != nil {
			t.Fatal(err)
		}
		if cs := codes(t, w, msg.ID); count(cs, 60) != 0 {
			t.Fatalf("evidence after header fetches: %v", cs)
		}

		// Reads, from two sessions, several times: one evidence 60.
		c2 := e.login(mehmet.Account.Address, mehmet.Password)
		mustSelect(t, c2, "INBOX", true) // EXAMINE still reads the content
		for _, cl := range []*imapclient.Client{c, c2, c} {
			for _, o := range []*imap.FetchOptions{
				{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText}}},
				{BodySection: []*imap.FetchItemBodySection{{}}},
				{BinarySection: []*imap.FetchItemBinarySection{{Part: []int{1}}}},
				{BodySection: []*imap.FetchItemBodySection{{Partial: &imap.SectionPartial{Offset: 0, Size: 64}}}},
			} {
				r := fetch(t, cl, imap.SeqSetNum(1), o)
				if len(r) != 1 {
					t.Fatal("no message")
				}
			}
		}
		cs := codes(t, w, msg.ID)
		if count(cs, 60) != 1 {
			t.Fatalf("evidence after reads: %v, want exactly one 60", cs)
		}
		// The full body fetched without PEEK is the stored message, byte for byte.
		r := fetch(t, c, imap.UIDSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}})
		if !bytes.Equal(r[0].FindBodySection(&imap.FetchItemBodySection{}), want) {
			t.Fatal("BODY[] differs")
		}
		// A part of the envelope: 1 is multipart/mixed, 1.3 the original.
		r = fetch(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Part: []int{1, 3}, Peek: true}}})
		if orig := r[0].FindBodySection(&imap.FetchItemBodySection{Part: []int{1, 3}}); !bytes.Contains(orig, []byte("X-TR-REM-iletiTip: standart")) {
			t.Fatalf("BODY[1.3]: %q", orig)
		}
	})
}

// An operator sees the accounts they hold the read grant on, reads in
// their own name, and may delete only with the delete grant.
func TestOperatorViews(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		e := startServer(t, w)
		ayse := w.Person("Ayşe", "Yıldız")
		acme, main := w.Company("Acme Lojistik", 0) // main operator: all grants
		reader := w.Operator(acme, "Ali", "Okur", account.SubOperator, account.GrantRead)
		hidden, _ := w.Company("Gizli Holding", 0)
		deleter := w.Operator(hidden, "Deniz", "Siler", account.SubOperator, account.GrantDelete)
		msg := send(t, w, ayse, "Fatura", acme.Address)
		send(t, w, ayse, "Gizli", hidden.Address)

		// The read-only operator: a shared namespace, acme's folders only.
		c := e.login(reader.TCKN, reader.Password)
		ns, err := c.Namespace().Wait()
		if err != nil || ns.Personal != nil || len(ns.Shared) != 1 || ns.Shared[0].Prefix != "" {
			t.Fatalf("operator namespace: %+v %v", ns, err)
		}
		names := listNames(t, c, "", "*", nil)
		if len(names) != 2+len(mailbox.Folders) || !slices.Contains(names[acme.Address], imap.MailboxAttrNoSelect) || names["INBOX"] == nil {
			t.Fatalf("operator LIST: %v", names)
		}
		if top := listNames(t, c, "", "%", nil); len(top) != 2 {
			t.Fatalf("LIST %%: %v", top)
		}
		// The operator's own INBOX is an empty, read-only placeholder.
		if sd, err := c.Select("INBOX", nil).Wait(); err != nil || sd.NumMessages != 0 {
			t.Fatalf("operator SELECT INBOX: %+v %v", sd, err)
		}
		if _, err := appendMsg(c, "INBOX", "Subject: x\r\n\r\nx\r\n", nil); imapCode(err) != imap.ResponseCodeCannot {
			t.Fatalf("APPEND to the placeholder INBOX: %v", err)
		}
		for _, name := range []string{hidden.Address + "/INBOX", acme.Address, ayse.Account.Address + "/INBOX"} {
			if _, err := c.Select(name, nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
				t.Fatalf("SELECT %s: %v", name, err)
			}
		}
		mustSelect(t, c, strings.ToUpper(acme.Address)+"/inbox", false)
		fetch(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}})
		cs := codes(t, w, msg.ID)
		if count(cs, 60) != 1 {
			t.Fatalf("evidence: %v", cs)
		}
		sts, _ := mustEvidence(t, w, msg.ID, 60)
		if !bytes.Contains(sts, []byte(reader.TCKN)) {
			t.Fatal("read evidence does not name the operator")
		}
		// No delete grant: STORE \Deleted is refused and changes nothing,
		// MOVE to Trash too; CLOSE closes without expunging.
		err = c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
		if imapCode(err) != imap.ResponseCodeNoPerm || !strings.Contains(err.Error(), "delete grant") {
			t.Fatalf("STORE \\Deleted without the delete grant: %v", err)
		}
		if _, err := c.Move(imap.SeqSetNum(1), acme.Address+"/Trash").Wait(); imapCode(err) != imap.ResponseCodeNoPerm {
			t.Fatalf("MOVE to Trash without the delete grant: %v", err)
		}
		if _, err := c.Copy(imap.SeqSetNum(1), acme.Address+"/Archive").Wait(); imapCode(err) != imap.ResponseCodeNoPerm {
			t.Fatalf("COPY without the archive grant: %v", err)
		}
		if err := c.UnselectAndExpunge().Wait(); err != nil {
			t.Fatalf("CLOSE: %v", err)
		}
		inbox, _ := mailbox.GetFolder(ctx, w.Q(), acme.ID, mailbox.Inbox)
		if n, _, _, _ := mailbox.Counts(ctx, w.Q(), inbox.ID); n != 1 {
			t.Fatalf("CLOSE without the delete grant removed messages: %d left", n)
		}

		// An operator with delete but no read grant sees nothing.
		cd := e.login(deleter.TCKN, deleter.Password)
		if names := listNames(t, cd, "", "*", nil); len(names) != 1 || names["INBOX"] == nil {
			t.Fatalf("operator without read grant sees %v", names)
		}
		if _, err := cd.Status(hidden.Address+"/INBOX", &imap.StatusOptions{NumMessages: true}).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
			t.Fatalf("STATUS without read grant: %v", err)
		}

		// The main operator (all grants) expunges: the content goes, the
		// evidence stays.
		cm := e.login(main.TCKN, main.Password)
		mustSelect(t, cm, acme.Address+"/INBOX", false)
		if err := cm.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := cm.Expunge().Close(); err != nil {
			t.Fatal(err)
		}
		if n, _, _, _ := mailbox.Counts(ctx, w.Q(), inbox.ID); n != 0 {
			t.Fatalf("%d messages left", n)
		}
		if cs := codes(t, w, msg.ID); count(cs, 10) != 1 || count(cs, 40) != 1 || count(cs, 60) != 1 {
			t.Fatalf("evidence after EXPUNGE: %v", cs)
		}

		// A grant revoked during the session applies at the next SELECT.
		if _, err := w.Node.Accounts.Revoke(ctx, account.SystemActor, acme.Address, reader.TCKN, account.GrantRead); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select(acme.Address+"/INBOX", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
			t.Fatalf("SELECT after the read grant was revoked: %v", err)
		}
	})
}

func mustEvidence(t testing.TB, w *providertest.World, msgID int64, code int) ([]byte, bool) {
	t.Helper()
	sts, err := evidence.ByMessage(context.Background(), w.Q(), msgID)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if int(st.Code) == code {
			return st.Document, true
		}
	}
	t.Fatalf("no evidence %d", code)
	return nil, false
}

// EXPUNGE deletes content from the content store once no folder holds it
// (here: the recipient's INBOX, rendered from the original, and the
// sender's Sent copy), and keeps the evidence; other sessions learn of it
// (unilateral EXPUNGE).
func TestExpungeKeepsEvidence(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		e := startServer(t, w)
		ayse, mehmet := w.Person("Ayşe", "Ak"), w.Person("Mehmet", "Ak")
		msg := send(t, w, ayse, "Silinecek", mehmet.Account.Address)
		send(t, w, ayse, "Kalacak", mehmet.Account.Address)
		if !w.Node.Blobs.Has(msg.Digest) {
			t.Fatal("no original in the content store")
		}

		var expunged []uint32
		watcher := e.loginH(mehmet.Account.Address, mehmet.Password, &imapclient.UnilateralDataHandler{
			Expunge: func(seq uint32) { expunged = append(expunged, seq) }})
		mustSelect(t, watcher, "INBOX", false)

		c := e.login(mehmet.Account.Address, mehmet.Password)
		mustSelect(t, c, "INBOX", false)
		if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		// UID EXPUNGE of another UID removes nothing.
		if seqs, err := c.UIDExpunge(imap.UIDSetNum(2)).Collect(); err != nil || len(seqs) != 0 {
			t.Fatalf("UID EXPUNGE 2: %v %v", seqs, err)
		}
		seqs, err := c.Expunge().Collect()
		if err != nil || len(seqs) != 1 || seqs[0] != 1 {
			t.Fatalf("EXPUNGE: %v %v", seqs, err)
		}
		// The other session hears of it at its next command.
		if err := watcher.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		if len(expunged) != 1 || expunged[0] != 1 {
			t.Fatalf("unilateral EXPUNGE: %v", expunged)
		}
		r := fetch(t, watcher, imap.SeqSetNum(1), &imap.FetchOptions{UID: true})
		if len(r) != 1 || r[0].UID != 2 {
			t.Fatalf("after EXPUNGE: %+v", r)
		}
		if !w.Node.Blobs.Has(msg.Digest) {
			t.Fatal("the original went while the sender's Sent copy holds it")
		}
		// The sender deletes their copy: no folder holds the original any
		// more, so it leaves the content store; the evidence stays.
		cs := e.login(ayse.Account.Address, ayse.Password)
		mustSelect(t, cs, "Sent", false)
		if err := cs.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := cs.UnselectAndExpunge().Wait(); err != nil { // CLOSE expunges
			t.Fatal(err)
		}
		if w.Node.Blobs.Has(msg.Digest) {
			t.Fatal("content still in the content store")
		}
		sent, _ := mailbox.GetFolder(ctx, w.Q(), ayse.Account.ID, mailbox.Sent)
		if n, _, _, _ := mailbox.Counts(ctx, w.Q(), sent.ID); n != 1 {
			t.Fatalf("Sent holds %d messages, want 1", n)
		}
		if cs := codes(t, w, msg.ID); count(cs, 10) != 1 || count(cs, 40) != 1 {
			t.Fatalf("evidence after EXPUNGE: %v", cs)
		}
	})
}

// COPY, MOVE, APPEND to Drafts (only), and the quota the store enforces.
func TestCopyMoveAppendQuota(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		e := startServer(t, w)
		ayse, mehmet := w.Person("Ayşe", "Er"), w.Person("Mehmet", "Er")
		send(t, w, ayse, "Bir", mehmet.Account.Address)
		send(t, w, ayse, "İki", mehmet.Account.Address)
		used := func() int64 { return w.Refresh(mehmet.Account).UsedBytes }
		before := used()
		c := e.login(mehmet.Account.Address, mehmet.Password)
		mustSelect(t, c, "INBOX", false)

		cd, err := c.Copy(imap.SeqSetNum(1), "Archive").Wait()
		if err != nil {
			t.Fatal(err)
		}
		arch, _ := mailbox.GetFolder(ctx, w.Q(), mehmet.Account.ID, mailbox.Archive)
		if cd.UIDValidity != arch.UIDValidity || cd.DestUIDs.String() != "1" || cd.SourceUIDs.String() != "1" {
			t.Fatalf("COPYUID: %+v", cd)
		}
		inbox, _ := mailbox.GetFolder(ctx, w.Q(), mehmet.Account.ID, mailbox.Inbox)
		ms, _ := mailbox.ListMessages(ctx, w.Q(), inbox.ID)
		if got := used(); got != before+ms[0].Size {
			t.Fatalf("usage after COPY: %d, want %d", got, before+ms[0].Size)
		}
		md, err := c.Move(imap.UIDSetNum(2), "Trash").Wait()
		if err != nil || md.DestUIDs.String() != "1" {
			t.Fatalf("MOVE: %+v %v", md, err)
		}
		if got := used(); got != before+ms[0].Size {
			t.Fatalf("usage after MOVE: %d", got)
		}
		if st, _ := c.Status("Trash", &imap.StatusOptions{NumMessages: true}).Wait(); st == nil || *st.NumMessages != 1 {
			t.Fatalf("Trash: %+v", st)
		}
		if sd, _ := c.Select("INBOX", nil).Wait(); sd.NumMessages != 1 {
			t.Fatalf("INBOX after MOVE: %d", sd.NumMessages)
		}
		// Rules: nothing but evidence enters Delil; no APPEND but to Drafts.
		if _, err := c.Copy(imap.SeqSetNum(1), "Delil").Wait(); imapCode(err) != imap.ResponseCodeCannot {
			t.Fatalf("COPY to Delil: %v", err)
		}
		draft := "From: " + mehmet.Account.Address + "\r\nTo: " + ayse.Account.Address + "\r\nSubject: Taslak\r\n\r\nYanıt taslağı.\r\n"
		for _, box := range []string{"INBOX", "Delil", "Trash"} {
			if _, err := appendMsg(c, box, draft, nil); imapCode(err) != imap.ResponseCodeCannot {
				t.Fatalf("APPEND to %s: %v", box, err)
			}
		}
		ad, err := appendMsg(c, "Drafts", draft, []imap.Flag{imap.FlagDraft, "$Taslak"})
		if err != nil {
			t.Fatal(err)
		}
		drafts, _ := mailbox.GetFolder(ctx, w.Q(), mehmet.Account.ID, mailbox.Drafts)
		if ad.UID != 1 || ad.UIDValidity != drafts.UIDValidity {
			t.Fatalf("APPENDUID: %+v", ad)
		}
		mustSelect(t, c, "Drafts", false)
		r := fetch(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		if string(r[0].FindBodySection(&imap.FetchItemBodySection{})) != draft || !slices.Contains(r[0].Flags, "$Taslak") {
			t.Fatalf("draft: %q %v", r[0].FindBodySection(&imap.FetchItemBodySection{}), r[0].Flags)
		}
		if got := used(); got != before+ms[0].Size+int64(len(draft)) {
			t.Fatalf("usage after APPEND: %d", got)
		}
		// Over quota: APPEND and COPY get NO [OVERQUOTA]; nothing changes.
		if _, err := w.Q().Exec(ctx, `UPDATE accounts SET quota_bytes = ? WHERE id = ?`, used()+10, mehmet.Account.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := appendMsg(c, "Drafts", draft, nil); imapCode(err) != imap.ResponseCodeOverQuota {
			t.Fatalf("APPEND over quota: %v", err)
		}
		mustSelect(t, c, "INBOX", false)
		if _, err := c.Copy(imap.SeqSetNum(1), "Archive").Wait(); imapCode(err) != imap.ResponseCodeOverQuota {
			t.Fatalf("COPY over quota: %v", err)
		}
		// Too big for the APPENDLIMIT: refused before the bytes are sent.
		big := c.Append("Drafts", w.Node.Config.SMTP.MaxMessageBytes+1, nil)
		if _, err := big.Wait(); imapCode(err) != imap.ResponseCodeTooBig {
			t.Fatalf("APPEND beyond the limit: %v", err)
		}
	})
}

func appendMsg(c *imapclient.Client, box, msg string, flags []imap.Flag) (*imap.AppendData, error) {
	cmd := c.Append(box, int64(len(msg)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write([]byte(msg)); err != nil {
		return nil, err
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	return cmd.Wait()
}

// IDLE reports a new delivery, and flag changes from another session.
func TestIdle(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		ayse, mehmet := w.Person("Ayşe", "Su"), w.Person("Mehmet", "Su")
		send(t, w, ayse, "Önce", mehmet.Account.Address)
		exists := make(chan uint32, 10)
		flags := make(chan []imap.Flag, 10)
		c := e.loginH(mehmet.Account.Address, mehmet.Password, &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
			Fetch: func(m *imapclient.FetchMessageData) {
				for item := m.Next(); item != nil; item = m.Next() {
					if f, ok := item.(imapclient.FetchItemDataFlags); ok {
						flags <- f.Flags
					}
				}
			},
		})
		mustSelect(t, c, "INBOX", false)
		idle, err := c.Idle()
		if err != nil {
			t.Fatal(err)
		}
		send(t, w, ayse, "Sonra", mehmet.Account.Address)
		select {
		case n := <-exists:
			if n != 2 {
				t.Fatalf("EXISTS %d", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("IDLE did not report the delivery")
		}
		other := e.login(mehmet.Account.Address, mehmet.Password)
		mustSelect(t, other, "INBOX", false)
		if err := other.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case f := <-flags:
			if !slices.Contains(f, imap.FlagFlagged) {
				t.Fatalf("FETCH FLAGS %v", f)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("IDLE did not report the flag change")
		}
		if err := idle.Close(); err != nil {
			t.Fatal(err)
		}
		if err := idle.Wait(); err != nil {
			t.Fatal(err)
		}
		// Without IDLE, the next command reports what arrived.
		send(t, w, ayse, "Üçüncü", mehmet.Account.Address)
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-exists:
			if n != 3 {
				t.Fatalf("EXISTS %d", n)
			}
		default:
			t.Fatal("NOOP did not report the delivery")
		}
	})
}

// UIDVALIDITY, UIDs, sizes and bytes — Delil's rendered evidence items
// included — are the same after a restart.
func TestStableAcrossRestart(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		e := startServer(t, w)
		ayse, mehmet := w.Person("Ayşe", "Taş"), w.Person("Mehmet", "Taş")
		send(t, w, ayse, "Bir", mehmet.Account.Address)
		send(t, w, ayse, "İki", mehmet.Account.Address)
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		snapshot := func() string {
			c := e.login(ayse.Account.Address, ayse.Password)
			defer c.Logout()
			var b strings.Builder
			for _, box := range []string{"Sent", "Delil"} {
				sd := mustSelect(t, c, box, true)
				b.WriteString(box + " " + itoa(sd.UIDValidity) + " " + itoa(uint32(sd.UIDNext)) + "\n")
				for _, m := range fetch(t, c, imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, RFC822Size: true,
					BodySection: []*imap.FetchItemBodySection{{Peek: true}}}) {
					body := m.FindBodySection(&imap.FetchItemBodySection{})
					if int64(len(body)) != m.RFC822Size {
						t.Fatalf("%s UID %d: RFC822.SIZE %d, body %d bytes", box, m.UID, m.RFC822Size, len(body))
					}
					b.WriteString(itoa(uint32(m.UID)) + " " + itoa(uint32(m.RFC822Size)) + " " + hexSum(body) + "\n")
				}
			}
			return b.String()
		}
		first := snapshot()
		if strings.Count(first, "\n") < 2+2+4 {
			t.Fatalf("too little to compare:\n%s", first)
		}
		// More checkpoints and time pass; the server restarts.
		w.Clock.Advance(time.Hour)
		send(t, w, mehmet, "Yanıt", ayse.Account.Address)
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		e.srv.Close()
		e.start()
		second := snapshot()
		if !strings.HasPrefix(second, first[:strings.Index(first, "Delil")]) {
			t.Fatalf("Sent changed:\n%s\n---\n%s", first, second)
		}
		// Delil grew by the new evidence; what was there is unchanged.
		delilBefore := first[strings.Index(first, "Delil"):]
		delilAfter := second[strings.Index(second, "Delil"):]
		beforeLines, afterLines := strings.Split(delilBefore, "\n")[1:], strings.Split(delilAfter, "\n")[1:]
		for i, l := range beforeLines {
			if l != "" && afterLines[i] != l {
				t.Fatalf("Delil item changed after restart: %q → %q", l, afterLines[i])
			}
		}
		if strings.Split(delilBefore, "\n")[0][:16] != strings.Split(delilAfter, "\n")[0][:16] {
			t.Fatalf("UIDVALIDITY changed: %q %q", delilBefore, delilAfter)
		}
	})
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}
