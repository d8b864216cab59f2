package api_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/provider/providertest"
)

// TestNotYoursIsNotThere: a resource of another account answers exactly
// as one that does not exist (the same status, problem code and words,
// once the caller's own identifier is set aside), so that a token cannot
// learn what exists beyond its principal.
func TestNotYoursIsNotThere(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ctx := context.Background()
		ayse, zehra := e.ayse.Account.Address, e.zehra.Account.Address
		status, body, _ := e.do(e.tokens["ayse"], "POST", "/api/v1/messages", signed(t, e.ayse, ayse, "", zehra))
		if status != 201 {
			t.Fatalf("send: %d %s", status, body)
		}
		m := decode(t, body)
		if _, err := w.Node.Mailbox.DeliverQueued(ctx, 100); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Node.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		id := strconv.Itoa(int(m["message_id"].(float64)))
		evid := m["evidence_id"].(string)
		ileti := m["ileti_id"].(string)
		pairs := []struct{ mine, none string }{
			{"/api/v1/messages/" + id + "/status", "/api/v1/messages/987654/status"},
			{"/api/v1/messages/" + id + "/evidence", "/api/v1/messages/987654/evidence"},
			{"/api/v1/messages/" + id + "/original", "/api/v1/messages/987654/original"},
			{"/api/v1/messages/" + ileti + "/status", "/api/v1/messages/" + strings.Repeat("0", len(ileti)) + "/status"},
			{"/api/v1/evidence/" + evid + "/bundle", "/api/v1/evidence/" + strings.Repeat("0", len(evid)) + "/bundle"},
			{"/api/v1/accounts/" + ayse, "/api/v1/accounts/kimse@hs01.kep.tr"},
			{"/api/v1/accounts/" + ayse + "/usage", "/api/v1/accounts/kimse@hs01.kep.tr/usage"},
			{"/api/v1/accounts/" + ayse + "/folders", "/api/v1/accounts/kimse@hs01.kep.tr/folders"},
			{"/api/v1/accounts/" + ayse + "/folders/Sent/messages/1/content", "/api/v1/accounts/kimse@hs01.kep.tr/folders/Sent/messages/1/content"},
			{"/api/v1/accounts/" + ayse + "/operators", "/api/v1/accounts/kimse@hs01.kep.tr/operators"},
			{"/api/v1/accounts/" + ayse + "/tokens", "/api/v1/accounts/kimse@hs01.kep.tr/tokens"},
			{"/api/v1/accounts/" + ayse + "/webhooks", "/api/v1/accounts/kimse@hs01.kep.tr/webhooks"},
		}
		writes := []struct{ method, mine, none, body string }{
			{"POST", "/api/v1/accounts/" + ayse + "/tokens", "/api/v1/accounts/kimse@hs01.kep.tr/tokens", `{"name":"benim"}`},
			{"DELETE", "/api/v1/accounts/" + ayse + "/tokens/1", "/api/v1/accounts/kimse@hs01.kep.tr/tokens/1", ""},
			{"PUT", "/api/v1/accounts/" + ayse + "/operators/1/grants", "/api/v1/accounts/kimse@hs01.kep.tr/operators/1/grants", `{"grants":"read"}`},
			{"POST", "/api/v1/accounts/" + ayse + "/webhooks", "/api/v1/accounts/kimse@hs01.kep.tr/webhooks", `{"url":"https://evil.example/"}`},
			{"DELETE", "/api/v1/accounts/" + ayse + "/webhooks/1", "/api/v1/accounts/kimse@hs01.kep.tr/webhooks/1", ""},
		}
		shape := func(path string, method ...string) (int, string, string) {
			m, body := "GET", ""
			if len(method) == 2 {
				m, body = method[0], method[1]
			}
			status, b, _ := e.do(e.tokens["mehmet"], m, path, []byte(body))
			body = string(b)
			var p map[string]any
			json.Unmarshal([]byte(body), &p)
			detail, _ := p["detail"].(string)
			for _, seg := range strings.Split(path, "/") {
				if seg != "" {
					detail = strings.ReplaceAll(detail, seg, "X")
				}
			}
			code, _ := p["code"].(string)
			return status, code, detail
		}
		for _, pr := range pairs {
			s1, c1, d1 := shape(pr.mine)
			s2, c2, d2 := shape(pr.none)
			if s1 != s2 || c1 != c2 || d1 != d2 {
				t.Errorf("%s answers %d %s %q; not there: %d %s %q", pr.mine, s1, c1, d1, s2, c2, d2)
			}
		}
		for _, wr := range writes {
			s1, c1, d1 := shape(wr.mine, wr.method, wr.body)
			s2, c2, d2 := shape(wr.none, wr.method, wr.body)
			if s1 != s2 || c1 != c2 || d1 != d2 {
				t.Errorf("%s %s answers %d %s %q; not there: %d %s %q", wr.method, wr.mine, s1, c1, d1, s2, c2, d2)
			}
		}
	})
}

// TestRevokedTokenRefused: a revoked token is refused on the next call,
// on every route that takes a token, with the same answer as a token
// that never existed.
func TestRevokedTokenRefused(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ctx := context.Background()
		tok := e.tokens["ayse"]
		if status, body, _ := e.do(tok, "GET", "/api/v1/me", nil); status != 200 {
			t.Fatalf("before: %d %s", status, body)
		}
		_, rec, err := w.Node.Accounts.AuthenticateToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Node.Accounts.RevokeToken(ctx, account.Actor{Name: "test"}, &account.Principal{Staff: "test"}, e.ayse.Account.Address, rec.ID); err != nil {
			t.Fatal(err)
		}
		addr := e.ayse.Account.Address
		for _, r := range []struct{ method, path string }{
			{"GET", "/api/v1/me"},
			{"POST", "/api/v1/messages"},
			{"POST", "/api/v1/messages/bulk"},
			{"GET", "/api/v1/messages/1/status"},
			{"GET", "/api/v1/accounts"},
			{"GET", "/api/v1/accounts/" + addr + "/folders/INBOX/messages"},
			{"POST", "/api/v1/accounts/" + addr + "/tokens"},
			{"POST", "/api/v1/verify"},
		} {
			s1, b1, _ := e.do(tok, r.method, r.path, []byte("{}"))
			s2, b2, _ := e.do("kep_"+strings.Repeat("A", 43), r.method, r.path, []byte("{}"))
			var p1, p2 map[string]any
			json.Unmarshal(b1, &p1)
			json.Unmarshal(b2, &p2)
			if s1 != 401 || s1 != s2 || p1["code"] != p2["code"] || p1["detail"] != p2["detail"] {
				t.Errorf("%s %s with a revoked token: %d %s; unknown token: %d %s", r.method, r.path, s1, b1, s2, b2)
			}
		}
	})
}
