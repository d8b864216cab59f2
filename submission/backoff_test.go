package submission_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/provider/providertest"
)

// One user's typos do not lock out another user at the same address, and
// the 454 reply says how long to wait (issue 10.3, account.Limiter).
func TestLoginBackoffIsPerUser(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := start(t, w)
		ayse := w.Person("Ayşe", "Nat")
		mehmet := w.Person("Mehmet", "Nat")
		auth := func(user, pass string) error {
			c, err := smtp.DialStartTLS(e.sub, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return c.Auth(sasl.NewPlainClient("", user, pass))
		}
		for i := 0; i < 6; i++ {
			auth(ayse.Account.Address, "typo")
		}
		err := auth(ayse.Account.Address, ayse.Password)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 454 || !strings.Contains(se.Message, "try again in") {
			t.Fatalf("the typing user: want 454 saying how long to wait, got %v", err)
		}
		if err := auth(mehmet.Account.Address, mehmet.Password); err != nil {
			t.Fatalf("another user at the same address was locked out: %v", err)
		}
	})
}
