package mailbox_test

import (
	"context"
	"testing"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// submitInMemory accepts raw as the submission server does for a message
// it holds whole: packed in the content store, its bytes handed to Accept.
func submitInMemory(t testing.TB, w *providertest.World, p *providertest.Person, raw []byte, to ...string) *mailbox.KEPMessage {
	t.Helper()
	d, gen, err := w.Node.Blobs.PutDeferred(raw)
	if err != nil {
		t.Fatal(err)
	}
	msg, _, err := w.Node.Mailbox.Accept(context.Background(), &mailbox.Submission{Sender: p.Account, Original: d, Size: int64(len(raw)), BlobGen: gen, Data: raw,
		From: p.Account.Address, Recipients: to, IletiID: "ileti-" + evidence.NewID(), IletiTip: evidence.IletiTipStandart, AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestAcceptJoinsLocalDelivery: recipients in this provider's mailboxes of
// a message held in memory are settled in the acceptance's transaction —
// 40 or 41 right after 10, with no queue pass — and every other recipient
// stays pending for its transport; a large (streamed) message leaves all
// of them to the queue.
func TestAcceptJoinsLocalDelivery(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		ayse, mehmet, zehra := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk"), w.Person("Zehra", "Ak")
		if _, err := w.Q().Exec(ctx, `UPDATE accounts SET quota_bytes = 1000 WHERE id = ?`, zehra.Account.ID); err != nil {
			t.Fatal(err)
		}
		other := "biri@hs02.kep.tr" // another provider's: the relay's (or no-route's)
		to := []string{mehmet.Account.Address, zehra.Account.Address, "nobody.here@hs01.kep.tr", other}
		for _, tc := range []struct {
			name      string
			inMemory  bool
			evidence  string // right after Accept
			pending   int    // deliveries left pending
			inboxSize int    // messages in Mehmet's INBOX after Accept
		}{
			{"in memory", true, "10: 40:" + mehmet.Account.Address + " 41:" + zehra.Account.Address + " 41:nobody.here@hs01.kep.tr", 1, 1},
			{"streamed", false, "10:", 4, 1}, // the INBOX holds the first case's copy
		} {
			t.Run(tc.name, func(t *testing.T) {
				raw := signedMessage(t, ayse, "standart", to...)
				var msg *mailbox.KEPMessage
				if tc.inMemory {
					msg = submitInMemory(t, w, ayse, raw, to...)
				} else {
					msg = submit(t, w, ayse, raw, "standart", to...)
				}
				if got := codes(t, w, msg.ID); got != tc.evidence {
					t.Fatalf("evidence after Accept %q, want %q", got, tc.evidence)
				}
				var pending int
				if err := w.Q().QueryRow(ctx, `SELECT COUNT(*) FROM deliveries WHERE message_id = ? AND transport_state = ?`, msg.ID, string(queue.Pending)).Scan(&pending); err != nil {
					t.Fatal(err)
				}
				if pending != tc.pending {
					t.Fatalf("%d deliveries pending, want %d", pending, tc.pending)
				}
				inbox, _ := mailbox.GetFolder(ctx, w.Q(), mehmet.Account.ID, mailbox.Inbox)
				if ms, _ := mailbox.ListMessages(ctx, w.Q(), inbox.ID); len(ms) != tc.inboxSize {
					t.Fatalf("%d messages in the INBOX, want %d", len(ms), tc.inboxSize)
				}
				// The queue settles the rest as before.
				if _, err := w.Node.Mailbox.DeliverQueued(ctx, 100); err != nil {
					t.Fatal(err)
				}
				var n40 int
				w.Q().QueryRow(ctx, `SELECT COUNT(*) FROM evidence WHERE message_id = ? AND code = 40`, msg.ID).Scan(&n40)
				if n40 != 1 {
					t.Fatalf("%d delivery evidences (40), want 1", n40)
				}
			})
		}
	})
}

// BenchmarkAccept10KB is the hot path of a submission to a local
// recipient: a 10 KB original packed, accepted and delivered, evidence 10
// and 40 signed and logged. "queued" is the path a streamed message takes
// (accept, then the local transport in a transaction of its own).
func BenchmarkAccept10KB(b *testing.B) {
	w := providertest.New(b, store.SQLite)
	ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
	body := make([]byte, 10<<10)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	for _, inMemory := range []bool{true, false} {
		name := "joined"
		if !inMemory {
			name = "queued"
		}
		b.Run(name, func(b *testing.B) {
			raw := signedMessage(b, ayse, "standart", mehmet.Account.Address)
			raw = append(raw[:len(raw):len(raw)], body...) // unsigned tail: only the size matters here
			b.ResetTimer()
			stmts := w.Node.DB.Statements()
			for i := 0; i < b.N; i++ {
				raw[len(raw)-1] = byte(i) // distinct originals
				if inMemory {
					submitInMemory(b, w, ayse, raw, mehmet.Account.Address)
				} else {
					submit(b, w, ayse, raw, "standart", mehmet.Account.Address)
					if _, err := w.Node.Mailbox.DeliverQueued(context.Background(), 100); err != nil {
						b.Fatal(err)
					}
				}
			}
			// Statements per message on the acceptance path (and the
			// delivery pass when queued); docs/architecture.md.
			b.ReportMetric(float64(w.Node.DB.Statements()-stmts)/float64(b.N), "stmts/op")
		})
	}
}
