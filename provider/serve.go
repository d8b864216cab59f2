package provider

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/submission"
	"github.com/kephs/kep/tlog"
)

// Endpoints are the addresses a running node listens on.
type Endpoints struct {
	Submission  string `json:"smtp_submission"`  // 587-style, STARTTLS
	Submissions string `json:"smtp_submissions"` // 465-style, implicit TLS
	IMAP        string `json:"imap,omitempty"`   // 143-style, STARTTLS
	IMAPS       string `json:"imaps,omitempty"`  // 993-style, implicit TLS
	HTTPS       string `json:"https"`            // log endpoints (checkpoint, tiles)
}

// Running is a node serving its protocols.
type Running struct {
	Endpoints Endpoints
	closers   []func() error
	wg        sync.WaitGroup
	cancel    context.CancelFunc
}

// Close stops the servers and the background work.
func (r *Running) Close() error {
	r.cancel()
	var errs []error
	for _, c := range r.closers {
		if err := c(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	r.wg.Wait()
	return errors.Join(errs...)
}

// TLSConfig is the provider's server TLS configuration: its certificate
// and chain, TLS 1.2 at least.
func (n *Node) TLSConfig() *tls.Config {
	chain := [][]byte{n.Cert.Cert.Raw}
	for _, c := range n.Cert.Chain {
		chain = append(chain, c.Raw)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: n.Cert.Key, Leaf: n.Cert.Cert}},
		MinVersion:   tls.VersionTLS12,
	}
}

// ProtocolServer is a protocol front-end the node can run (IMAP is one).
type ProtocolServer interface {
	ServeSTARTTLS(l net.Listener) error
	ServeTLS(l net.Listener) error
	Close() error
}

// IMAPFactory, when set, makes the IMAP server of a node. Package demo sets
// it for the kep binary; this package cannot import imapd, whose tests
// start provider nodes.
var IMAPFactory func(n *Node) ProtocolServer

// Start listens on the configured addresses (port 0 picks a free port),
// serves SMTP submission, IMAP and the HTTPS endpoints, and runs the node's
// background work, until Close.
func (n *Node) Start(ctx context.Context) (*Running, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &Running{cancel: cancel}
	cfg := n.Config
	fail := func(err error) (*Running, error) {
		r.Close()
		return nil, err
	}
	tlsConf := n.TLSConfig()
	listen := func(what, addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: listen on %s: %w", what, addr, err)
		}
		return l, nil
	}
	sub := submission.New(n.Mailbox, n.Accounts, n.ESign, tlsConf, submission.Options{
		Hostname: cfg.SMTP.Hostname, Domain: cfg.Provider.Domain, MaxMessageBytes: cfg.SMTP.MaxMessageBytes,
		MaxRecipients: cfg.SMTP.MaxRecipients, MaxTotalBytes: cfg.SMTP.MaxTotalBytes, Logger: n.Logger,
	})
	r.closers = append(r.closers, sub.Close)
	serve := func(fn func(net.Listener) error, l net.Listener) {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			fn(l)
		}()
	}
	l, err := listen("smtp.submission", cfg.SMTP.Submission)
	if err != nil {
		return fail(err)
	}
	r.Endpoints.Submission = l.Addr().String()
	serve(sub.ServeSTARTTLS, l)
	if l, err = listen("smtp.submissions", cfg.SMTP.Submissions); err != nil {
		return fail(err)
	}
	r.Endpoints.Submissions = l.Addr().String()
	serve(sub.ServeTLS, l)

	if IMAPFactory != nil {
		im := IMAPFactory(n)
		r.closers = append(r.closers, im.Close)
		if l, err = listen("imap.listen", cfg.IMAP.Listen); err != nil {
			return fail(err)
		}
		r.Endpoints.IMAP = l.Addr().String()
		serve(im.ServeSTARTTLS, l)
		if l, err = listen("imap.listen_tls", cfg.IMAP.ListenTLS); err != nil {
			return fail(err)
		}
		r.Endpoints.IMAPS = l.Addr().String()
		serve(im.ServeTLS, l)
	}

	mux := http.NewServeMux()
	mux.Handle("/log/", http.StripPrefix("/log", tlog.Handler(n.DB, func(ctx context.Context, start, end int64) ([][]byte, error) {
		return evidence.Entries(ctx, n.DB.Q(), start, end)
	})))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	hs := &http.Server{Handler: mux, TLSConfig: tlsConf, ReadHeaderTimeout: 10 * time.Second}
	if l, err = listen("http.listen", cfg.HTTP.Listen); err != nil {
		return fail(err)
	}
	r.Endpoints.HTTPS = l.Addr().String()
	r.closers = append(r.closers, hs.Close)
	serve(func(l net.Listener) error { return hs.ServeTLS(l, "", "") }, l)

	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		n.Run(ctx)
	}()
	return r, nil
}
