// Package node is in charge of assembling a running provider node: the
// core (provider.Node: store, keys, evidence log, mailboxes) and the
// front-ends that serve it — SMTP submission, IMAP, the HTTPS endpoints
// and the operator's metrics listener — each constructed here, explicitly,
// on the listeners the configuration names. It is the one place that
// wiring lives: `kep serve`, `kep demo` and the tests that need servers all
// call Open or Start, and no package sets another's behaviour from init().
//
// It sits above the front-ends (it imports submission and imapd, and will
// import relay, api and web) so that none of them, nor the core, needs to
// know about the others.
package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/kephs/kep/api"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/imapd"
	"github.com/kephs/kep/notice"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/rehber"
	"github.com/kephs/kep/relay"
	"github.com/kephs/kep/revocation"
	"github.com/kephs/kep/submission"
)

// Endpoints are the addresses a running node listens on.
type Endpoints struct {
	Submission  string `json:"smtp_submission"`   // 587-style, STARTTLS
	Submissions string `json:"smtp_submissions"`  // 465-style, implicit TLS
	IMAP        string `json:"imap"`              // 143-style, STARTTLS
	IMAPS       string `json:"imaps"`             // 993-style, implicit TLS
	HTTPS       string `json:"https"`             // log endpoints (checkpoint, tiles)
	Metrics     string `json:"metrics,omitempty"` // plain HTTP: /metrics and /healthz, for the operator
	Relay       string `json:"relay,omitempty"`   // the reception point: SMTP over mutual TLS, for other providers
	Rehber      string `json:"rehber,omitempty"`  // other providers' KEP Rehberi queries: HTTPS over mutual TLS
}

// Running is a provider node serving its protocols. Every field is set.
type Running struct {
	Core      *provider.Node
	Endpoints Endpoints

	ownCore bool // Close closes Core (Open made it)
	closers []func() error
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	once    sync.Once
	err     error
}

// Open opens the provider node configured by cfg and starts it (Start);
// Close stops the servers and closes the node.
func Open(ctx context.Context, cfg *config.Config, o provider.Options) (*Running, error) {
	core, err := provider.Open(ctx, cfg, o)
	if err != nil {
		return nil, err
	}
	r, err := Start(ctx, core)
	if err != nil {
		core.Close()
		return nil, err
	}
	r.ownCore = true
	return r, nil
}

// Start listens on the addresses of core's configuration (port 0 picks a
// free port), serves SMTP submission, IMAP, the HTTPS endpoints and the
// metrics listener, and runs the node's background work, until Close. The
// caller keeps ownership of core.
func Start(ctx context.Context, core *provider.Node) (*Running, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &Running{Core: core, cancel: cancel}
	if err := r.start(ctx); err != nil {
		r.Close()
		return nil, err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		core.Run(ctx)
	}()
	return r, nil
}

func (r *Running) start(ctx context.Context) error {
	n, cfg := r.Core, r.Core.Config
	tlsConf := n.TLSConfig()
	switch cfg.ESign.Revocation {
	case "", "check", "accept-and-record":
	default:
		return fmt.Errorf("esign.revocation: %q: want \"check\" or \"accept-and-record\"", cfg.ESign.Revocation)
	}

	// Between providers (docs/relay.md): with a directory, other providers'
	// domains go to the relay transport, and the reception point listens.
	if n.Directory != nil {
		cert := tlsConf.Certificates[0]
		out := &relay.Transport{Mailbox: n.Mailbox, Directory: n.Directory.Current, Cert: cert,
			HeloName: cfg.Provider.Domain, Now: n.Now, Log: n.Logger}
		r.closers = append(r.closers, out.Close) // its idle sessions to peers
		n.Queue.Router = queue.DomainRouter{Domain: cfg.Provider.Domain, Local: n.Mailbox.Local(), Other: out}
		rm := relay.NewMetrics(n.Metrics)
		n.Metrics.MustRegister(relay.AwaitingCollector(n.DB, n.Now))
		// Evidence this provider issues about other providers' messages goes
		// back to them (docs/relay.md, "Evidence that crosses").
		ret := &relay.Returner{Mailbox: n.Mailbox, Directory: n.Directory.Current, Cert: cert, HeloName: cfg.Provider.Domain,
			Now: n.Now, Owner: queueOwner(), Log: n.Logger, Metrics: rm}
		r.closers = append(r.closers, ret.Close)
		r.wg.Add(1)
		go func() { defer r.wg.Done(); ret.Run(ctx, 2*time.Second) }()
		alarm := &relay.Alarm{DB: n.DB, After: cfg.Federation.EvidenceAlarm.Duration, Directory: n.Directory.Current, Now: n.Now, Log: n.Logger, Metrics: rm}
		r.wg.Add(1)
		go func() { defer r.wg.Done(); alarm.Run(ctx, time.Minute) }()
		if cfg.Federation.RehberListen != "" {
			// Other providers' Rehberi queries: a listener of its own, with
			// client certificates pinned in the directory.
			ps := &http.Server{Handler: http.StripPrefix("/rehber/v1", rehberService(n, tlsConf).PeerHandler(n.Logger)),
				TLSConfig: rehber.PeerTLSConfig(tlsConf), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
			r.closers = append(r.closers, ps.Close)
			if err := r.listen("federation.rehber_listen", cfg.Federation.RehberListen, &r.Endpoints.Rehber,
				func(l net.Listener) error { return ps.ServeTLS(l, "", "") }); err != nil {
				return err
			}
		}
		if cfg.Federation.RelayListen != "" {
			rs := &relay.Server{Mailbox: n.Mailbox, Directory: n.Directory.Current, Trust: n.ESign, Cert: cert,
				Domain: cfg.Provider.Domain, Now: n.Now, Log: n.Logger, TSARoots: n.TSARoots, Metrics: rm}
			r.closers = append(r.closers, rs.Close)
			if err := r.listen("federation.relay_listen", cfg.Federation.RelayListen, &r.Endpoints.Relay, rs.Serve); err != nil {
				return err
			}
		}
	}

	// Notices by SMS and e-mail (docs/notices.md): queued in each
	// delivery's transaction, sent in the background.
	ns, err := noticeService(n)
	if err != nil {
		return err
	}
	if ns != nil {
		ns.Metrics = notice.NewMetrics(n.Metrics)
		n.Mailbox.Delivered = ns.Enqueue
		r.wg.Add(1)
		go func() { defer r.wg.Done(); ns.Run(ctx, 2*time.Second) }()
	}

	sub := submission.New(n.Mailbox, n.Accounts, n.ESign, tlsConf, submission.Options{
		Hostname: cfg.SMTP.Hostname, Domain: cfg.Provider.Domain, MaxMessageBytes: cfg.SMTP.MaxMessageBytes,
		MaxRecipients: cfg.SMTP.MaxRecipients, MaxTotalBytes: cfg.SMTP.MaxTotalBytes, Logger: n.Logger,
		Limits:  submission.Limits{MaxPerAddr: cfg.SMTP.MaxPerAddress},
		Metrics: submission.NewMetrics(n.Metrics), KnownDomain: n.KnownDomain,
		Revocation: submission.RevocationPolicy{Checker: revocation.New(revocation.Options{Now: n.Now, Write: n.Log.Write}),
			AcceptUnavailable: cfg.ESign.Revocation == "accept-and-record", AllowNoSource: cfg.ESign.AllowNoSource},
	})
	r.closers = append(r.closers, sub.Close)
	if err := r.listen("smtp.submission", cfg.SMTP.Submission, &r.Endpoints.Submission, sub.ServeSTARTTLS); err != nil {
		return err
	}
	if err := r.listen("smtp.submissions", cfg.SMTP.Submissions, &r.Endpoints.Submissions, sub.ServeTLS); err != nil {
		return err
	}

	im := imapd.New(n.Mailbox, n.Accounts, tlsConf, imapd.Options{
		MaxMessageBytes: cfg.SMTP.MaxMessageBytes, Logger: n.Logger, Hostname: cfg.SMTP.Hostname,
		Metrics: imapd.NewMetrics(n.Metrics)})
	r.closers = append(r.closers, im.Close)
	if err := r.listen("imap.listen", cfg.IMAP.Listen, &r.Endpoints.IMAP, im.ServeSTARTTLS); err != nil {
		return err
	}
	if err := r.listen("imap.listen_tls", cfg.IMAP.ListenTLS, &r.Endpoints.IMAPS, im.ServeTLS); err != nil {
		return err
	}

	hs := httpsServer(n, tlsConf, defaultHTTPSLimits, r.Endpoints, sub.AccessPoint) // after the mail listeners: autoconfig names their ports
	wh := &api.Webhooks{DB: n.DB, Now: n.Now, Owner: queueOwner(), Log: n.Logger}   // the API's webhook calls
	r.wg.Add(1)
	go func() { defer r.wg.Done(); wh.Run(ctx, 2*time.Second) }()
	r.wg.Add(1)
	go func() { // idempotency keys past their retention (docs/api.md)
		defer r.wg.Done()
		for t := time.NewTicker(time.Hour); ; {
			if _, err := n.Mailbox.ExpireIdempotencyKeys(ctx); err != nil && ctx.Err() == nil {
				n.Logger.Error("expire idempotency keys", "err", err)
			}
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
	r.closers = append(r.closers, hs.Close)
	if err := r.listen("http.listen", cfg.HTTP.Listen, &r.Endpoints.HTTPS, func(l net.Listener) error { return serveHTTPS(hs, l, defaultHTTPSLimits) }); err != nil {
		return err
	}

	if cfg.Metrics.Listen != "" {
		ms := operatorServer(n)
		r.closers = append(r.closers, ms.Close)
		if err := r.listen("metrics.listen", cfg.Metrics.Listen, &r.Endpoints.Metrics, ms.Serve); err != nil {
			return err
		}
	}
	return nil
}

// queueOwner names this process in queue leases: host and pid.
func queueOwner() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", h, os.Getpid())
}

// listen opens addr (the configuration key what) and serves it with serve
// until Close, recording the address it got in *got.
func (r *Running) listen(what, addr string, got *string, serve func(net.Listener) error) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	*got = l.Addr().String()
	r.closers = append(r.closers, func() error {
		// The server closes it too; a second close is harmless.
		if err := l.Close(); !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := serve(l); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			r.Core.Logger.Error("server stopped", "listener", what, "err", err)
		}
	}()
	return nil
}

// Close stops the servers and the background work (and closes the core
// when Open made it). It may be called more than once.
func (r *Running) Close() error {
	r.once.Do(func() {
		r.cancel()
		var errs []error
		for _, c := range r.closers {
			if err := c(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
				errs = append(errs, err)
			}
		}
		r.wg.Wait()
		if r.ownCore {
			errs = append(errs, r.Core.Close())
		}
		r.err = errors.Join(errs...)
	})
	return r.err
}
