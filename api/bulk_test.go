package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/kephs/kep/provider/providertest"
)

// TestBulkRetriedAfterNetworkFailure: a bulk call of 1,000 signed messages
// whose client closes the connection before reading the answer, retried
// whole, sends each message exactly once.
func TestBulkRetriedAfterNetworkFailure(t *testing.T) {
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ctx := context.Background()
		const n = 1000
		type item struct {
			Key     string `json:"idempotency_key"`
			Message []byte `json:"message"`
		}
		var req struct {
			Items []item `json:"items"`
		}
		for i := 0; i < n; i++ {
			req.Items = append(req.Items, item{fmt.Sprintf("statement-2026-12-%04d", i), signed(t, e.ayse, e.ayse.Account.Address, "", e.mehmet.Account.Address)})
		}
		body, _ := json.Marshal(req)
		count := func() int {
			var c int
			if err := w.Node.DB.Q().QueryRow(ctx, `SELECT COUNT(*) FROM messages WHERE sender_account = ?`, e.ayse.Account.ID).Scan(&c); err != nil {
				t.Fatal(err)
			}
			return c
		}

		// The first call: the request goes out whole, then the connection
		// breaks before the answer is read.
		u, _ := url.Parse(e.srv.URL)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /api/v1/messages/bulk HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", u.Host, e.tokens["ayse"], len(body))
		if _, err := conn.Write(body); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); count() == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the first call sent nothing")
			}
		}
		conn.Close()
		first := count()

		// The client, having no answer, sends the same call again, once
		// its token's bucket has refilled (Limits).
		w.Clock.Advance(10 * time.Second)
		status, out, _ := e.do(e.tokens["ayse"], "POST", "/api/v1/messages/bulk", body)
		if status != 200 {
			t.Fatalf("retry: %d %s", status, out)
		}
		var res struct {
			Accepted, Replayed, Refused, Failed int
			Items                               []struct {
				Index    int
				Accepted *struct {
					MessageID int64 `json:"message_id"`
				}
			}
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatal(err)
		}
		if res.Accepted+res.Replayed != n || res.Refused+res.Failed != 0 || res.Replayed == 0 {
			t.Fatalf("retry: %d accepted, %d replayed, %d refused, %d failed (the first call had sent %d)", res.Accepted, res.Replayed, res.Refused, res.Failed, first)
		}
		ids := map[int64]bool{}
		for _, it := range res.Items {
			ids[it.Accepted.MessageID] = true
		}
		if len(ids) != n {
			t.Fatalf("%d distinct messages for %d keys", len(ids), n)
		}
		// Once the first call has ended too, each message was sent once.
		time.Sleep(200 * time.Millisecond)
		if got := count(); got != n {
			t.Fatalf("%d messages sent, want %d", got, n)
		}
		var deliveries int
		w.Node.DB.Q().QueryRow(ctx, `SELECT COUNT(*) FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE m.sender_account = ?`, e.ayse.Account.ID).Scan(&deliveries)
		if deliveries != n {
			t.Fatalf("%d deliveries, want %d", deliveries, n)
		}
		t.Logf("the first call had sent %d before the retry; the retry accepted %d and replayed %d", first, res.Accepted, res.Replayed)
	})
}
