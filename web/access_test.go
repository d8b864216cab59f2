package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/client"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// The access table (issue 14.5, the web's column of imapd's grants table):
// every route of the web mail with every demo identity. Each identity
// logs in and tries the routes on a target account of its own setting: a
// KEP message in the target's INBOX (from a sender), its evidence, an
// attachment. No identity reaches another account's messages or evidence
// through any URL; a missing grant is refused with its reason; nothing a
// refused request touches changes (the message stays unread: no 60).

type accessIdentity struct {
	name  string
	setup func(t *testing.T, w *providertest.World) (user, pass string, target *store.Account)
	// read, send, archive: what the identity may do on the target.
	read, send, archive bool
}

var accessIdentities = []accessIdentity{
	{"holder", func(t *testing.T, w *providertest.World) (string, string, *store.Account) {
		p := w.Person("Hale", "Sahip")
		return p.Account.Address, p.Password, p.Account
	}, true, true, true},
	{"main-operator", func(t *testing.T, w *providertest.World) (string, string, *store.Account) {
		co, main := w.Company("Ana Lojistik", 0)
		return main.TCKN, main.Password, co
	}, true, true, true},
	{"read-only-operator", func(t *testing.T, w *providertest.World) (string, string, *store.Account) {
		co, _ := w.Company("Okur Lojistik", 0)
		emre := w.Operator(co, "Emre", "Okur", account.SubOperator, account.GrantRead)
		return emre.TCKN, emre.Password, co
	}, true, false, false},
	{"send-only-operator", func(t *testing.T, w *providertest.World) (string, string, *store.Account) {
		co, _ := w.Company("Yazar Lojistik", 0)
		op := w.Operator(co, "Sena", "Yazar", account.SubOperator, account.GrantSend)
		return op.TCKN, op.Password, co
	}, false, true, false}, // sends for the company without reading its mail
	{"another-account", func(t *testing.T, w *providertest.World) (string, string, *store.Account) {
		victim := w.Person("Veli", "Hedef")
		other := w.Person("Zehra", "Baska")
		return other.Account.Address, other.Password, victim.Account
	}, false, false, false},
	{"operator-of-another-company", func(t *testing.T, w *providertest.World) (string, string, *store.Account) {
		victim, _ := w.Company("Hedef Lojistik", 0)
		_, main := w.Company("Baska Lojistik", 0)
		return main.TCKN, main.Password, victim
	}, false, false, false},
	{"receive-only", func(t *testing.T, w *providertest.World) (string, string, *store.Account) {
		tckn := w.TCKN()
		pass := "password of Ruya"
		a, err := w.Node.Accounts.Create(context.Background(), account.SystemActor, account.CreateRequest{
			Kind: account.Person, Capability: account.ReceiveOnly, Owner: identity.ID{Scheme: identity.TCKN, Value: tckn},
			GivenName: "Rüya", Surname: "Alici", Password: pass, VerifiedBy: "test", Activate: true})
		if err != nil {
			t.Fatal(err)
		}
		return a.Address, pass, a
	}, true, false, true},
}

// accessRoute is one route of the web mail on the target; base is
// /posta/ADDR; seq is the leaf of the target's evidence 40.
type accessRoute struct {
	name  string
	need  string // "read", "send" or "" (always refused to others)
	do    func(b *browser, addr, base string, seq int64) resp
	okish int // the status when allowed
}

var accessRoutes = []accessRoute{
	{"folder list", "read", func(b *browser, _, base string, _ int64) resp { return b.get(base + "/inbox") }, 200},
	{"search", "read", func(b *browser, _, base string, _ int64) resp { return b.get(base + "/inbox?q=Gizli") }, 200},
	{"every folder", "read", func(b *browser, _, base string, _ int64) resp {
		for _, f := range []string{"sent", "delil", "drafts", "archive", "trash"} {
			if r := b.get(base + "/" + f); r.status != 200 {
				return r
			}
		}
		return b.get(base + "/inbox")
	}, 200},
	{"message", "read", func(b *browser, _, base string, _ int64) resp { return b.get(base + "/inbox/1") }, 200},
	{"attachment", "read", func(b *browser, _, base string, _ int64) resp { return b.get(base + "/inbox/1/ek/0") }, 200},
	{"bundle", "read", func(b *browser, _, base string, seq int64) resp {
		return b.get(base + "/inbox/1/delil/" + strconv.FormatInt(seq, 10))
	}, 200},
	{"compose", "send", func(b *browser, _, base string, _ int64) resp {
		return b.get("/yaz/" + base[len("/posta/"):])
	}, 200},
	{"send", "send", func(b *browser, addr, base string, _ int64) resp {
		r, _ := b.sendJSON(addr, []byte("From: "+addr+"\r\nTo: "+addr+"\r\nSubject: x\r\n\r\nnot signed\r\n"))
		return r
	}, http.StatusUnprocessableEntity}, // allowed through to the access point, which refuses the unsigned message
	// Last: it moves the message away.
	{"move to Archive", "archive", func(b *browser, _, base string, _ int64) resp {
		return b.post(base+"/inbox/1/tasi", url.Values{"hedef": {"archive"}})
	}, http.StatusSeeOther},
}

func TestAccessTable(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ctx := context.Background()
		sender := w.Person("Gonderen", "Kisi")
		for _, id := range accessIdentities {
			t.Run(id.name, func(t *testing.T) {
				user, pass, target := id.setup(t, w)
				e.send(sender, client.Message{To: []string{target.Address}, Subject: "Erişim", Body: "Gizli içerik",
					Attachments: []client.Attachment{{Name: "ek.txt", Data: []byte("ek")}}})
				es, err := w.Node.Mailbox.ListEvidence(ctx, staff, mailbox.EvidenceQuery{Recipient: target.Address})
				if err != nil || len(es) == 0 {
					t.Fatalf("evidence of the target: %v %v", es, err)
				}
				var seq int64 = -1
				for _, ev := range es {
					if ev.Code == evidence.Delivered {
						seq = ev.Seq
					}
				}
				if _, err := w.Node.Checkpointer.Catchup(ctx, w.Node.Log.Size()); err != nil {
					t.Fatal(err)
				}
				b := e.browser()
				b.login(user, pass)
				base := "/posta/" + url.PathEscape(target.Address)
				for _, rt := range accessRoutes {
					allowed := (rt.need == "read" && id.read) || (rt.need == "send" && id.send) || (rt.need == "archive" && id.archive)
					r := rt.do(b, target.Address, base, seq)
					switch {
					case allowed && r.status != rt.okish:
						t.Errorf("%s: got %d, want %d: %s", rt.name, r.status, rt.okish, text(r.body))
					case !allowed && r.status < 400:
						t.Errorf("%s: got %d, want a refusal: %s", rt.name, r.status, text(r.body))
					}
					// A receive-only account's holder reaches the access point,
					// which refuses with its reason and rejection evidence.
					refusedBy := map[int]bool{http.StatusForbidden: true, http.StatusNotFound: true, http.StatusUnprocessableEntity: id.name == "receive-only"}
					if !allowed && rt.name == "send" && !refusedBy[r.status] {
						t.Errorf("send: got %d, want 403 or 404", r.status)
					}
				}
				// A refused identity opened nothing: no evidence 60.
				es, _ = w.Node.Mailbox.ListEvidence(ctx, staff, mailbox.EvidenceQuery{Recipient: target.Address})
				read := 0
				for _, ev := range es {
					if ev.Code == evidence.Read {
						read++
					}
				}
				if want := map[bool]int{true: 1, false: 0}[id.read]; read != want {
					t.Errorf("%d evidence 60, want %d", read, want)
				}
			})
		}
	})
}
