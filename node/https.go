package node

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/tlog"
)

// httpsServer is the node's public HTTPS server: the evidence log's
// endpoints (C2SP tlog-tiles), later the API and the web.
func httpsServer(n *provider.Node, tlsConf *tls.Config) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/log/", http.StripPrefix("/log", tlog.Handler(n.DB, func(ctx context.Context, start, end int64) ([][]byte, error) {
		return evidence.Entries(ctx, n.DB.Q(), start, end)
	})))
	// The public liveness probe says nothing about the node; the operator's
	// /healthz, on the metrics listener, says what is checked.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return &http.Server{Handler: mux, TLSConfig: tlsConf, ReadHeaderTimeout: 10 * time.Second}
}
