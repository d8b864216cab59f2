package relay_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// A company account's message crosses to hs02 whoever signed it the way
// hs01's access point accepts (docs/relay.md, "The reception point
// checks"): the company's e-seal, or an operator's own e-signature (a
// TCKN certificate, while evidence 10 names the company's VKN as sender
// and the operator in kep:Operator). A signature by anyone else than the
// operator evidence 10 names is refused.
func TestCompanyOperatorSigns(t *testing.T) {
	f := newFed(t, store.SQLite)
	ctx := context.Background()
	co, op := f.w1.Company("Deniz Lojistik A.Ş.", account.GrantSend)
	operator, err := store.GetOperatorByTCKN(ctx, f.w1.Q(), op.TCKN)
	if err != nil {
		t.Fatal(err)
	}
	vkn, err := identity.ParseID(co.OwnerID)
	if err != nil {
		t.Fatal(err)
	}
	sealSubject, err := pki.ESealSubject(vkn.Value, "Deniz Lojistik A.Ş.", "")
	if err != nil {
		t.Fatal(err)
	}
	seal, err := f.w1.CA.IssueESeal(sealSubject, co.Address, pki.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs01 := tlsCert(f.w1.Node)
	for _, c := range []struct {
		name     string
		signer   *pki.Issued
		operator bool   // evidence 10 names the operator
		refused  string // "": accepted with 20
	}{
		{"operator's own e-signature", op.Signer, true, ""},
		{"company e-seal, sent by the operator", seal, true, ""},
		{"company e-seal, no operator named", seal, false, ""},
		{"another person's e-signature, the operator named", f.sender.Signer, true, "is bound to TCKN"},
		{"operator's e-signature, no operator named", op.Signer, false, "not an e-seal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@client>\r\nX-TR-REM-iletiTip: standart\r\nMIME-Version: 1.0\r\n",
				co.Address, f.rcpt.Address, c.name, time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
			raw, err := cms.BuildSigned([]byte(hdr), []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nNavlun faturası.\r\n"), c.signer.Key, c.signer.Cert, nil)
			if err != nil {
				t.Fatal(err)
			}
			var by *store.Operator
			if c.operator {
				by = operator
			}
			msg, job := f.acceptAs(co, by, raw, f.rcpt.Address)
			if c.refused != "" {
				err := f.sendRaw(&hs01, co.Address, []string{f.rcpt.Address}, f.envelope(msg.ID))
				if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 554 || !strings.Contains(se.Message, c.refused) {
					t.Fatalf("got %v, want 554 …%s…", err, c.refused)
				}
				return
			}
			if err := f.out.Deliver(ctx, job, job.Recipients); err != nil {
				t.Fatal(err)
			}
			if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Awaiting) {
				t.Fatalf("hs01 transport state %q, want awaiting (hs02 answered 250)", got)
			}
			var id int64
			if err := f.n2.DB.Q().QueryRow(ctx, `SELECT id FROM messages WHERE origin_evidence = ?`, msg.EvidenceID).Scan(&id); err != nil {
				t.Fatalf("hs02 holds no message for %s: %v", msg.EvidenceID, err)
			}
			if got := codesOf(t, f.n2.DB.Q(), id); got != "20" {
				t.Fatalf("hs02 evidence %q, want 20", got)
			}
		})
	}
}
