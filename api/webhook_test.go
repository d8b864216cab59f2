package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/api"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/queue"
)

// TestWebhooks: evidence events reach a subscribed URL, signed with the
// subscription's secret; a failed call is retried with back-off until it
// is answered; codes not subscribed to are not sent.
func TestWebhooks(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := newEnv(t, w)
		ctx := context.Background()
		var mu sync.Mutex
		var got []api.Event
		var sigs []string
		var bodies [][]byte
		fail := 1 // the first call is answered 503
		hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			defer mu.Unlock()
			if fail > 0 {
				fail--
				rw.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			var ev api.Event
			json.Unmarshal(b, &ev)
			got, sigs, bodies = append(got, ev), append(sigs, r.Header.Get(api.SignatureHeader)), append(bodies, b)
		}))
		defer hook.Close()

		status, body, _ := e.do(e.tokens["ayse"], "POST", "/api/v1/accounts/"+e.ayse.Account.Address+"/webhooks", []byte(`{"url":"`+hook.URL+`/kep","codes":[10,40,60]}`))
		if status != 201 {
			t.Fatalf("subscribe: %d %s", status, body)
		}
		secret, err := api.WebhookSecret(decode(t, body)["secret"].(string))
		if err != nil {
			t.Fatal(err)
		}
		// Mehmet reads at once; 10, 40 and 60 follow.
		e.do(e.tokens["ayse"], "POST", "/api/v1/messages", signed(t, e.ayse, e.ayse.Account.Address, "", e.mehmet.Account.Address, "nobody.here@hs01.kep.tr"))
		w.Node.Mailbox.DeliverQueued(ctx, 100)
		if status, body, _ := e.do(e.tokens["mehmet"], "GET", "/api/v1/accounts/"+e.mehmet.Account.Address+"/folders/INBOX/messages/1/content", nil); status != 200 {
			t.Fatalf("read: %d %s", status, body)
		}
		wh := &api.Webhooks{DB: w.Node.DB, Now: w.Clock.Now, Backoff: queue.Backoff{First: time.Minute, Ceiling: time.Hour}}
		made, err := wh.Dispatch(ctx)
		if err != nil || made != 3 {
			t.Fatalf("dispatch: %d %v (want 10, 40 and 60; not the 41)", made, err)
		}
		if again, _ := wh.Dispatch(ctx); again != 0 {
			t.Fatal("dispatched twice")
		}
		sent, err := wh.RunDue(ctx, 10)
		if sent != 2 || err != nil {
			t.Fatalf("first round: %d sent, %v (one answered 503)", sent, err)
		}
		if sent, _ := wh.RunDue(ctx, 10); sent != 0 {
			t.Fatal("retried before the back-off")
		}
		w.Clock.Advance(2 * time.Minute)
		if sent, err := wh.RunDue(ctx, 10); sent != 1 || err != nil {
			t.Fatalf("retry: %d %v", sent, err)
		}
		mu.Lock()
		defer mu.Unlock()
		codes := map[float64]bool{}
		for i, ev := range got {
			if ev.Type != "evidence" || ev.Account != e.ayse.Account.Address || ev.Links["bundle"] == nil {
				t.Errorf("event %+v", ev)
			}
			codes[ev.Evidence["code"].(float64)] = true
			var ts int64
			fmt.Sscanf(sigs[i], "t=%d,", &ts)
			if sigs[i] != api.Sign(secret, time.Unix(ts, 0), bodies[i]) {
				t.Errorf("signature %q does not verify", sigs[i])
			}
		}
		if len(codes) != 3 || !codes[10] || !codes[40] || !codes[60] {
			t.Fatalf("codes %v", codes)
		}
		var delivered int
		w.Node.DB.Q().QueryRow(ctx, `SELECT COUNT(*) FROM webhook_calls WHERE state = 'delivered' AND attempts >= 1`).Scan(&delivered)
		if delivered != 3 {
			t.Fatalf("%d calls delivered, want 3", delivered)
		}
	})
}
