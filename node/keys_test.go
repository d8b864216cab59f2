package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/node"
	"github.com/kephs/kep/provider/providertest"
)

// TestProviderCertificateExpired moves the clock past the provider
// certificate's end: every submission, signed or not, is answered 451
// naming the cause, and no evidence at all is issued (not even a
// rejection: the sender did nothing wrong); /healthz answers 503 naming the
// key, and kep_provider_key_valid{key="provider"} is 0 (issue 9.3).
func TestProviderCertificateExpired(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		r := start(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		A, M := ayse.Account.Address, mehmet.Account.Address
		m := scrape(t, r.Endpoints.Metrics)
		if m[`kep_provider_key_valid{key="provider"}`] != 1 || m[`kep_provider_key_expiry_seconds{key="provider"}`] < 365*24*3600 {
			t.Fatalf("before expiry: valid %v, expiry in %v s", m[`kep_provider_key_valid{key="provider"}`], m[`kep_provider_key_expiry_seconds{key="provider"}`])
		}
		evidences := func() int {
			var c int
			if err := w.Q().QueryRow(context.Background(), `SELECT COUNT(*) FROM evidence`).Scan(&c); err != nil {
				t.Fatal(err)
			}
			return c
		}
		before := evidences()
		w.Clock.Advance(w.Node.Cert.Cert.NotAfter.Sub(w.Clock.Now()) + time.Minute)
		for _, c := range []struct {
			name string
			msg  []byte
		}{
			{"signed", signed(t, A, ayse.Signer, M)},
			{"unsigned (a rejection otherwise)", []byte("From: " + A + "\r\nTo: " + M + "\r\nSubject: x\r\n\r\nhello\r\n")},
		} {
			err := submit(t, r.Endpoints.Submission, A, ayse.Password, A, M, c.msg)
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) || !strings.Contains(se.Message, "provider certificate expired") {
				t.Fatalf("%s: %v, want 451 4.3.0 naming the expired provider certificate", c.name, err)
			}
		}
		if got := evidences(); got != before {
			t.Fatalf("%d evidences after the refusals, want %d", got, before)
		}
		m = scrape(t, r.Endpoints.Metrics)
		if m[`kep_provider_key_valid{key="provider"}`] != 0 || m[`kep_provider_key_expiry_seconds{key="provider"}`] >= 0 {
			t.Fatalf("after expiry: valid %v, expiry in %v s", m[`kep_provider_key_valid{key="provider"}`], m[`kep_provider_key_expiry_seconds{key="provider"}`])
		}
		resp, err := http.Get("http://" + r.Endpoints.Metrics + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h node.Health
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		c := h.Checks["key:provider"]
		if resp.StatusCode != http.StatusServiceUnavailable || h.Status != "failing" || c.OK || !strings.Contains(c.Detail, "provider certificate expired") {
			t.Fatalf("/healthz: %s %+v", resp.Status, h)
		}
	})
}
