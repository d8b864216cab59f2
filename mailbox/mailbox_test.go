package mailbox_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider/providertest"
)

// signedMessage makes an S/MIME signed original from p to recipients.
func signedMessage(t testing.TB, p *providertest.Person, tip string, to ...string) []byte {
	t.Helper()
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: =?utf-8?q?=C3=96deme_emri?=\r\nDate: %s\r\nMessage-ID: <%d@client>\r\nX-TR-REM-iletiTip: %s\r\nMIME-Version: 1.0\r\n",
		p.Account.Address, strings.Join(to, ", "), time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), tip)
	entity := []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nÖdeme emri: 1.000 TL.\r\n")
	msg, err := cms.BuildSigned([]byte(hdr), entity, p.Signer.Key, p.Signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func submit(t testing.TB, w *providertest.World, p *providertest.Person, raw []byte, tip string, to ...string) *mailbox.KEPMessage {
	t.Helper()
	bw, err := w.Node.Blobs.Create()
	if err != nil {
		t.Fatal(err)
	}
	bw.Write(raw)
	d, gen, err := bw.CommitDeferred()
	if err != nil {
		t.Fatal(err)
	}
	msg, rec, err := w.Node.Mailbox.Accept(context.Background(), &mailbox.Submission{Sender: p.Account, Original: d, Size: int64(len(raw)), BlobGen: gen,
		From: p.Account.Address, Recipients: to, IletiID: "ileti-" + evidence.NewID(), IletiTip: tip, AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Evidence.Code != evidence.Accepted || msg.ID == 0 {
		t.Fatalf("accept: %+v", rec.Evidence)
	}
	return msg
}

func codes(t testing.TB, w *providertest.World, msgID int64) string {
	t.Helper()
	sts, err := evidence.ByMessage(context.Background(), w.Node.DB.Q(), msgID)
	if err != nil {
		t.Fatal(err)
	}
	var cs []string
	for _, st := range sts {
		cs = append(cs, fmt.Sprintf("%d:%s", st.Code, st.Subject))
	}
	return strings.Join(cs, " ")
}

func anchors(t testing.TB, w *providertest.World) evidence.Anchors {
	t.Helper()
	cfg := w.Node.Config
	provCA, err := pki.LoadCertsPEM(cfg.Path("keys/provider-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(provCA[0])
	return evidence.Anchors{ProviderCAs: pool, TSACAs: w.Node.TSARoots, LogKeys: []string{w.Node.LogKey}}
}

func TestAcceptDeliverReadDeem(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		db := w.Node.DB
		mb := w.Node.Mailbox
		ayse, mehmet, zehra := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk"), w.Person("Zehra", "Ak")
		to := []string{mehmet.Account.Address, zehra.Account.Address, "nobody.here@hs01.kep.tr"}
		raw := signedMessage(t, ayse, "standart", to...)
		msg := submit(t, w, ayse, raw, "standart", to...)
		if _, err := mb.DeliverQueued(ctx, 100); err != nil {
			t.Fatal(err)
		}
		got := codes(t, w, msg.ID)
		want := "10: 40:" + mehmet.Account.Address + " 40:" + zehra.Account.Address + " 41:nobody.here@hs01.kep.tr"
		if got != want {
			t.Fatalf("evidence %q, want %q", got, want)
		}
		// The recipient's INBOX holds the provider's envelope, which openssl
		// and our verifier accept, and which carries the original byte for byte.
		inbox, err := mailbox.GetFolder(ctx, db.Q(), mehmet.Account.ID, mailbox.Inbox)
		if err != nil {
			t.Fatal(err)
		}
		ms, _ := mailbox.ListMessages(ctx, db.Q(), inbox.ID)
		if len(ms) != 1 || ms[0].Kind != mailbox.KindKEP {
			t.Fatalf("inbox: %+v", ms)
		}
		env, err := mb.Content(ctx, ms[0])
		if err != nil {
			t.Fatal(err)
		}
		signed, err := cms.Verify(env)
		if err != nil {
			t.Fatalf("envelope signature: %v", err)
		}
		if !signed.Signer.Equal(w.Node.Cert.Cert) {
			t.Fatal("envelope not signed by the provider")
		}
		if !bytes.Contains(signed.Content, raw) {
			t.Fatal("the envelope does not carry the original byte for byte")
		}
		for _, h := range []string{"X-TR-REM-iletiTip: standart", "X-TR-REM-iletiID: " + msg.IletiID, "Sender: "} {
			if !bytes.Contains(env, []byte(h)) {
				t.Fatalf("envelope lacks %q", h)
			}
		}
		// Sent copy.
		sent, _ := mailbox.GetFolder(ctx, db.Q(), ayse.Account.ID, mailbox.Sent)
		if sm, _ := mailbox.ListMessages(ctx, db.Q(), sent.ID); len(sm) != 1 || sm[0].Content != blob.Digest(msg.Digest) {
			t.Fatalf("sent: %+v", sm)
		}
		// Reading: 60 once, whatever path reads it.
		p := &account.Principal{Account: w.Refresh(mehmet.Account)}
		for i := 0; i < 3; i++ {
			if err := mb.MarkRead(ctx, p, ms[0]); err != nil {
				t.Fatal(err)
			}
		}
		// Someone else cannot read it.
		other := &account.Principal{Account: zehra.Account}
		if err := mb.MarkRead(ctx, other, ms[0]); err != nil && !errors.Is(err, mailbox.ErrNoAccess) {
			t.Fatal(err)
		}
		// Deemed read: Zehra never opens it; 24 h later 61 names the rule.
		w.Clock.Advance(23 * time.Hour)
		if n, err := mb.DeemRead(ctx, 10); err != nil || n != 0 {
			t.Fatalf("deemed early: %d %v", n, err)
		}
		w.Clock.Advance(time.Hour + time.Second)
		if n, err := mb.DeemRead(ctx, 10); err != nil || n != 1 {
			t.Fatalf("deemed: %d %v", n, err)
		}
		if n, _ := mb.DeemRead(ctx, 10); n != 0 {
			t.Fatal("61 issued twice")
		}
		got = codes(t, w, msg.ID)
		if want := want + " 60:" + mehmet.Account.Address + " 61:" + zehra.Account.Address; got != want {
			t.Fatalf("evidence %q, want %q", got, want)
		}
		sts, _ := evidence.ByMessage(ctx, db.Q(), msg.ID)
		deemed, err := evidence.Parse(sts[len(sts)-1].Document)
		if err != nil || !strings.Contains(deemed.Reasons[0].Text, "standart: 24h0m0s after delivery") {
			t.Fatalf("61 reason: %v %+v", err, deemed.Reasons)
		}
		// Checkpoint, then the sender's Delil folder has every evidence with
		// a bundle that verifies offline against the anchors.
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		delil, _ := mailbox.GetFolder(ctx, db.Q(), ayse.Account.ID, mailbox.Delil)
		items, _ := mailbox.ListMessages(ctx, db.Q(), delil.ID)
		if len(items) != 6 {
			t.Fatalf("%d Delil items, want 6", len(items))
		}
		for _, it := range items {
			b, err := w.Node.Bundle(ctx, it.Ref)
			if err != nil {
				t.Fatal(err)
			}
			rep := evidence.VerifyBundle(b, anchors(t, w), raw)
			if !rep.Valid {
				t.Fatalf("bundle of %d: %+v", it.Ref, rep.Checks)
			}
			c, err := mb.Content(ctx, it)
			if err != nil || !bytes.Contains(c, []byte("application/vnd.kep.evidence-bundle+zip")) {
				t.Fatalf("delil item: %v", err)
			}
		}
		// The recipient's INBOX has no evidence; Mehmet's Delil is empty.
		md, _ := mailbox.GetFolder(ctx, db.Q(), mehmet.Account.ID, mailbox.Delil)
		if n, _, _, _ := mailbox.Counts(ctx, db.Q(), md.ID); n != 0 {
			t.Fatal("recipient got the sender's evidence")
		}
		// Deleting content keeps evidence; the original can still be checked.
		if err := mb.RemoveMessages(ctx, p, inbox, []uint32{ms[0].UID}); err != nil {
			t.Fatal(err)
		}
		if got := codes(t, w, msg.ID); !strings.HasPrefix(got, "10:") {
			t.Fatal("evidence gone with the content")
		}
	})
}

func TestMailboxFull(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		db := w.Node.DB
		ayse, mehmet := w.Person("Ayşe", "Kaya"), w.Person("Mehmet", "Kara")
		// A quota just big enough for one envelope, then a notice at 80 %.
		if _, err := db.Q().Exec(ctx, `UPDATE accounts SET quota_bytes = 16000 WHERE id = ?`, mehmet.Account.ID); err != nil {
			t.Fatal(err)
		}
		raw := signedMessage(t, ayse, "eTebligat", mehmet.Account.Address)
		m1 := submit(t, w, ayse, raw, "eTebligat", mehmet.Account.Address)
		m2 := submit(t, w, ayse, signedMessage(t, ayse, "standart", mehmet.Account.Address), "standart", mehmet.Account.Address)
		for i := 0; i < 3; i++ {
			w.Node.Mailbox.DeliverQueued(ctx, 100)
		}
		c1, c2 := codes(t, w, m1.ID), codes(t, w, m2.ID)
		full := "41:" + mehmet.Account.Address
		if !(strings.HasSuffix(c1, full) != strings.HasSuffix(c2, full)) {
			t.Fatalf("want exactly one non-delivery for a full mailbox: %q / %q", c1, c2)
		}
		sts, _ := evidence.ByMessage(ctx, db.Q(), m2.ID)
		if strings.HasSuffix(c1, full) {
			sts, _ = evidence.ByMessage(ctx, db.Q(), m1.ID)
		}
		e, _ := evidence.Parse(sts[len(sts)-1].Document)
		if e.Reasons[0].Code != evidence.ReasonCodeMailboxFull {
			t.Fatalf("reason %+v", e.Reasons)
		}
		inbox, _ := mailbox.GetFolder(ctx, db.Q(), mehmet.Account.ID, mailbox.Inbox)
		ms, _ := mailbox.ListMessages(ctx, db.Q(), inbox.ID)
		var notices []int64
		for _, m := range ms {
			if m.Kind == mailbox.KindNotice {
				notices = append(notices, m.Ref)
			}
		}
		if len(notices) == 0 {
			t.Fatalf("no quota notice: %+v", ms)
		}
	})
}

func TestETebligatDeadline(t *testing.T) {
	p := mailbox.DefaultPolicy()
	// Delivered 30 Nov 2026 23:30 Istanbul time → deemed at the end of 5 Dec.
	at := time.Date(2026, 11, 30, 20, 30, 0, 0, time.UTC)
	got, rule := p.Deadline("eTebligat", at)
	want := time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC) // 6 Dec 00:00 +03
	if !got.Equal(want) || !strings.Contains(rule, "day 5") {
		t.Fatalf("got %s (%s), want %s", got, rule, want)
	}
	got, _ = p.Deadline("standart", at)
	if !got.Equal(at.Add(24 * time.Hour)) {
		t.Fatal(got)
	}
}

func TestContentLeavesTheStoreWithItsLastCopy(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		mb := w.Node.Mailbox
		ayse, mehmet := w.Person("Ayşe", "Sil"), w.Person("Mehmet", "Sil")
		raw := signedMessage(t, ayse, "standart", mehmet.Account.Address)
		msg := submit(t, w, ayse, raw, "standart", mehmet.Account.Address)
		if _, err := mb.DeliverQueued(ctx, 10); err != nil {
			t.Fatal(err)
		}
		remove := func(p *providertest.Person, folder string) {
			f, _ := mailbox.GetFolder(ctx, w.Q(), p.Account.ID, folder)
			ms, _ := mailbox.ListMessages(ctx, w.Q(), f.ID)
			if len(ms) != 1 {
				t.Fatalf("%s has %d messages", folder, len(ms))
			}
			if err := mb.RemoveMessages(ctx, &account.Principal{Account: p.Account}, f, []uint32{ms[0].UID}); err != nil {
				t.Fatal(err)
			}
		}
		remove(mehmet, mailbox.Inbox)
		if !w.Node.Blobs.Has(blob.Digest(msg.Digest)) {
			t.Fatal("the original left the store while the Sent copy holds it")
		}
		if w.Refresh(mehmet.Account).UsedBytes != 0 {
			t.Fatal("the recipient's quota was not given back")
		}
		remove(ayse, mailbox.Sent)
		if w.Node.Blobs.Has(blob.Digest(msg.Digest)) {
			t.Fatal("the original stayed in the store after its last copy was deleted")
		}
		if got := codes(t, w, msg.ID); got != "10: 40:"+mehmet.Account.Address {
			t.Fatalf("evidence after deleting the content: %q", got)
		}
	})
}

func TestRetrievalEvidenceDetails(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		mb := w.Node.Mailbox
		ayse := w.Person("Ayşe", "Okur")
		co, _ := w.Company("Okur Lojistik", account.AllGrants)
		reader := w.Operator(co, "Emre", "Okur", account.SubOperator, account.GrantRead)
		// An operator reads for the company: 60 names the reading operator
		// apart from the sender's details.
		msg := submit(t, w, ayse, signedMessage(t, ayse, "eYazisma", co.Address), "eYazisma", co.Address)
		if _, err := mb.DeliverQueued(ctx, 10); err != nil {
			t.Fatal(err)
		}
		inbox, _ := mailbox.GetFolder(ctx, w.Q(), co.ID, mailbox.Inbox)
		ms, _ := mailbox.ListMessages(ctx, w.Q(), inbox.ID)
		p, err := w.Node.Accounts.Authenticate(ctx, reader.TCKN, reader.Password, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := mb.MarkRead(ctx, p, ms[0]); err != nil {
			t.Fatal(err)
		}
		sts, _ := evidence.ByMessage(ctx, w.Q(), msg.ID)
		read, _ := evidence.Parse(sts[len(sts)-1].Document)
		if read.Code != evidence.Read || len(read.Properties) != 1 || read.Properties[0].Name != "readingOperator" || !strings.Contains(read.Properties[0].Value, reader.TCKN) {
			t.Fatalf("60 does not name the reading operator: %+v", read.Properties)
		}
		if read.Operator != nil {
			t.Fatalf("the reading operator was put in the sender's details: %+v", read.Operator)
		}
		// Deemed read of each type names its own rule.
		for _, tip := range []string{"standart", "eYazisma", "eTebligat"} {
			m := submit(t, w, ayse, signedMessage(t, ayse, tip, co.Address), tip, co.Address)
			if _, err := mb.DeliverQueued(ctx, 10); err != nil {
				t.Fatal(err)
			}
			w.Clock.Advance(7 * 24 * time.Hour)
			if _, err := mb.DeemRead(ctx, 10); err != nil {
				t.Fatal(err)
			}
			sts, _ := evidence.ByMessage(ctx, w.Q(), m.ID)
			e, _ := evidence.Parse(sts[len(sts)-1].Document)
			want := map[string]string{"standart": "deemed-read-standart-24h", "eYazisma": "deemed-read-eyazisma", "eTebligat": "deemed-read-etebligat-5days"}[tip]
			if e.Code != evidence.DeemedRead || e.Reasons[0].Code != evidence.ReasonKEPBase+want || !strings.Contains(e.Reasons[0].Text, tip) {
				t.Fatalf("%s: 61 with %+v", tip, e.Reasons)
			}
		}
	})
}
