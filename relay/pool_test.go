package relay_test

import (
	"context"
	"testing"

	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// Relay sessions are kept open between messages (docs/relay.md,
// "Sessions"): one session carries message after message; a session the
// peer closed meanwhile (here: its reception point restarted) is replaced
// without a failed delivery.
func TestSessionReuse(t *testing.T) {
	f := newFed(t, store.SQLite)
	ctx := context.Background()
	deliver := func(step string) {
		t.Helper()
		msg, job := f.submit(f.rcpt.Address)
		if err := f.out.Deliver(ctx, job, job.Recipients); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Awaiting) {
			t.Fatalf("%s: transport state %q, want awaiting", step, got)
		}
		if n := f.out.IdleSessions(); n != 1 {
			t.Fatalf("%s: %d idle sessions, want 1", step, n)
		}
	}
	deliver("first")
	deliver("second, same session")
	deliver("third, same session")
	f.stopServer()
	f.startServer()
	deliver("after the peer restarted")
	if n := len(f.relayed()); n != 4 {
		t.Fatalf("hs02 stored %d messages, want 4", n)
	}
	f.out.Close()
	if n := f.out.IdleSessions(); n != 0 {
		t.Fatalf("%d idle sessions after Close", n)
	}
}
