package mailbox

import (
	"testing"
	"time"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/queue"
)

// TestSettle: a recipient's state from its delivery row and its evidence,
// ours and returned by the recipient's provider, in any order of arrival.
func TestSettle(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ev := func(c evidence.Code, min int) *EvidenceEntry {
		return &EvidenceEntry{Code: c, EventTime: at.Add(time.Duration(min) * time.Minute), Reason: "why " + c.String()}
	}
	tests := []struct {
		name      string
		d         Delivery
		evidence  []*EvidenceEntry
		want      RecipientState
		wantSince int // minutes after at; -1: the acceptance
	}{
		{"queued", Delivery{State: Queued, Transport: queue.Pending}, nil, StateAccepted, -1},
		{"handed to the other provider", Delivery{State: Queued, Transport: queue.Awaiting}, nil, StateRelayed, -1},
		{"its provider accepted", Delivery{State: Queued, Transport: queue.Awaiting}, []*EvidenceEntry{ev(evidence.RelayAccepted, 1)}, StateAcceptedByProvider, 1},
		{"delivered there", Delivery{State: Queued, Transport: queue.Delivered}, []*EvidenceEntry{ev(evidence.RelayAccepted, 1), ev(evidence.Delivered, 2)}, StateDelivered, 2},
		{"read there", Delivery{State: Queued, Transport: queue.Delivered}, []*EvidenceEntry{ev(evidence.RelayAccepted, 1), ev(evidence.Delivered, 2), ev(evidence.Read, 3)}, StateRead, 3},
		{"refused there", Delivery{State: Failed, Transport: queue.Failed}, []*EvidenceEntry{ev(evidence.RelayRejected, 1)}, StateFailed, 1},
		{"our 31, then their 40", Delivery{State: Failed, Transport: queue.Failed}, []*EvidenceEntry{ev(evidence.RelayFailure, 1), ev(evidence.Delivered, 2)}, StateDelivered, 2},
		{"not placed here", Delivery{State: Failed, Transport: queue.Failed}, []*EvidenceEntry{ev(evidence.NotDelivered, 1)}, StateFailed, 1},
		{"deemed read", Delivery{State: Deemed, Transport: queue.Delivered}, []*EvidenceEntry{ev(evidence.Delivered, 1), ev(evidence.DeemedRead, 9)}, StateDeemedRead, 9},
		{"read, evidence not listed", Delivery{State: ReadBy, Transport: queue.Delivered}, []*EvidenceEntry{ev(evidence.Delivered, 1)}, StateRead, 1},
	}
	for _, tc := range tests {
		rs := &RecipientStatus{State: StateAccepted, Since: at.Add(-time.Hour), Evidence: tc.evidence}
		rs.settle(&tc.d)
		wantSince := at.Add(time.Duration(tc.wantSince) * time.Minute)
		if tc.wantSince < 0 {
			wantSince = at.Add(-time.Hour)
		}
		if rs.State != tc.want || !rs.Since.Equal(wantSince) {
			t.Errorf("%s: %s since %s, want %s since %s", tc.name, rs.State, rs.Since.Format(time.TimeOnly), tc.want, wantSince.Format(time.TimeOnly))
		}
		if (rs.State == StateFailed || rs.State == StateDeemedRead) && rs.Reason == "" {
			t.Errorf("%s: no reason", tc.name)
		}
	}
}
