package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/provider/providertest"
)

// TestNotYoursIsNotThere: every route of the web mail answers another
// account's message exactly as a message of an account that does not
// exist — the same status and the same page, byte for byte once the
// address from the URL is set aside — so that nobody learns which
// addresses, messages or evidence exist beyond their own.
func TestNotYoursIsNotThere(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ayse, mehmet, zehra := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk"), w.Person("Zehra", "Başka")
		e.send(ayse, client.Message{To: []string{mehmet.Account.Address}, Subject: "Gizli", Body: "gizli içerik",
			Attachments: []client.Attachment{{Name: "ek.txt", Data: []byte("ek")}}})
		b := e.browser()
		b.login(zehra.Account.Address, zehra.Password)
		const none = "kimse@hs01.kep.tr"
		for _, addr := range []string{mehmet.Account.Address, ayse.Account.Address} {
			esc := url.PathEscape(addr)
			for _, tc := range []struct{ method, path string }{
				{"GET", "/posta/%s/inbox"},
				{"GET", "/posta/%s/sent"},
				{"GET", "/posta/%s/inbox/1"},
				{"GET", "/posta/%s/sent/1"},
				{"GET", "/posta/%s/inbox/1/ek/0"},
				{"GET", "/posta/%s/inbox/1/delil/1"},
				{"GET", "/posta/%s/sent/1/delil/1"},
				{"GET", "/yaz/%s"},
				{"POST", "/posta/%s/inbox/1/tasi"},
				{"POST", "/posta/%s/inbox/1/sil"},
			} {
				get := func(a string) resp {
					p := strings.Replace(tc.path, "%s", a, 1)
					if tc.method == "POST" {
						return b.post(p, url.Values{"hedef": {"archive"}})
					}
					return b.get(p)
				}
				yours, nothing := get(esc), get(url.PathEscape(none))
				yb := strings.ReplaceAll(yours.body, addr, "X")
				nb := strings.ReplaceAll(nothing.body, none, "X")
				if yours.status != http.StatusNotFound || yours.status != nothing.status || yb != nb {
					t.Errorf("%s %s: %d (%d bytes), not there: %d (%d bytes)", tc.method, strings.Replace(tc.path, "%s", addr, 1), yours.status, len(yb), nothing.status, len(nb))
				}
				for _, secret := range []string{"Gizli", "gizli içerik", "ek.txt"} {
					if strings.Contains(yours.body, secret) {
						t.Errorf("%s leaks %q", tc.path, secret)
					}
				}
			}
		}
	})
}
