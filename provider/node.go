package provider

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
	"github.com/kephs/kep/tsa"
)

// Admin is the administrative view of a provider: what commands that
// manage accounts and read the store need, and nothing that signs or
// serves. Every field is set by OpenAdmin.
type Admin struct {
	Config   *config.Config
	DB       *store.DB
	ESign    *identity.TrustStore
	Accounts *account.Service
}

// Close releases the store.
func (a *Admin) Close() error { return a.DB.Close() }

// Node is one provider node's core: its configuration, store, keys and
// services, with every field set by Open. The protocol front-ends that
// serve it are assembled above it (package node), never here.
type Node struct {
	*Admin

	Cert *pki.Issued // the provider's signing and TLS certificate
	// Retired are the certificates of earlier provider certificates
	// (keys/retired/, `kep keys rotate`): bundles of evidence they signed
	// may need them as intermediates.
	Retired      []*x509.Certificate
	Blobs        *blob.Store
	Log          *tlog.Log
	LogKey       string // the log's key set: current verifier key first, then retired ones (tlog.LoadSigner)
	Checkpointer *tlog.Checkpointer
	Issuer       *evidence.IssuerService
	Mailbox      *mailbox.Service
	Queue        *queue.Queue
	// Directory is the authority's provider directory in force, when
	// federation.directory is set (nil: this provider stands alone).
	Directory *directory.Keeper
	TSA       tlog.Stamper
	TSARoots  *x509.CertPool
	// Keys watches the provider certificate, the TSA and the log key:
	// the issuer asks it before every evidence (issue 9.3).
	Keys   *KeyWatch
	Logger *slog.Logger
	Now    func() time.Time
	// Metrics is the node's Prometheus registry: the services register
	// their metrics on it, and package node serves it. Never the global
	// default registry, so that several nodes may share a process.
	Metrics *prometheus.Registry
}

// OpenAdmin opens what administrative commands need: the store, the
// e-signature trust store and the account service.
func OpenAdmin(ctx context.Context, cfg *config.Config) (*Admin, error) {
	db, err := store.Open(ctx, cfg.DSN())
	if err != nil {
		return nil, err
	}
	trust, err := identity.LoadTrustStore(cfg.Paths(cfg.ESign.TrustAnchors)...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("esign.trust_anchors: %w", err)
	}
	if len(cfg.ESign.ESealVKNFields) > 0 {
		f, err := identity.ParseESealFields(cfg.ESign.ESealVKNFields)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("esign.eseal_vkn_fields: %w", err)
		}
		trust.SetESealFields(f)
	}
	a := &Admin{Config: cfg, DB: db, ESign: trust}
	a.Accounts = &account.Service{DB: db, Trust: trust, Provider: cfg.Provider.ID, Domain: cfg.Provider.Domain,
		Quota: cfg.Accounts.DefaultQuota, Limiter: account.NewLimiter(db, nil)}
	return a, nil
}

// Options adjust a node for tests and the demo.
type Options struct {
	Now    func() time.Time // the clock of evidence, deadlines and time stamps
	Logger *slog.Logger
	// Metrics, when set, is the registry the node's metrics go to; a new
	// one otherwise.
	Metrics *prometheus.Registry
}

// Open opens a whole node: store, content store, keys, the evidence log and
// its checkpoints, the time-stamp authority, the evidence issuer and the
// mailboxes. Run starts its background work; package node assembles the
// protocol servers over the node's services.
func Open(ctx context.Context, cfg *config.Config, o Options) (*Node, error) {
	a, err := OpenAdmin(ctx, cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{Admin: a, Logger: slog.Default()}
	if err := n.open(ctx, o); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) open(ctx context.Context, o Options) error {
	cfg := n.Config
	if o.Logger != nil {
		n.Logger = o.Logger
	}
	n.Now = o.Now
	if n.Now == nil {
		n.Now = time.Now
	}
	n.Accounts.Now = n.Now
	n.Metrics = o.Metrics
	if n.Metrics == nil {
		n.Metrics = prometheus.NewRegistry()
	}
	var err error
	if n.Cert, err = pki.LoadIssued(cfg.Path(cfg.Keys.Cert), cfg.Path(cfg.Keys.Key)); err != nil {
		return fmt.Errorf("keys.cert / keys.key: %w", err)
	}
	if n.Retired, err = retiredChains(cfg); err != nil {
		return fmt.Errorf("retired provider certificates: %w", err)
	}
	if n.Blobs, err = blob.Open(cfg.Path(cfg.Store.ContentDir)); err != nil {
		return err
	}
	signer, vkey, err := tlog.LoadSigner(cfg.Path(cfg.Keys.LogKey))
	if err != nil {
		return fmt.Errorf("keys.log_key: %w", err)
	}
	n.LogKey = vkey
	n.Keys = NewKeyWatch(n.Now, n.Logger, cfg.TSA.OutageTolerance.Duration)
	n.Keys.SetCert(KeyProvider, "provider certificate", n.Cert.Cert, n.Cert.Chain)
	if err := watchLogKey(n.Keys, cfg); err != nil {
		return err
	}
	if err := n.openTSA(); err != nil {
		return err
	}
	n.TSA = newStampMetrics(n.TSA, n.Metrics)
	n.Keys.Check(n.Now())
	if n.Log, err = tlog.Open(ctx, n.DB, cfg.Log.BatchSize); err != nil {
		return err
	}
	// The login back-off writes through the log's group commit, like every
	// frequent write: never racing the log's writer for SQLite's lock.
	n.Accounts.Limiter.Write = n.Log.Write
	n.Checkpointer = &tlog.Checkpointer{DB: n.DB, Log: n.Log, Origin: cfg.Log.Origin, Signer: signer, Stamper: n.TSA, Now: n.Now}
	evSigner, err := evidence.NewSigner(n.Cert.Key, n.Cert.Cert)
	if err != nil {
		return err
	}
	dict, err := evidence.EnsureDict(ctx, n.DB, evSigner)
	if err != nil {
		return err
	}
	n.Issuer = &evidence.IssuerService{Signer: evSigner, Log: n.Log, Now: n.Now, PolicyID: cfg.Provider.Policy, Dict: dict,
		Issuer: evidence.Issuer{Name: cfg.Provider.Name, Domain: cfg.Provider.Domain, Country: "TR"}, Metrics: evidence.NewMetrics(n.Metrics),
		Ready: n.Keys.Ready}
	loc, err := time.LoadLocation(cfg.Timing.TimeZone)
	if err != nil {
		return fmt.Errorf("timing.time_zone: %w", err)
	}
	n.Mailbox = &mailbox.Service{
		DB: n.DB, Blobs: n.Blobs, Issuer: n.Issuer, Accounts: n.Accounts, Domain: cfg.Provider.Domain, Provider: cfg.Provider.Name,
		Policy: mailbox.Policy{Standart: cfg.Timing.DeemedReadStandart.Duration, EYazisma: cfg.Timing.DeemedReadEYazisma.Duration,
			ETebligatDays: cfg.Timing.DeemedReadETebligat, Location: loc},
		SignerKey: n.Cert.Key, SignerCert: n.Cert.Cert, SignerChain: n.SigningChain(),
		Bundle: n.Bundle, Now: n.Now, Log: n.Logger, Metrics: mailbox.NewMetrics(n.Metrics),
	}
	n.Queue = &queue.Queue{DB: n.DB, Policy: queue.DefaultPolicy(), Commit: n.Log.Write, Now: n.Now, Log: n.Logger,
		Router: queue.DomainRouter{Domain: cfg.Provider.Domain, Local: n.Mailbox.Local(), Other: n.Mailbox.NoRoute()}}
	n.Mailbox.Queue = n.Queue
	if cfg.Federation.Directory != "" {
		src := cfg.Federation.Directory
		if !strings.HasPrefix(src, "https://") {
			src = cfg.Path(src)
		}
		n.Directory = &directory.Keeper{Source: src, AuthorityKeys: cfg.Federation.AuthorityKeys, DB: n.DB, Log: n.Logger, Now: n.Now}
		if err := n.Directory.Load(ctx); err != nil {
			return fmt.Errorf("federation.directory: %w", err)
		}
	}
	n.Metrics.MustRegister(logCollector{n}, mailbox.QueueCollector(n.Mailbox), keyCollector{n.Keys})
	return nil
}

// KnownDomain reports whether domain is a KEP domain a message can go to
// now: this provider's domain or a subdomain of it, or a domain of an
// active provider in the directory (kep-rules.md, "Closed system").
func (n *Node) KnownDomain(domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	own := n.Config.Provider.Domain
	if domain == own || strings.HasSuffix(domain, "."+own) {
		return true
	}
	if n.Directory == nil {
		return false
	}
	d := n.Directory.Current()
	if d == nil {
		return false
	}
	p := d.ProviderFor(domain)
	return p != nil && p.Active(n.Now())
}

// SigningChain is the provider certificate's chain as bundles carry it:
// the intermediates, not the root (the verifier brings the root).
func (n *Node) SigningChain() []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range n.Cert.Chain {
		if !isSelfSigned(c) {
			out = append(out, c)
		}
	}
	return out
}

func isSelfSigned(c *x509.Certificate) bool {
	return string(c.RawIssuer) == string(c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// DevTSAPolicy is the policy OID of the development TSA (under the
// private-use arc of the kep project; not a real policy).
var DevTSAPolicy = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1, 1}

func (n *Node) openTSA() error {
	cfg := n.Config
	roots := x509.NewCertPool()
	for _, p := range cfg.Paths(cfg.TSA.TrustAnchors) {
		certs, err := pki.LoadCertsPEM(p)
		if err != nil {
			return fmt.Errorf("tsa.trust_anchors: %w", err)
		}
		for _, c := range certs {
			roots.AddCert(c)
		}
	}
	n.TSARoots = roots
	if cfg.TSA.URL != "" {
		c := tsa.NewClient(cfg.TSA.URL)
		c.Username, c.Password, c.Roots = cfg.TSA.Username, cfg.TSA.Password, roots
		n.TSA = watchedStamper{clientStamper{c}, n.Keys}
		return nil
	}
	is, err := pki.LoadIssued(cfg.Path(cfg.TSA.DevCert), cfg.Path(cfg.TSA.DevKey))
	if err != nil {
		return fmt.Errorf("tsa.url is empty and the development TSA cannot start: %w", err)
	}
	srv, err := tsa.NewServer(is, DevTSAPolicy, n.Now)
	if err != nil {
		return err
	}
	n.Keys.SetCert(KeyTSA, "TSA certificate", is.Cert, is.Chain)
	n.TSA = watchedStamper{serverStamper{srv}, n.Keys}
	return nil
}

// clientStamper time-stamps through an RFC 3161 TSA over HTTP.
type clientStamper struct{ c *tsa.Client }

func (s clientStamper) stamp(ctx context.Context, data []byte) ([]byte, time.Time, *x509.Certificate, error) {
	tok, err := s.c.TimestampData(ctx, data)
	if err != nil {
		return nil, time.Time{}, nil, err
	}
	return tok.ResponseDER(), tok.Time, tok.Signer(nil), nil
}

// serverStamper time-stamps with the in-process development TSA.
type serverStamper struct{ s *tsa.Server }

func (s serverStamper) stamp(_ context.Context, data []byte) ([]byte, time.Time, *x509.Certificate, error) {
	sum := sha256.Sum256(data)
	tok, err := s.s.StampDigest(crypto.SHA256, sum[:])
	if err != nil {
		return nil, time.Time{}, nil, err
	}
	return tok.ResponseDER(), tok.Time, tok.Signer(nil), nil
}

// Bundle makes the evidence bundle of the evidence at leaf index seq, with
// the first checkpoint that covers it (the same bundle every time).
func (n *Node) Bundle(ctx context.Context, seq int64) ([]byte, error) {
	return n.bundle(ctx, seq, false)
}

// ArchiveBundle makes the bundle of an evidence with the newest checkpoint
// and all its later time stamps: the one to keep for the long term.
func (n *Node) ArchiveBundle(ctx context.Context, seq int64) ([]byte, error) {
	return n.bundle(ctx, seq, true)
}

func (n *Node) bundle(ctx context.Context, seq int64, latest bool) ([]byte, error) {
	inter := n.SigningChain()
	for _, c := range n.Retired {
		if !isSelfSigned(c) {
			inter = append(inter, c)
		}
	}
	b, err := evidence.Assemble(ctx, n.DB.Q(), seq, inter, n.LogKey, latest)
	if err != nil {
		return nil, err
	}
	return b.Marshal()
}

// Checkpoint issues a checkpoint now if the log grew and hands the covered
// evidence to the Delil courier.
func (n *Node) Checkpoint(ctx context.Context) (*tlog.Checkpoint, error) {
	cp, err := n.Checkpointer.Catchup(ctx, n.Log.Size())
	if err != nil {
		return nil, err
	}
	latest, err := tlog.LatestCheckpoint(ctx, n.DB.Q())
	if err == nil {
		if _, err := n.Mailbox.Courier(ctx, latest.Size); err != nil {
			return cp, err
		}
	}
	return cp, nil
}

// Run does the node's background work until ctx ends: checkpoints and the
// Delil courier, delivery, and the deemed-read timers.
func (n *Node) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() { defer wg.Done(); n.Queue.Run(ctx, 2*time.Second) }()
	go func() { defer wg.Done(); n.Mailbox.RunTimers(ctx, 5*time.Second) }()
	if n.Directory != nil {
		wg.Add(1)
		go func() { defer wg.Done(); n.Directory.Run(ctx, n.Config.Federation.Refresh.Duration) }()
	}
	interval := n.Config.Log.CheckpointInterval.Duration
	if interval <= 0 {
		interval = 2 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.Keys.Check(n.Now())
		// A failing time stamp is the watch's to report (once, then at the
		// tolerance's end), not a line per tick: the checkpoint waits.
		var se *StampError
		if _, err := n.Checkpoint(ctx); err != nil && ctx.Err() == nil && !errors.As(err, &se) {
			n.Logger.Error("checkpoint", "err", err)
		}
	}
}

// Close releases the node's resources.
func (n *Node) Close() error {
	if n.Log != nil {
		n.Log.Close()
	}
	return n.Admin.Close()
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
