package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"github.com/kephs/kep/account"
	"net"
	"net/http"
	"time"

	"github.com/kephs/kep/api"
	"github.com/kephs/kep/connlimit"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/rehber"
	"github.com/kephs/kep/report"
	"github.com/kephs/kep/submission"
	"github.com/kephs/kep/tlog"
	"github.com/kephs/kep/web"
)

// httpsLimits bound what one client can hold of the HTTPS server (issue 9,
// "Connections and back-off"). net/http bounds the TLS handshake by the
// smallest of the read-header, read and write timeouts.
type httpsLimits struct {
	readHeader time.Duration // TLS handshake, and a request's line and headers
	read       time.Duration // a whole request, body included
	write      time.Duration // a whole response
	idle       time.Duration // a keep-alive connection waiting for its next request
	maxConns   int           // connections held at once, in all
	maxPerAddr int           // connections held at once from one IP address
}

var defaultHTTPSLimits = httpsLimits{readHeader: 10 * time.Second, read: 10 * time.Minute, write: 10 * time.Minute,
	idle: 2 * time.Minute, maxConns: 2000, maxPerAddr: 100}

// httpsServer is the node's public HTTPS server: the evidence log's
// endpoints (C2SP tlog-tiles), the mail clients' set-up (autoconfig and
// the provider CA, clientsetup.go, naming the ports in ep), later the API
// and the web.
//
// rehberService is the node's KEP Rehberi: local answers, and other
// providers' through the directory when the node has one.
func rehberService(n *provider.Node, tlsConf *tls.Config) *rehber.Service {
	rb := &rehber.Service{DB: n.DB, Provider: n.Config.Provider.ID, Now: n.Now}
	if n.Directory != nil {
		rb.Directory = n.Directory.Current
		rb.Peers = &rehber.PeerClient{Cert: tlsConf.Certificates[0], Now: n.Now}
	}
	return rb
}

func httpsServer(n *provider.Node, tlsConf *tls.Config, lim httpsLimits, ep Endpoints, ap *submission.AccessPoint) *http.Server {
	mux := http.NewServeMux()
	// The web mail (docs/web.md) at /: every path no other handler claims.
	ws := &web.Server{Mailbox: n.Mailbox, Accounts: n.Accounts, Access: ap, SignerOrigin: n.Config.HTTP.SignerOrigin,
		Now: n.Now, Log: n.Logger}
	mux.Handle("/", ws.Handler())
	newClientSetup(n, ep).handle(mux)
	// The REST API (docs/api.md) and its OpenAPI document.
	mux.Handle("/api/", (&api.Server{Accounts: n.Accounts, Mailbox: n.Mailbox, Access: ap, Rehber: rehberService(n, tlsConf),
		Anchors: trustAnchors(n), ProviderID: n.Config.Provider.ID, Directory: directoryOf(n), Logger: n.Logger, Now: n.Now,
		Limits: api.Limits{Rate: float64(n.Config.HTTP.APIRate), Burst: n.Config.HTTP.APIBurst}}).Handler())
	mux.Handle("/log/", http.StripPrefix("/log", tlog.Handler(n.DB, func(ctx context.Context, start, end int64) ([][]byte, error) {
		return mailbox.LogEntries(ctx, n.DB.Q(), start, end) // evidence and receipts of other providers' evidence
	})))
	// KEP Rehberi for users (docs/relay.md, "KEP Rehberi query").
	mux.Handle("/rehber/v1/", http.StripPrefix("/rehber/v1", rehberService(n, tlsConf).Handler(rehber.BasicAuth(n.Accounts), n.Logger)))
	// Evidence reports (docs/report.md): for the web mail's session, or
	// with Basic auth for scripts.
	basic := report.BasicAuth(n.Accounts)
	reports := report.Handler(n.Mailbox, func(r *http.Request) (*account.Principal, error) {
		if p, err := ws.SessionPrincipal(r); p != nil || err != nil {
			return p, err
		}
		return basic(r)
	})
	mux.Handle("/report/", reports)
	mux.Handle("/static/report.css", reports)
	// Public pages, no login: verification and the log's audit.
	public := publicSite(n).Handler() // publicweb.go
	for _, p := range []string{"/dogrula", "/denetim", "/static/public.css"} {
		mux.Handle(p, public)
	}
	// The public liveness probe says nothing about the node; the operator's
	// /healthz, on the metrics listener, says what is checked.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return &http.Server{Handler: mux, TLSConfig: tlsConf, ReadHeaderTimeout: lim.readHeader, ReadTimeout: lim.read,
		WriteTimeout: lim.write, IdleTimeout: lim.idle}
}

// directoryOf returns the node's directory in force, or nil without
// federation.
func directoryOf(n *provider.Node) func() *directory.Directory {
	if n.Directory == nil {
		return nil
	}
	return n.Directory.Current
}

// serveHTTPS serves hs on l within the connection caps; a refused client
// gets 503 with the reason, over TLS.
func serveHTTPS(hs *http.Server, l net.Listener, lim httpsLimits) error {
	ll := connlimit.Listen(l, connlimit.Limits{MaxConns: lim.maxConns, MaxPerAddr: lim.maxPerAddr}, nil)
	ll.Refuse = func(c net.Conn, why connlimit.Refusal) {
		text := fmt.Sprintf("Too many connections to this server (%d); try again in a minute.\n", lim.maxConns)
		if why == connlimit.TooManyPerAddr {
			text = fmt.Sprintf("Too many connections from your address (%d at once); close some and try again.\n", lim.maxPerAddr)
		}
		resp := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 60\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(text), text)
		connlimit.RefuseTLS(c, hs.TLSConfig, []byte(resp))
	}
	return hs.ServeTLS(ll, "", "")
}
