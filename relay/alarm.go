package relay

import (
	"context"
	"log/slog"
	"time"

	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/store"
)

// Alarm tells the operator about recipients whose message the other
// provider took (its 250) but whose relay acceptance evidence (20, or a
// 21) has not come back within After of the message's acceptance
// (docs/relay.md, "Alarms"). Evidence should follow the 250 within
// seconds (once the peer's checkpoint covers it); one that does not
// points at the peer's returns or at our reception point. Each such
// recipient is logged once at WARN, with ids only (no address), and
// counted in kep_relay_evidence_overdue.
type Alarm struct {
	DB        *store.DB
	After     time.Duration
	Directory func() *directory.Directory // names the peer in the log line; may be nil
	Now       func() time.Time
	Log       *slog.Logger
	Metrics   *Metrics
	warned    map[int64]bool // deliveries logged already
}

// Overdue is a recipient the alarm found.
type Overdue struct {
	Delivery, Message int64
	Evidence          string // our acceptance evidence (10)
	Provider          string // the peer's directory id, when known
	Waited            time.Duration
}

// Check finds the overdue recipients (at most 1000), logs those not logged
// before, and sets the gauge.
func (a *Alarm) Check(ctx context.Context) ([]Overdue, error) {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	t := now()
	rows, err := a.DB.Q().Query(ctx, `SELECT d.id, d.message_id, m.evidence_id, m.submitted_at, d.recipient
		FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE d.transport_state = 'awaiting' AND m.submitted_at <= ?
		AND NOT EXISTS (SELECT 1 FROM foreign_evidence f WHERE f.message_id = d.message_id AND f.recipient = d.recipient AND f.code IN (20, 21))
		ORDER BY d.id LIMIT 1000`, store.Millis(t.Add(-a.After)))
	if err != nil {
		return nil, err
	}
	var found []Overdue
	var d *directory.Directory
	if a.Directory != nil {
		d = a.Directory()
	}
	for rows.Next() {
		var o Overdue
		var at int64
		var rcpt string
		if err := rows.Scan(&o.Delivery, &o.Message, &o.Evidence, &at, &rcpt); err != nil {
			rows.Close()
			return nil, err
		}
		o.Waited = t.Sub(store.FromMillis(at)).Truncate(time.Second)
		if d != nil {
			if p := d.ProviderFor(domainOf(rcpt)); p != nil {
				o.Provider = p.ID
			}
		}
		found = append(found, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	seen := make(map[int64]bool, len(found))
	for _, o := range found {
		seen[o.Delivery] = true
		if a.warned[o.Delivery] {
			continue
		}
		a.log().Warn("relay: the other provider took the message (250) but its relay acceptance evidence (20) has not come back; check its evidence returns and our reception point",
			"message", o.Message, "delivery", o.Delivery, "evidence", o.Evidence, "provider", o.Provider, "waited", o.Waited.String(), "alarm_after", a.After.String())
	}
	a.warned = seen
	a.Metrics.overdueSet(len(found))
	return found, nil
}

// Run checks every interval until ctx ends; an alarm of no duration is
// off. One goroutine runs it.
func (a *Alarm) Run(ctx context.Context, interval time.Duration) {
	if a.After <= 0 {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := a.Check(ctx); err != nil && ctx.Err() == nil {
			a.log().Error("relay: evidence alarm check", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *Alarm) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}
