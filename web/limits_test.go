package web_test

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// TestFormBodyBounded: every form POST, logged in or not, with or without
// a valid CSRF token, is read within a small bound before anything else
// looks at it: a large url-encoded or multipart body (which net/http would
// otherwise hold in memory up to 32 MB and spill to disk beyond) is
// refused with 413 and the limit, and a small one still works.
func TestFormBodyBounded(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		p := w.Person("Ayşe", "Yılmaz")
		b := e.browser()
		big := strings.Repeat("x", 1<<20)
		multipartBody := func(csrf string) (string, *bytes.Buffer) {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			mw.WriteField("csrf", csrf)
			fw, _ := mw.CreateFormFile("dosya", "big.bin")
			fw.Write([]byte(big))
			mw.Close()
			return mw.FormDataContentType(), &buf
		}
		tests := []struct {
			name, path string
			login      bool
			multipart  bool
			chunked    bool // no Content-Length: the bound is on what is read
		}{
			{"login, url-encoded", "/giris", false, false, false},
			{"login, multipart", "/giris", false, true, false},
			{"login, multipart, chunked", "/giris", false, true, true},
			{"logout, url-encoded", "/cikis", true, false, false},
			{"app password, multipart, chunked", "/guvenlik/uygulama", true, true, true},
			{"move, url-encoded, chunked", "/posta/" + url.PathEscape(p.Account.Address) + "/inbox/1/tasi", true, false, true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				b := e.browser()
				if tc.login {
					b.login(p.Account.Address, p.Password)
				}
				var ct string
				var body *bytes.Buffer
				if tc.multipart {
					ct, body = multipartBody(b.csrf)
				} else {
					ct, body = "application/x-www-form-urlencoded", bytes.NewBufferString(url.Values{"csrf": {b.csrf}, "ad": {big}}.Encode())
				}
				var rd interface{ Read([]byte) (int, error) } = body
				if tc.chunked {
					rd = struct{ *bytes.Buffer }{body} // hides the length from NewRequest
				}
				req, _ := http.NewRequest("POST", e.srv.URL+tc.path, rd)
				req.Header.Set("Content-Type", ct)
				r := b.do(req)
				if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(text(r.body), "64 KB") {
					t.Errorf("%d %.200s, want 413 naming the limit", r.status, text(r.body))
				}
				if r.header.Get("Content-Security-Policy") == "" {
					t.Error("the refusal has no CSP")
				}
			})
		}
		// A small multipart login form still logs in.
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range map[string]string{"csrf": b.csrf, "kullanici": p.Account.Address, "parola": p.Password} {
			mw.WriteField(k, v)
		}
		mw.Close()
		req, _ := http.NewRequest("POST", e.srv.URL+"/giris", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		if r := b.do(req); r.status != http.StatusSeeOther {
			t.Errorf("small multipart login: %d %.200s", r.status, text(r.body))
		}
	})
}

// TestSecondFactorCodesThrottled: wrong codes typed on the security page
// (turning the second factor off, or on) count as failed logins: a stolen
// session cannot guess the six digits freely (from where the user logged
// in, the limiter cuts off after account.NewLimiter's 30). The factor
// stays on.
func TestSecondFactorCodesThrottled(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		p := w.Person("Ayşe", "Yılmaz")
		ctx := context.Background()
		sp := store.Principal{AccountID: p.Account.ID}
		en, err := w.Node.Accounts.BeginTOTP(ctx, account.Actor{Name: "test"}, sp, p.Account.Address)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := totp.GenerateCode(en.Secret, w.Clock.Now())
		if err := w.Node.Accounts.ConfirmTOTP(ctx, account.Actor{Name: "test"}, sp, code); err != nil {
			t.Fatal(err)
		}
		w.Clock.Advance(31 * time.Second)
		code, _ = totp.GenerateCode(en.Secret, w.Clock.Now())
		b := e.browser()
		if r := b.post("/giris", url.Values{"kullanici": {p.Account.Address}, "parola": {p.Password}, "kod": {code}}); r.status != http.StatusSeeOther {
			t.Fatalf("login: %d %s", r.status, text(r.body))
		}
		throttled := 0
		for i := 0; i < 40 && throttled == 0; i++ {
			r := b.post("/guvenlik/totp/kapat", url.Values{"kod": {fmt.Sprintf("%06d", i)}})
			switch r.status {
			case http.StatusUnprocessableEntity:
			case http.StatusTooManyRequests:
				if r.header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				throttled = i
			default:
				t.Fatalf("wrong code %d: %d %s", i, r.status, text(r.body))
			}
		}
		if throttled == 0 {
			t.Fatal("40 wrong codes in a row, none throttled")
		}
		if on, _ := w.Node.Accounts.TOTPEnabled(ctx, sp); !on {
			t.Fatal("the second factor went off")
		}
	})
}
