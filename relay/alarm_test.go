package relay_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kephs/kep/relay"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

// TestEvidenceAlarm: a recipient hs02 took (250) whose 20 does not come
// back within federation.evidence_alarm is logged once at WARN, ids only,
// and counted; once the 20 arrives it is no longer overdue. The clock is
// the world's injected one.
func TestEvidenceAlarm(t *testing.T) {
	for _, d := range storetest.Backends(t) {
		t.Run(string(d), func(t *testing.T) { testEvidenceAlarm(t, d) })
	}
}

func testEvidenceAlarm(t *testing.T, d store.Dialect) {
	f := newFed(t, d)
	ctx := context.Background()
	msg, job := f.submit(f.rcpt.Address)
	if err := f.out.Deliver(ctx, job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	f.reg = prometheus.NewRegistry()
	a := &relay.Alarm{DB: f.w1.Node.DB, After: time.Hour, Directory: f.dir.Load, Now: f.w1.Clock.Now,
		Log: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: relay.NewMetrics(f.reg)}
	for _, step := range []struct {
		name    string
		advance time.Duration
		overdue int
		logged  int // WARN lines so far
	}{
		{"just after the 250", 0, 0, 0},
		{"59 minutes on", 59 * time.Minute, 0, 0},
		{"past the alarm", 2 * time.Minute, 1, 1},
		{"checked again: logged once", time.Hour, 1, 1},
	} {
		f.w1.Clock.Advance(step.advance)
		got, err := a.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != step.overdue || strings.Count(logs.String(), "level=WARN") != step.logged {
			t.Fatalf("%s: %d overdue, log:\n%s", step.name, len(got), logs.String())
		}
		if m := f.metric("kep_relay_evidence_overdue", ""); m != float64(step.overdue) {
			t.Fatalf("%s: kep_relay_evidence_overdue = %v", step.name, m)
		}
		if step.overdue > 0 && (got[0].Message != msg.ID || got[0].Provider != "hs02" || got[0].Evidence != msg.EvidenceID) {
			t.Fatalf("%s: %+v", step.name, got[0])
		}
	}
	line := logs.String()
	for _, want := range []string{"provider=hs02", "evidence=" + msg.EvidenceID, "waited=1h1m0s"} {
		if !strings.Contains(line, want) {
			t.Errorf("the WARN line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, f.rcpt.Address) || strings.Contains(line, "@") {
		t.Errorf("the WARN line names an address:\n%s", line)
	}
	// hs02's evidence comes back: nothing is overdue.
	if _, err := f.n2.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	f.startBack()
	if sent, err := f.returner().RunDue(ctx, 10); sent == 0 || err != nil {
		t.Fatalf("returned %d (%v)", sent, err)
	}
	f.reg = prometheus.NewRegistry()
	a.Metrics = relay.NewMetrics(f.reg)
	if got, err := a.Check(ctx); err != nil || len(got) != 0 {
		t.Fatalf("after the 20 came back: %d overdue (%v)", len(got), err)
	}
	if m := f.metric("kep_relay_evidence_overdue", ""); m != 0 {
		t.Fatalf("kep_relay_evidence_overdue = %v after the 20", m)
	}
}
