package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// Port 143 offers no login before STARTTLS (LOGINDISABLED, RFC 9051
// §6.2.3); port 993 and 143 after STARTTLS take LOGIN and AUTHENTICATE PLAIN
// with the main password and app passwords.
func TestLoginNeedsTLS(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		ayse := w.Person("Ayşe", "Yılmaz")

		// Cleartext: no AUTH=, LOGINDISABLED, STARTTLS; LOGIN refused.
		c, err := imapclient.DialInsecure(e.plainAddr, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		caps, err := c.Capability().Wait()
		if err != nil {
			t.Fatal(err)
		}
		if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) || caps.Has(imap.Cap("AUTH=PLAIN")) {
			t.Fatalf("cleartext capabilities: %v", caps)
		}
		err = c.Login(ayse.Account.Address, ayse.Password).Wait()
		if imapCode(err) != imap.ResponseCodePrivacyRequired {
			t.Fatalf("LOGIN before TLS: %v", err)
		}
		c.Close()

		// STARTTLS, then LOGIN works.
		c, err = imapclient.DialStartTLS(e.plainAddr, &imapclient.Options{TLSConfig: e.clientTLS})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		caps, _ = c.Capability().Wait()
		if caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.Cap("AUTH=PLAIN")) || caps.Has(imap.CapStartTLS) {
			t.Fatalf("capabilities after STARTTLS: %v", caps)
		}
		if err := c.Login(ayse.Account.Address, ayse.Password).Wait(); err != nil {
			t.Fatal(err)
		}
		mustSelect(t, c, "INBOX", false)

		// Implicit TLS with AUTHENTICATE PLAIN.
		c2 := e.dial(nil)
		if err := c2.Authenticate(sasl.NewPlainClient("", ayse.Account.Address, ayse.Password)); err != nil {
			t.Fatalf("AUTHENTICATE PLAIN: %v", err)
		}
		// Proxy authentication (authzid of another user) is refused.
		c3 := e.dial(nil)
		if err := c3.Authenticate(sasl.NewPlainClient("someone.else@hs01.kep.tr", ayse.Account.Address, ayse.Password)); err == nil {
			t.Fatal("AUTHENTICATE PLAIN as another identity accepted")
		}

		// An app password works; a wrong password does not.
		app, err := w.Node.Accounts.AddAppPassword(context.Background(), account.SystemActor, store.Principal{AccountID: ayse.Account.ID}, "thunderbird")
		if err != nil {
			t.Fatal(err)
		}
		e.login(ayse.Account.Address, app)
		c4 := e.dial(nil)
		err = c4.Login(ayse.Account.Address, "wrong").Wait()
		if imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Fatalf("wrong password: %v", err)
		}
		// Upper-case address and surrounding spaces are the same user.
		e.login(strings.ToUpper(ayse.Account.Address), ayse.Password)
	})
}

// A login storm is throttled: after the free failures every attempt, even
// with the right password, gets NO [UNAVAILABLE], and an unknown user name
// gets exactly the same answers as a known one.
func TestLoginThrottled(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		ayse := w.Person("Ayşe", "Demir")
		// Each storm comes from its own loopback address: failures are
		// counted per user name and per remote address.
		answers := func(from, user, right string) []string {
			var out []string
			for i := 0; i < 9; i++ {
				pass := "guess"
				if i == 8 {
					pass = right
				}
				c, err := imapclient.DialTLS(e.tlsAddr, &imapclient.Options{TLSConfig: e.clientTLS,
					Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}})
				if err != nil {
					if strings.Contains(err.Error(), "assign requested address") {
						t.Skipf("no loopback address %s on this system", from)
					}
					t.Fatal(err)
				}
				err = c.Login(user, pass).Wait()
				out = append(out, string(imapType(err))+" "+string(imapCode(err)))
				c.Close()
			}
			return out
		}
		known := answers("127.0.0.2", ayse.Account.Address, ayse.Password)
		unknown := answers("127.0.0.3", "nobody.here@hs01.kep.tr", "whatever")
		want := "NO UNAVAILABLE"
		if known[len(known)-1] != want {
			t.Fatalf("right password during back-off: %v", known)
		}
		if strings.Join(known, ",") != strings.Join(unknown, ",") {
			t.Fatalf("known and unknown users answered differently:\n%v\n%v", known, unknown)
		}
		if known[0] != "NO AUTHENTICATIONFAILED" {
			t.Fatalf("first failure: %v", known[0])
		}
	})
}

// Commands pipelined after STARTTLS in cleartext are not executed once TLS
// is up (the injection of CVE-2011-0411): the server treats them as the
// start of the TLS handshake, which fails.
func TestSTARTTLSInjection(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := startServer(t, w)
		ayse := w.Person("Ayşe", "Enjeksiyon")
		conn, err := net.Dial("tcp", e.plainAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		br.ReadString('\n') // greeting
		fmt.Fprintf(conn, "a STARTTLS\r\nb LOGIN %q %q\r\nc SELECT INBOX\r\n", ayse.Account.Address, ayse.Password)
		if l, _ := br.ReadString('\n'); !strings.HasPrefix(l, "a OK") {
			t.Fatalf("STARTTLS: %q", l)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(conn, e.clientTLS)
		if err := tc.Handshake(); err == nil {
			// Should the handshake ever succeed, the injected commands must
			// not have run: the session is not logged in.
			fmt.Fprintf(tc, "d SELECT INBOX\r\n")
			l, _ := bufio.NewReader(tc).ReadString('\n')
			if strings.HasPrefix(l, "d OK") || strings.HasPrefix(l, "b OK") {
				t.Fatalf("injected commands ran: %q", l)
			}
		}
	})
}
