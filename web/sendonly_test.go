package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/client"
	"github.com/kephs/kep/provider/providertest"
)

// TestSendOnlyOperator: an operator holding only the send grant (KEP: an
// işlem yetkilisi with send authority) lands on the compose page, sees the
// company in the switcher for compose only, sends for it, and reads none
// of its folders.
func TestSendOnlyOperator(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		co, _ := w.Company("Yazar Lojistik", 0)
		op := w.Operator(co, "Sena", "Yazar", account.SubOperator, account.GrantSend)
		rcpt := w.Person("Alici", "Kisi")
		b := e.browser()
		b.login(op.TCKN, op.Password)
		compose := "/yaz/" + url.PathEscape(co.Address)
		for _, tc := range []struct {
			name, path string
			status     int
			want       string
		}{
			{"home", "/", http.StatusSeeOther, ""},
			{"compose", compose, http.StatusOK, co.Address},
			{"inbox", "/posta/" + url.PathEscape(co.Address) + "/inbox", http.StatusNotFound, ""},
			{"sent", "/posta/" + url.PathEscape(co.Address) + "/sent", http.StatusNotFound, ""},
		} {
			r := b.get(tc.path)
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Errorf("%s: %d, want %d with %q: %s", tc.name, r.status, tc.status, tc.want, text(r.body))
			}
			if tc.name == "home" && r.header.Get("Location") != compose {
				t.Errorf("home sends to %q, want %q", r.header.Get("Location"), compose)
			}
			if tc.name == "compose" && strings.Contains(r.body, "/posta/") {
				t.Errorf("the compose page links a folder the operator may not read: %s", text(r.body))
			}
		}
		op.Account = co
		r, out := b.sendJSON(co.Address, signed(t, op, client.Message{To: []string{rcpt.Account.Address}, Subject: "Fatura", Body: "Ekte."}))
		if r.status != http.StatusOK || out["accepted"] != true {
			t.Fatalf("send for the company: %d %s", r.status, r.body)
		}
	})
}
