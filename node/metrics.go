package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

// operatorServer is the operator's plain-HTTP listener (metrics.listen,
// loopback by default): /metrics in the Prometheus text format, from the
// node's own registry, and /healthz.
func operatorServer(n *provider.Node) *http.Server {
	reg := n.Metrics
	// The runtime's and the process's own figures; a second node in the
	// same process has its own registry, so registering here is safe.
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			n.Logger.Warn("metrics: register runtime collector", "err", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: promLogger{n}, Timeout: 20 * time.Second}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := checkHealth(r.Context(), n)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if h.Status != "ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(h)
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
}

type promLogger struct{ n *provider.Node }

func (l promLogger) Println(v ...any) { l.n.Logger.Warn("metrics", "detail", v) }

// Health is the body of /healthz: the overall status and each check.
type Health struct {
	Status string           `json:"status"` // "ok" or "failing"
	Checks map[string]Check `json:"checks"`
	Facts  map[string]any   `json:"facts,omitempty"`
}

// Check is one health check's result.
type Check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// checkHealth checks what a node needs to accept mail and issue evidence
// that will verify: the database answers, and the evidence log is
// checkpointed (a newest checkpoint not much older than the checkpoint
// interval whenever some evidence is not yet covered by one — the
// checkpoints are what carry the RFC 3161 time stamps), and the provider's
// keys: "key:provider", "key:tsa" and "key:log" fail when the key is not
// valid (the TSA: failing past tsa.outage_tolerance) and say when a key is
// due within 30 days (issue 9.3).
func checkHealth(ctx context.Context, n *provider.Node) Health {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h := Health{Status: "ok", Checks: map[string]Check{}, Facts: map[string]any{}}
	fail := func(name, detail string) {
		h.Checks[name] = Check{Detail: detail}
		h.Status = "failing"
	}
	if err := n.DB.PingContext(ctx); err != nil {
		fail("database", "the database does not answer: "+err.Error())
	} else {
		h.Checks["database"] = Check{OK: true}
	}
	size := n.Log.Size()
	h.Facts["log_size"] = size
	interval := n.Config.Log.CheckpointInterval.Duration
	if interval <= 0 {
		interval = 2 * time.Second
	}
	stale := max(10*interval, time.Minute)
	cp, err := tlog.LatestCheckpoint(ctx, n.DB.Q())
	switch {
	case errors.Is(err, store.ErrNotFound) && size == 0:
		h.Checks["checkpoint"] = Check{OK: true, Detail: "the log is empty"}
	case errors.Is(err, store.ErrNotFound):
		fail("checkpoint", "the log holds evidence but no checkpoint yet")
	case err != nil:
		fail("checkpoint", "cannot read the newest checkpoint: "+err.Error())
	default:
		age := n.Now().Sub(cp.CreatedAt)
		h.Facts["checkpoint_size"] = cp.Size
		h.Facts["checkpoint_age_seconds"] = int64(age.Seconds())
		if cp.Size < size && age > stale {
			fail("checkpoint", "evidence waits for a checkpoint: the newest is "+age.Round(time.Second).String()+" old (time stamps failing?)")
		} else {
			h.Checks["checkpoint"] = Check{OK: true}
		}
	}
	for _, st := range n.Keys.Status(n.Now()) {
		name := "key:" + st.Key
		if !st.Valid {
			fail(name, st.Detail)
			continue
		}
		h.Checks[name] = Check{OK: true, Detail: st.Detail}
	}
	return h
}
