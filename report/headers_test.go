package report_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pquerna/otp/totp"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/report"
	"github.com/kephs/kep/store"
)

// TestHandlerHeadersAndSecondFactor: every answer of the report handler,
// refusals included, carries the CSP (but the PDF, for the browsers'
// viewers) and may not be framed; with the second factor on, Basic auth
// takes an app password and never the main password alone (which would
// bypass the second factor, as it would over IMAP).
func TestHandlerHeadersAndSecondFactor(t *testing.T) {
	w := newWorld(t, providertest.New(t, store.SQLite))
	srv := httptest.NewServer(report.Handler(w.Node.Mailbox, report.BasicAuth(w.Node.Accounts)))
	defer srv.Close()
	ctx := context.Background()
	actor := account.Actor{Name: "test"}
	sp := store.Principal{AccountID: w.ismail.Account.ID}
	app, err := w.Node.Accounts.AddAppPassword(ctx, actor, sp, "script")
	if err != nil {
		t.Fatal(err)
	}
	en, err := w.Node.Accounts.BeginTOTP(ctx, actor, sp, w.ismail.Account.Address)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(en.Secret, w.Clock.Now())
	if err := w.Node.Accounts.ConfirmTOTP(ctx, actor, sp, code); err != nil {
		t.Fatal(err)
	}
	esc := url.PathEscape(w.headerID)
	for _, tc := range []struct {
		name, method, path string
		who                *providertest.Person
		password           string
		status             int
	}{
		{"html", "GET", "/report/" + esc + ".html", w.ayse, "", 200},
		{"pdf", "GET", "/report/" + esc + ".pdf", w.ayse, "", 200},
		{"png", "GET", "/report/" + esc + ".png", w.ayse, "", 200},
		{"stylesheet", "GET", "/static/report.css", nil, "", 200},
		{"no credentials", "GET", "/report/" + esc + ".html", nil, "", 401},
		{"another's", "GET", "/report/" + esc + ".html", w.outsider, "", 404},
		{"bad path", "GET", "/report/x.doc", w.ayse, "", 404},
		{"post", "POST", "/report/" + esc + ".html", w.ayse, "", 405},
		{"second factor on, main password", "GET", "/report/" + esc + ".html", w.ismail, "", 401},
		{"second factor on, app password", "GET", "/report/" + esc + ".html", w.ismail, app, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if tc.who != nil {
				pass := tc.who.Password
				if tc.password != "" {
					pass = tc.password
				}
				req.SetBasicAuth(tc.who.Account.Address, pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %.200q, want %d", resp.StatusCode, body, tc.status)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			if tc.name != "pdf" && (!strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'")) {
				t.Errorf("CSP %q", csp)
			}
			if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers %v", resp.Header)
			}
		})
	}
}
