package api_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/provider/providertest"
)

// TestAuthorisation tries every route that names an account's resource
// with another account's token, and with an operator's token that lacks
// the grant: all are refused, and no error body tells anything of the
// resource (its recipients, identifiers, digests, content).
func TestAuthorisation(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ctx := context.Background()
		ayse, zehra, coAddr := e.ayse.Account.Address, e.zehra.Account.Address, e.co.Account.Address
		// Ayşe writes to Zehra; the company writes to Ayşe.
		send := func(token string, raw []byte) map[string]any {
			status, body, _ := e.do(token, "POST", "/api/v1/messages", raw)
			if status != 201 {
				t.Fatalf("send: %d %s", status, body)
			}
			return decode(t, body)
		}
		m1 := send(e.tokens["ayse"], signed(t, e.ayse, ayse, "", zehra))
		m2 := send(e.tokens["main"], signed(t, e.co, coAddr, "", zehra))
		if _, err := w.Node.Mailbox.DeliverQueued(ctx, 100); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		// Evidence names the right person: the operator the token acts as,
		// authenticated by token and signature.
		for _, c := range []struct {
			m        map[string]any
			operator string
		}{{m1, ""}, {m2, "TCKN:" + e.co.TCKN}} {
			st, err := w.Node.Mailbox.GetEvidence(ctx, &account.Principal{Staff: "test"}, c.m["evidence_id"].(string))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := evidence.Parse(st.Document)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if ev.Operator != nil {
				got = ev.Operator.Identity
			}
			if got != c.operator || ev.SenderAuthentication.Method != evidence.AuthAPIToken {
				t.Fatalf("acceptance evidence names operator %q by %q, want %q by %q", got, ev.SenderAuthentication.Method, c.operator, evidence.AuthAPIToken)
			}
		}
		// The company's mailbox gets a message too, for its folder routes.
		send(e.tokens["ayse"], signed(t, e.ayse, ayse, "", coAddr))
		if _, err := w.Node.Mailbox.DeliverQueued(ctx, 100); err != nil {
			t.Fatal(err)
		}

		type target struct {
			addr string
			msg  map[string]any
		}
		attempts := []struct {
			who     string
			token   string
			on      target
			tokenID int64 // a token of the target account's that is not the caller's own (revoking one's own token is allowed)
		}{
			{"another account's token", e.tokens["mehmet"], target{ayse, m1}, e.tokenIDs["ayse"]},
			{"an operator without the grant", e.tokens["sub"], target{coAddr, m2}, e.tokenIDs["main"]},
		}
		secrets := func(tg target) []string {
			out := []string{zehra, "Gizli", "ekstre"}
			for _, k := range []string{"ileti_id", "evidence_id", "sha256", "header_id"} {
				if v, _ := tg.msg[k].(string); v != "" {
					out = append(out, strings.Trim(v, "<>"))
				}
			}
			return out
		}
		for _, a := range attempts {
			id := strconv.Itoa(int(a.on.msg["message_id"].(float64)))
			acct := "/api/v1/accounts/" + a.on.addr
			routes := []struct{ method, path, body string }{
				{"GET", "/api/v1/messages/" + id + "/status", ""},
				{"GET", "/api/v1/messages/" + id + "/evidence", ""},
				{"GET", "/api/v1/messages/" + id + "/original", ""},
				{"GET", "/api/v1/messages/" + a.on.msg["ileti_id"].(string) + "/status", ""},
				{"GET", "/api/v1/evidence/" + a.on.msg["evidence_id"].(string) + "/bundle", ""},
				{"GET", acct, ""},
				{"GET", acct + "/usage", ""},
				{"GET", acct + "/folders", ""},
				{"GET", acct + "/folders/INBOX/messages", ""},
				{"GET", acct + "/folders/INBOX/messages/1", ""},
				{"GET", acct + "/folders/INBOX/messages/1/content", ""},
				{"GET", acct + "/folders/Sent/messages/1/content", ""},
				{"GET", acct + "/operators", ""},
				{"PUT", acct + "/operators/1/grants", `{"grants":"read,send,delete,archive,sms-notice,email-notice"}`},
				{"GET", acct + "/tokens", ""},
				{"POST", acct + "/tokens", `{"name":"mine now"}`},
				{"DELETE", acct + "/tokens/" + strconv.FormatInt(a.tokenID, 10), ""},
				{"GET", acct + "/webhooks", ""},
				{"POST", acct + "/webhooks", `{"url":"https://evil.example/"}`},
				{"DELETE", acct + "/webhooks/1", ""},
			}
			for _, r := range routes {
				status, body, _ := e.do(a.token, r.method, r.path, []byte(r.body))
				if status != 403 && status != 404 {
					t.Errorf("%s: %s %s answered %d: %s", a.who, r.method, r.path, status, body)
					continue
				}
				var p map[string]any
				if err := json.Unmarshal(body, &p); err != nil || p["code"] == "" {
					t.Errorf("%s: %s %s: not a problem: %s", a.who, r.method, r.path, body)
				}
				for _, s := range secrets(a.on) {
					// What the caller wrote in the URL may be echoed.
					if strings.Contains(string(body), s) && !strings.Contains(r.path, s) {
						t.Errorf("%s: %s %s leaks %q: %s", a.who, r.method, r.path, s, body)
					}
				}
			}
			// Sending for the account is refused by the access point, with
			// its reason.
			status, body, _ := e.do(a.token, "POST", "/api/v1/messages", signed(t, e.sub, a.on.addr, "", zehra))
			if status != 422 {
				t.Errorf("%s: sending for %s: %d %s", a.who, a.on.addr, status, body)
			}
		}
		// Nothing changed: no token or webhook was made, no grant given.
		var n int
		w.Node.DB.Q().QueryRow(ctx, `SELECT COUNT(*) FROM webhooks`).Scan(&n)
		if n != 0 {
			t.Fatal("a refused call made a webhook")
		}
		w.Node.DB.Q().QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens`).Scan(&n)
		if n != len(e.tokens) {
			t.Fatal("a refused call made a token")
		}
	})
}
