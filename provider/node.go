package provider

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
	"github.com/kephs/kep/tsa"
)

// Node is one provider node: its configuration, store and services.
type Node struct {
	Config   *config.Config
	DB       *store.DB
	ESign    *identity.TrustStore
	Accounts *account.Service

	// Set by Open (not by OpenAdmin).
	Cert         *pki.Issued // the provider's signing and TLS certificate
	Blobs        *blob.Store
	Log          *tlog.Log
	LogKey       string // the log's verifier key (note format)
	Checkpointer *tlog.Checkpointer
	Issuer       *evidence.IssuerService
	Mailbox      *mailbox.Service
	Queue        *queue.Queue
	TSA          tlog.Stamper
	DevTSA       *tsa.Server // the in-process development TSA, when tsa.url is empty
	TSARoots     *x509.CertPool
	Logger       *slog.Logger
	Now          func() time.Time
}

// OpenAdmin opens what administrative commands need: the store, the
// e-signature trust store and the account service.
func OpenAdmin(ctx context.Context, cfg *config.Config) (*Node, error) {
	db, err := store.Open(ctx, cfg.DSN())
	if err != nil {
		return nil, err
	}
	trust, err := identity.LoadTrustStore(cfg.Paths(cfg.ESign.TrustAnchors)...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("esign.trust_anchors: %w", err)
	}
	n := &Node{Config: cfg, DB: db, ESign: trust, Logger: slog.Default()}
	n.Accounts = &account.Service{DB: db, Trust: trust, Provider: cfg.Provider.ID, Domain: cfg.Provider.Domain,
		Quota: cfg.Accounts.DefaultQuota, Limiter: account.NewLimiter(nil)}
	return n, nil
}

// Options adjust a node for tests and the demo.
type Options struct {
	Now    func() time.Time // the clock of evidence, deadlines and time stamps
	Logger *slog.Logger
}

// Open opens a whole node: store, content store, keys, the evidence log and
// its checkpoints, the time-stamp authority, the evidence issuer and the
// mailboxes. Run starts its background work; the protocol servers are
// started by their packages over the node's services.
func Open(ctx context.Context, cfg *config.Config, o Options) (*Node, error) {
	n, err := OpenAdmin(ctx, cfg)
	if err != nil {
		return nil, err
	}
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
	var err error
	if n.Cert, err = pki.LoadIssued(cfg.Path(cfg.Keys.Cert), cfg.Path(cfg.Keys.Key)); err != nil {
		return fmt.Errorf("keys.cert / keys.key: %w", err)
	}
	if n.Blobs, err = blob.Open(cfg.Path(cfg.Store.ContentDir)); err != nil {
		return err
	}
	signer, vkey, err := tlog.LoadSigner(cfg.Path(cfg.Keys.LogKey))
	if err != nil {
		return fmt.Errorf("keys.log_key: %w", err)
	}
	n.LogKey = vkey
	if err := n.openTSA(); err != nil {
		return err
	}
	if n.Log, err = tlog.Open(ctx, n.DB, cfg.Log.BatchSize); err != nil {
		return err
	}
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
		Issuer: evidence.Issuer{Name: cfg.Provider.Name, Domain: cfg.Provider.Domain, Country: "TR"}}
	loc, err := time.LoadLocation(cfg.Timing.TimeZone)
	if err != nil {
		return fmt.Errorf("timing.time_zone: %w", err)
	}
	n.Mailbox = &mailbox.Service{
		DB: n.DB, Blobs: n.Blobs, Issuer: n.Issuer, Accounts: n.Accounts, Domain: cfg.Provider.Domain, Provider: cfg.Provider.Name,
		Policy: mailbox.Policy{Standart: cfg.Timing.DeemedReadStandart.Duration, EYazisma: cfg.Timing.DeemedReadEYazisma.Duration,
			ETebligatDays: cfg.Timing.DeemedReadETebligat, Location: loc},
		SignerKey: n.Cert.Key, SignerCert: n.Cert.Cert, SignerChain: n.SigningChain(),
		Bundle: n.Bundle, Now: n.Now, Log: n.Logger,
	}
	n.Queue = &queue.Queue{DB: n.DB, Policy: queue.DefaultPolicy(), Commit: queue.GroupCommit(n.Log), Now: n.Now, Log: n.Logger,
		Router: queue.DomainRouter{Domain: cfg.Provider.Domain, Local: n.Mailbox.Local(), Other: n.Mailbox.NoRoute()}}
	n.Mailbox.Queue = n.Queue
	return nil
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
	return c.CheckSignatureFrom(c) == nil && string(c.RawIssuer) == string(c.RawSubject)
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
		n.TSA = clientStamper{c}
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
	n.DevTSA = srv
	n.TSA = serverStamper{srv}
	return nil
}

// clientStamper time-stamps through an RFC 3161 TSA over HTTP.
type clientStamper struct{ c *tsa.Client }

func (s clientStamper) Stamp(ctx context.Context, data []byte) ([]byte, time.Time, error) {
	tok, err := s.c.TimestampData(ctx, data)
	if err != nil {
		return nil, time.Time{}, err
	}
	return tok.ResponseDER(), tok.Time, nil
}

// serverStamper time-stamps with the in-process development TSA.
type serverStamper struct{ s *tsa.Server }

func (s serverStamper) Stamp(_ context.Context, data []byte) ([]byte, time.Time, error) {
	sum := sha256.Sum256(data)
	tok, err := s.s.StampDigest(crypto.SHA256, sum[:])
	if err != nil {
		return nil, time.Time{}, err
	}
	return tok.ResponseDER(), tok.Time, nil
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
	b, err := evidence.Assemble(ctx, n.DB.Q(), seq, n.SigningChain(), n.LogKey, latest)
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
		if _, err := n.Checkpoint(ctx); err != nil && ctx.Err() == nil {
			n.Logger.Error("checkpoint", "err", err)
		}
	}
}

// Close releases the node's resources.
func (n *Node) Close() error {
	if n.Log != nil {
		n.Log.Close()
	}
	return n.DB.Close()
}
