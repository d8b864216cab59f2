package account_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

// TestTOTP walks a holder through the second factor: enrolment, logins on
// the web and from mail clients with it on, code reuse, recovery.
func TestTOTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		a, tckn := w.person(t, "Ayşe", "Yılmaz")
		sp := store.Principal{AccountID: a.ID}
		const pw = "correct horse battery"
		appPw, err := w.svc.AddAppPassword(ctx, actor, sp, "Thunderbird")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.svc.ConfirmTOTP(ctx, actor, sp, "123456"); !errors.Is(err, account.ErrNoEnrolment) {
			t.Fatalf("confirm before enrolment: %v", err)
		}
		en, err := w.svc.BeginTOTP(ctx, actor, sp, a.Address)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(en.URL, "otpauth://totp/") || strings.Contains(en.URL, tckn) {
			t.Fatalf("key URI %q", en.URL)
		}
		code := func(at time.Time) string {
			c, err := totp.GenerateCode(en.Secret, at)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		// Not on until confirmed: the main password still works everywhere.
		if _, err := w.svc.Authenticate(ctx, a.Address, pw, "192.0.2.1:1"); err != nil {
			t.Fatalf("IMAP login before confirmation: %v", err)
		}
		if err := w.svc.ConfirmTOTP(ctx, actor, sp, "000000"); !errors.Is(err, account.ErrBadSecondFactor) {
			t.Fatalf("wrong confirmation code: %v", err)
		}
		if err := w.svc.ConfirmTOTP(ctx, actor, sp, code(w.clock)); err != nil {
			t.Fatalf("confirm: %v", err)
		}
		if _, err := w.svc.BeginTOTP(ctx, actor, sp, a.Address); !errors.Is(err, account.ErrTOTPOn) {
			t.Fatalf("second enrolment: %v", err)
		}
		w.clock = w.clock.Add(time.Minute)
		tests := []struct {
			name     string
			web      bool
			password string
			code     string
			want     error
		}{
			{"mail client, main password", false, pw, "", account.ErrBadCredentials},
			{"mail client, app password", false, appPw, "", nil},
			{"web, no code", true, pw, "", account.ErrSecondFactorNeeded},
			{"web, wrong code", true, pw, "999999", account.ErrBadSecondFactor},
			{"web, app password", true, appPw, code(w.clock), account.ErrWebNeedsPassword},
			{"web, wrong password", true, "nope", code(w.clock), account.ErrBadCredentials},
			{"web, password and code", true, pw, code(w.clock), nil},
			{"web, the same code again", true, pw, code(w.clock), account.ErrBadSecondFactor},
		}
		for _, tc := range tests {
			var err error
			if tc.web {
				_, err = w.svc.AuthenticateWeb(ctx, a.Address, tc.password, tc.code, "192.0.2.1:1")
			} else {
				_, err = w.svc.Authenticate(ctx, a.Address, tc.password, "192.0.2.1:1")
			}
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			}
			if tc.name == "mail client, main password" && !strings.Contains(err.Error(), "app password") {
				t.Errorf("%s: the refusal does not say what to do: %v", tc.name, err)
			}
			w.clock = w.clock.Add(2 * time.Second) // past the back-off of the failures above
		}

		// A session survives until recovery, which also removes the
		// second factor (a lost phone is a reason to recover).
		p, err := w.svc.Authenticate(ctx, a.Address, appPw, "192.0.2.1:1")
		if err != nil {
			t.Fatal(err)
		}
		p.Method = account.AuthPassword
		tok, _, err := w.svc.NewSession(ctx, p, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := w.svc.Session(ctx, tok); err != nil || got.Account.ID != a.ID {
			t.Fatalf("session: %v %v", got, err)
		}
		if _, err := w.svc.Recover(ctx, actor, a.Address, identity.ID{Scheme: identity.TCKN, Value: tckn}, "call-centre", "", "brand new password"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.Session(ctx, tok); !errors.Is(err, account.ErrNoSession) {
			t.Fatalf("session after recovery: %v", err)
		}
		if on, err := w.svc.TOTPEnabled(ctx, sp); err != nil || on {
			t.Fatalf("second factor after recovery: %v %v", on, err)
		}
		if _, err := w.svc.Authenticate(ctx, a.Address, "brand new password", "192.0.2.1:1"); err != nil {
			t.Fatalf("IMAP login after recovery: %v", err)
		}
	})
}

// TestSessions checks that a session ends when logged out, when it
// expires, and with "log out everywhere"; and app passwords' listing and
// revocation.
func TestSessions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		a, _ := w.person(t, "Mehmet", "Öztürk")
		p := &account.Principal{Account: a}
		tests := []struct {
			name string
			end  func(tok string)
		}{
			{"logout", func(tok string) { w.svc.EndSession(ctx, tok) }},
			{"expiry", func(string) { w.clock = w.clock.Add(2 * time.Hour) }},
			{"everywhere", func(string) { w.svc.EndSessions(ctx, actor, store.Principal{AccountID: a.ID}) }},
		}
		for _, tc := range tests {
			tok, _, err := w.svc.NewSession(ctx, p, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.svc.Session(ctx, tok); err != nil {
				t.Fatalf("%s: fresh session: %v", tc.name, err)
			}
			tc.end(tok)
			if _, err := w.svc.Session(ctx, tok); !errors.Is(err, account.ErrNoSession) {
				t.Errorf("%s: got %v", tc.name, err)
			}
		}
		if _, err := w.svc.Session(ctx, "forged"); !errors.Is(err, account.ErrNoSession) {
			t.Errorf("forged token: %v", err)
		}

		// App passwords: listed by name, revoked only by their principal.
		other, _ := w.person(t, "Zehra", "Başka")
		if _, err := w.svc.AddAppPassword(ctx, actor, store.Principal{AccountID: a.ID}, "telefon"); err != nil {
			t.Fatal(err)
		}
		aps, err := w.svc.AppPasswords(ctx, store.Principal{AccountID: a.ID})
		if err != nil || len(aps) != 1 || aps[0].Name != "telefon" {
			t.Fatalf("app passwords: %v %v", aps, err)
		}
		if err := w.svc.RevokeAppPassword(ctx, actor, store.Principal{AccountID: other.ID}, aps[0].ID); !errors.Is(err, account.ErrNoAppPassword) {
			t.Errorf("another principal revoked it: %v", err)
		}
		if err := w.svc.RevokeAppPassword(ctx, actor, store.Principal{AccountID: a.ID}, aps[0].ID); err != nil {
			t.Errorf("revoke: %v", err)
		}
		if aps, _ := w.svc.AppPasswords(ctx, store.Principal{AccountID: a.ID}); len(aps) != 0 {
			t.Errorf("after revocation: %v", aps)
		}
	})
}
