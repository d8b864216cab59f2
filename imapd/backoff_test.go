package imapd

import (
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kephs/kep/provider/providertest"
)

// One user's typos do not lock out another user at the same address
// (behind one NAT), and the refusal says how long to wait (issue 10.3,
// account.Limiter).
func TestLoginBackoffIsPerUser(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		ayse := w.Person("Ayşe", "Nat")
		mehmet := w.Person("Mehmet", "Nat")
		login := func(user, pass string) error {
			c, err := imapclient.DialTLS(e.tlsAddr, &imapclient.Options{TLSConfig: e.clientTLS,
				Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}})
			if err != nil {
				if strings.Contains(err.Error(), "assign requested address") {
					t.Skip("no loopback address 127.0.0.4 on this system")
				}
				t.Fatal(err)
			}
			defer c.Close()
			return c.Login(user, pass).Wait()
		}
		for i := 0; i < 6; i++ {
			login(ayse.Account.Address, "typo")
		}
		err := login(ayse.Account.Address, ayse.Password)
		if imapCode(err) != imap.ResponseCodeUnavailable || !strings.Contains(err.Error(), "try again in") {
			t.Fatalf("the typing user: want NO [UNAVAILABLE] saying how long to wait, got %v", err)
		}
		if err := login(mehmet.Account.Address, mehmet.Password); err != nil {
			t.Fatalf("another user at the same address was locked out: %v", err)
		}
	})
}
