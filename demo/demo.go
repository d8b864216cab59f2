// Package demo is in charge of `kep demo`: a complete KEP world on one
// machine with no set-up — a development e-signature CA with sample signer
// certificates and its CRL and OCSP responder, a development RFC 3161
// time-stamp authority served over HTTP, the authority and its signed
// provider directory, and two federated providers, hs01.kep.tr and
// hs02.kep.tr, on loopback ports. hs01 holds sample accounts (two persons,
// a company with a main operator and a read-only sub-operator, and a
// receive-only account), hs02 a person. It writes everything a person
// or a script needs into <dir>/demo.json, and reuses the directory's state
// when started again. Tests start the same world with one call.
package demo

import (
	"context"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/node"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/tlog"
	"github.com/kephs/kep/tsa"
)

// Info is the content of demo.json: the stable way for people and scripts
// to find every endpoint, credential and trust anchor of a demo world.
// docs/demo.md describes each field.
type Info struct {
	Version    int            `json:"version"` // 2: two providers and the authority (1: hs01 alone)
	Dir        string         `json:"dir"`
	PID        int            `json:"pid"` // the process running the world, while it runs
	Providers  []ProviderInfo `json:"providers"`
	TSA        TSAInfo        `json:"tsa"`
	Revocation RevocationInfo `json:"revocation"` // the e-signature CA's CRL and OCSP responder
	Anchors    AnchorsInfo    `json:"trust_anchors"`
	Directory  DirectoryInfo  `json:"directory"` // the authority's signed provider directory
	Accounts   []AccountInfo  `json:"accounts"`
	Operators  []OperatorInfo `json:"operators"`
	// ReplacedPorts lists the fixed ports (docs/demo.md, "Ports") that
	// were taken when the world was created, and the ports it uses
	// instead, for good.
	ReplacedPorts []PortChange `json:"replaced_ports,omitempty"`
}

// PortChange is an endpoint of a world that is not where it was expected.
type PortChange struct {
	Service string `json:"service"` // e.g. "SMTP submission (STARTTLS)"
	Was     string `json:"was"`     // the fixed port, or the previous run's address
	Now     string `json:"now"`     // the address the world uses
}

// ProviderInfo describes one provider of the world.
type ProviderInfo struct {
	ID          string         `json:"id"`
	Domain      string         `json:"domain"`
	Config      string         `json:"config"`
	Endpoints   node.Endpoints `json:"endpoints"`
	Certificate string         `json:"certificate"` // the provider's signing and TLS certificate (PEM)
	CA          string         `json:"ca"`          // the CA that issued it: trust anchor for evidence and TLS
	LogKey      string         `json:"log_key"`     // verifier key of the evidence log (C2SP signed note)
	LogURL      string         `json:"log_url"`     // C2SP tlog-tiles base URL (checkpoint, tile/…)
	// SMSFile is the development SMS gateway's file (notices.sms_file):
	// each SMS notice is one JSON line {"at", "to", "text"} (docs/notices.md).
	SMSFile string `json:"sms_file,omitempty"`
}

// DirectoryInfo describes the authority and its signed provider
// directory, which federates the world's providers (docs/relay.md).
type DirectoryInfo struct {
	File         string `json:"file"`          // the signed directory both providers load (federation.directory)
	AuthorityKey string `json:"authority_key"` // the authority's note verifier key (federation.authority_keys)
	AuthorityDir string `json:"authority_dir"` // for `kep authority show --dir`
}

// TSAInfo describes the development time-stamp authority.
type TSAInfo struct {
	URL         string `json:"url"`
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
}

// RevocationInfo describes the development e-signature CA's CRL
// distribution point and OCSP responder, which its certificates name.
type RevocationInfo struct {
	Addr string `json:"addr"` // host:port
	CRL  string `json:"crl"`
	OCSP string `json:"ocsp"`
}

// AnchorsInfo lists the trust anchors.
type AnchorsInfo struct {
	ESignCA     string   `json:"esign_ca"`     // e-signature CA that issued the users' certificates
	TSACA       string   `json:"tsa_ca"`       // CA of the TSA's certificate
	ProviderCAs []string `json:"provider_cas"` // CAs of the providers' certificates, one per provider
	// Dir is a directory for `kep verify --anchors` that verifies evidence
	// from either provider: provider-ca.pem holds both providers' CAs and
	// log.pub both log keys, one a line.
	Dir string `json:"dir"`
}

// AccountInfo describes one sample account and its holder's credentials.
type AccountInfo struct {
	Key            string `json:"key"`      // short name used by `kep send --as`
	Provider       string `json:"provider"` // the id of the provider holding the account
	Address        string `json:"address"`
	Kind           string `json:"kind"`
	Capability     string `json:"capability"`
	Name           string `json:"name"`
	Identity       string `json:"identity"`
	Username       string `json:"username,omitempty"` // empty for accounts used only through operators
	Password       string `json:"password,omitempty"`
	Certificate    string `json:"certificate,omitempty"`
	PrivateKey     string `json:"private_key,omitempty"`
	PKCS12         string `json:"pkcs12,omitempty"`
	PKCS12Password string `json:"pkcs12_password,omitempty"`
	NoticeSMS      string `json:"notice_sms,omitempty"` // the (fictitious) mobile number its SMS notices go to
	// ESeal is a company's e-seal (mali mühür), which its operators with
	// the send grant may seal messages with (demo/eseal.go).
	ESeal *ESealInfo `json:"eseal,omitempty"`
}

// OperatorInfo describes one operator of a company account.
type OperatorInfo struct {
	Key            string   `json:"key"`
	Account        string   `json:"account"`
	Name           string   `json:"name"`
	TCKN           string   `json:"tckn"`
	Role           string   `json:"role"`
	Grants         []string `json:"grants"`
	Username       string   `json:"username"`
	Password       string   `json:"password"`
	Certificate    string   `json:"certificate"`
	PrivateKey     string   `json:"private_key"`
	PKCS12         string   `json:"pkcs12"`
	PKCS12Password string   `json:"pkcs12_password"`
}

// DefaultDir is where `kep demo` keeps its world when no --dir is given.
func DefaultDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kep-demo")
	}
	return filepath.Join(os.TempDir(), "kep-demo")
}

// Options tune a world.
type Options struct {
	// Ports picks fixed ports (the first run of `kep demo`, so that the
	// printed tour stays valid); false picks free ports (tests).
	Ports bool
	// Quota overrides the default mailbox quota of a new world (bytes).
	Quota  int64
	Logger *slog.Logger
	// Only runs this provider (its id, e.g. "hs01") with the world's
	// shared services; another runs it with `kep serve --config
	// DIR/<id>/kep.toml` (tests stop and start one provider alone).
	Only string
	// Now, when set, is the world's clock: of evidence, sessions, time
	// stamps and revocation answers (scripts/screenshots fixes it, so
	// that the pictures show the same dates). It must be after the
	// world's certificates were made; nil is time.Now.
	Now func() time.Time
}

// World is a running demo world.
type World struct {
	Info *Info
	// Created is true when this start made the world.
	Created bool
	// Ready is how long Start took, from its call until every server
	// listened (reported, not promised: issue 11 asks for under 5 s).
	Ready time.Duration
	// Changed lists the endpoints that differ from the previous run's
	// demo.json (a port edited in kep.toml, say): whoever followed the
	// earlier tour must be told.
	Changed []PortChange
	Nodes   []*provider.Node // the providers' cores
	running []*node.Running
	tsaSrv  *http.Server
	revSrv  *pki.RevocationServer
}

// Close stops everything.
func (w *World) Close() error {
	var errs []error
	if w.Info != nil && w.Info.PID == os.Getpid() {
		w.Info.PID = 0
		errs = append(errs, writeInfo(w.Info))
	}
	for _, r := range w.running {
		errs = append(errs, r.Close())
	}
	if w.tsaSrv != nil {
		errs = append(errs, w.tsaSrv.Close())
	}
	if w.revSrv != nil {
		errs = append(errs, w.revSrv.Close())
	}
	return errors.Join(errs...)
}

// Fixed ports (docs/demo.md, "Ports"): the world's shared services, then
// each provider's, in the order of providerServices.
const (
	tsaPort    = 10318
	revPort    = 10480
	tsaService = "time-stamp authority"
	revService = "CRL and OCSP responder"
)

// providerServices names a provider's listeners as the tour and
// docs/demo.md name them.
var providerServices = []string{"SMTP submission (STARTTLS)", "SMTP submission (TLS)", "IMAP (STARTTLS)", "IMAP (TLS)",
	"HTTPS (evidence log)", "metrics", "relay (mutual TLS)", "KEP Rehberi (mutual TLS)"}

// demoProviders are the providers of a world, with their fixed ports in
// the order of providerServices.
var demoProviders = []struct {
	id, name string
	ports    []int
}{
	{"hs01", "HS01 KEP (demo)", []int{10587, 10465, 10143, 10993, 10443, 19464, 10025, 10444}},
	{"hs02", "HS02 KEP (demo)", []int{20587, 20465, 20143, 20993, 20443, 29464, 20025, 20444}},
}

// endpoints lists a world's addresses by service, for comparing runs.
func endpoints(info *Info) map[string]string {
	m := map[string]string{}
	for _, p := range info.Providers {
		e := p.Endpoints
		for i, addr := range []string{e.Submission, e.Submissions, e.IMAP, e.IMAPS, e.HTTPS, e.Metrics, e.Relay, e.Rehber} {
			if addr != "" {
				m[p.ID+" "+providerServices[i]] = addr
			}
		}
	}
	m[tsaService] = info.TSA.URL
	m[revService] = info.Revocation.Addr
	return m
}

// pickAddr returns the fixed port when asked and free, else a free port.
// Free ports are drawn at random below the kernel's ephemeral range
// (32768 and up on Linux), not from it with port 0: a world's ports stay
// closed between their choice and the nodes' start, and in that second
// the kernel hands ephemeral ports to other tests' connections.
func pickAddr(fixed bool, port int) string {
	if fixed {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			l.Close()
			return l.Addr().String()
		}
	}
	for range 100 {
		p := 11000 + rand.IntN(21000) // 11000–31999
		if isFixed(p) {
			continue
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			return l.Addr().String()
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

// isFixed reports whether p is one of the world's fixed ports.
func isFixed(p int) bool {
	if p == tsaPort || p == revPort {
		return true
	}
	for _, dp := range demoProviders {
		for _, q := range dp.ports {
			if p == q {
				return true
			}
		}
	}
	return false
}

// Start creates the world in dir (or reuses it) and starts it.
func Start(ctx context.Context, dir string, o Options) (*World, error) {
	began := time.Now()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	dir = abs
	info, err := load(dir)
	created := false
	if errors.Is(err, os.ErrNotExist) {
		info, err = create(ctx, dir, o)
		created = true
	}
	if err != nil {
		return nil, err
	}
	before := endpoints(info)
	w := &World{Info: info, Created: created}
	if err := w.start(ctx, o); err != nil {
		w.Close()
		return nil, err
	}
	if !created {
		after := endpoints(info)
		var names []string
		for name := range after {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if was := before[name]; was != "" && was != after[name] {
				w.Changed = append(w.Changed, PortChange{Service: name, Was: was, Now: after[name]})
			}
		}
	}
	w.Ready = time.Since(began)
	return w, nil
}

func load(dir string) (*Info, error) {
	b, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err != nil {
		return nil, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("%s/demo.json is damaged (%v); remove the directory to start afresh", dir, err)
	}
	if info.Version < 2 {
		return nil, fmt.Errorf("%s holds a demo world made by an earlier kep, with provider hs01 alone; "+
			"today's world has two federated providers (hs01, hs02) and the authority: remove the directory (rm -r %s) and run kep demo again", dir, dir)
	}
	return &info, nil
}

func (w *World) start(ctx context.Context, o Options) error {
	info := w.Info
	// The TSA first: providers time-stamp their checkpoints through it.
	tsaIs, err := pki.LoadIssued(info.TSA.Certificate, filepath.Join(info.Dir, "tsa", "tsa.key"))
	if err != nil {
		return err
	}
	srv, err := tsa.NewServer(tsaIs, provider.DevTSAPolicy, o.Now)
	if err != nil {
		return err
	}
	u := info.TSA.URL
	host := u[len("http://"):]
	if i := len(host) - 1; host[i] == '/' {
		host = host[:i]
	}
	l, err := net.Listen("tcp", host)
	if err != nil {
		return fmt.Errorf("the demo's time-stamp authority cannot listen on %s (is another kep demo running?): %w", host, err)
	}
	w.tsaSrv = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go w.tsaSrv.Serve(l)
	// The e-signature CA's CRL and OCSP responder, at the address its
	// certificates name.
	if info.Revocation.Addr != "" {
		ca, err := pki.LoadCA(filepath.Join(info.Dir, "hs01", "keys", "esign-ca.crt"), filepath.Join(info.Dir, "hs01", "keys", "esign-ca.key"))
		if err != nil {
			return err
		}
		if w.revSrv, err = pki.DevRevocationServer(ca, info.Revocation.Addr, o.Now); err != nil {
			return fmt.Errorf("the demo's CRL and OCSP responder cannot listen on %s (is another kep demo running?): %w", info.Revocation.Addr, err)
		}
	}
	for i := range info.Providers {
		p := &info.Providers[i]
		if o.Only != "" && p.ID != o.Only {
			continue
		}
		cfg, err := config.Load(p.Config)
		if err != nil {
			return err
		}
		r, err := node.Open(ctx, cfg, provider.Options{Logger: o.Logger, Now: o.Now})
		if err != nil {
			return fmt.Errorf("%s: %w (is another kep demo running?)", p.Domain, err)
		}
		w.running = append(w.running, r)
		w.Nodes = append(w.Nodes, r.Core)
		p.Endpoints = r.Endpoints
		p.LogURL = "https://" + r.Endpoints.HTTPS + "/log/"
	}
	if o.Only != "" && len(w.running) == 0 {
		return fmt.Errorf("this world has no provider %q (it has hs01 and hs02)", o.Only)
	}
	info.PID = os.Getpid()
	return writeInfo(info)
}

func writeInfo(info *Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(info.Dir, "demo.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(info.Dir, "demo.json"))
}

// create makes a new world in dir: CAs, the TSA, the authority, both
// providers and their accounts, and the signed directory listing them.
func create(ctx context.Context, dir string, o Options) (*Info, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty and has no demo.json; choose another --dir", dir)
	}
	info := &Info{Version: 2, Dir: dir}
	// pick takes the fixed port of a service (o.Ports) and records a
	// replacement when it is taken.
	pick := func(service string, port int) string {
		addr := pickAddr(o.Ports, port)
		if want := fmt.Sprintf("127.0.0.1:%d", port); o.Ports && addr != want {
			info.ReplacedPorts = append(info.ReplacedPorts, PortChange{Service: service, Was: want, Now: addr})
		}
		return addr
	}
	const tenYears = 10 * 365 * 24 * time.Hour
	esign, err := pki.NewRootCA(pkix.Name{Country: []string{"TR"}, Organization: []string{"KEP Demo"}, CommonName: "Demo E-Signature CA (not qualified)"}, pki.ECDSAP256, tenYears)
	if err != nil {
		return nil, err
	}
	tsaCA, err := pki.NewRootCA(pkix.Name{Country: []string{"TR"}, Organization: []string{"KEP Demo"}, CommonName: "Demo Time-Stamping CA"}, pki.ECDSAP256, tenYears)
	if err != nil {
		return nil, err
	}
	tsaCert, err := tsaCA.IssueTSA("Demo TSA", pki.ECDSAP256)
	if err != nil {
		return nil, err
	}
	if _, _, _, err := tsaCert.WriteFiles(filepath.Join(dir, "tsa", "tsa"), ""); err != nil {
		return nil, err
	}
	anchors := filepath.Join(dir, "anchors")
	if err := os.MkdirAll(anchors, 0o700); err != nil {
		return nil, err
	}
	write := func(name string, data []byte) (string, error) {
		p := filepath.Join(anchors, name)
		return p, os.WriteFile(p, data, 0o644)
	}
	if info.Anchors.ESignCA, err = write("esign-ca.pem", pki.CertPEM(esign.Cert)); err != nil {
		return nil, err
	}
	if info.Anchors.TSACA, err = write("tsa-ca.pem", pki.CertPEM(tsaCA.Cert)); err != nil {
		return nil, err
	}
	info.Anchors.Dir = anchors
	tsaAddr := pick(tsaService, tsaPort)
	info.TSA = TSAInfo{URL: "http://" + tsaAddr + "/", Certificate: filepath.Join(dir, "tsa", "tsa.crt"), CA: info.Anchors.TSACA}
	revAddr := pick(revService, revPort)
	esign.CRLURL, esign.OCSPURL = "http://"+revAddr+"/crl", "http://"+revAddr+"/ocsp"
	info.Revocation = RevocationInfo{Addr: revAddr, CRL: esign.CRLURL, OCSP: esign.OCSPURL}

	// The authority, whose signed directory federates the providers
	// (docs/relay.md, "The provider directory").
	auth, err := directory.InitAuthority(filepath.Join(dir, "authority"), "KEP-Demo-Authority")
	if err != nil {
		return nil, err
	}
	authKey, err := auth.VerifierKey()
	if err != nil {
		return nil, err
	}
	info.Directory = DirectoryInfo{File: filepath.Join(auth.Dir, directory.PublishedFile), AuthorityKey: authKey, AuthorityDir: auth.Dir}

	// Both providers share the e-signature CA and the one demo TSA (over
	// HTTP, tsa.url), so the one TSA CA in each provider's
	// tsa.trust_anchors also verifies the other's returned evidence.
	var provCAs, logKeys []byte
	cfgs := map[string]*config.Config{}
	for _, dp := range demoProviders {
		var addrs [8]string
		for i, port := range dp.ports {
			addrs[i] = pick(dp.id+" "+providerServices[i], port)
		}
		cfg, err := provider.Init(filepath.Join(dir, dp.id), provider.InitOptions{Provider: dp.id, Name: dp.name, ESignCA: esign, TSACA: tsaCA,
			Config: func(c *config.Config) {
				c.TSA.URL = info.TSA.URL
				c.SMTP.Submission, c.SMTP.Submissions = addrs[0], addrs[1]
				c.IMAP.Listen, c.IMAP.ListenTLS = addrs[2], addrs[3]
				c.HTTP.Listen, c.Metrics.Listen = addrs[4], addrs[5]
				c.Federation.Directory = info.Directory.File
				c.Federation.AuthorityKeys = []string{authKey}
				c.Federation.RelayListen, c.Federation.RehberListen = addrs[6], addrs[7]
				c.Log.CheckpointInterval = config.Duration{Duration: time.Second}
				c.SMTP.Hostname = "localhost"
				c.SMTP.MaxPerAddress = 300      // kep bench loads a demo from one address, up to -c 256
				c.Notices.SMSFile = "sms.jsonl" // in the provider's directory
				if o.Quota > 0 {
					c.Accounts.DefaultQuota = o.Quota
				}
			}})
		if err != nil {
			return nil, err
		}
		cfgs[dp.id] = cfg
		provCA := cfg.Path("keys/provider-ca.crt")
		pcaBytes, err := os.ReadFile(provCA)
		if err != nil {
			return nil, err
		}
		provCAs = append(provCAs, pcaBytes...)
		certs, err := pki.LoadCertsPEM(cfg.Path(cfg.Keys.Cert))
		if err != nil {
			return nil, err
		}
		_, set, err := tlog.LoadSigner(cfg.Path(cfg.Keys.LogKey))
		if err != nil {
			return nil, err
		}
		vkey := tlog.SplitKeys(set)[0]
		logKeys = append(logKeys, vkey+"\n"...)
		if err := auth.AddProvider(directory.ProviderEntry{ID: dp.id, Name: dp.name, Domains: []string{cfg.Provider.Domain},
			Relay: addrs[6], Rehber: "https://" + addrs[7] + "/rehber/v1/", TLSCerts: certs[:1], SigningCerts: certs[:1], LogKey: vkey},
			time.Now().Add(-time.Hour)); err != nil {
			return nil, err
		}
		info.Anchors.ProviderCAs = append(info.Anchors.ProviderCAs, provCA)
		info.Providers = append(info.Providers, ProviderInfo{ID: dp.id, Domain: cfg.Provider.Domain, Config: cfg.Path("kep.toml"),
			Certificate: cfg.Path(cfg.Keys.Cert), CA: provCA, LogKey: vkey, SMSFile: cfg.Path(cfg.Notices.SMSFile)})
	}
	if _, err := auth.Sign(time.Now()); err != nil {
		return nil, err
	}
	// One anchors directory for evidence from either provider: kep verify
	// --anchors reads every certificate of provider-ca.pem and every line
	// of log.pub.
	if _, err := write("provider-ca.pem", provCAs); err != nil {
		return nil, err
	}
	if _, err := write("log.pub", logKeys); err != nil {
		return nil, err
	}
	if err := seed(ctx, cfgs["hs01"], esign, info); err != nil {
		return nil, err
	}
	if err := seedHS02(ctx, cfgs["hs02"], esign, info); err != nil {
		return nil, err
	}
	return info, writeInfo(info)
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Sample people. The TCKNs are made valid from fixed first nine digits.
var samples = []struct {
	key, given, surname, first9 string
}{
	{"ayse", "Ayşe", "Yılmaz", "100000001"},
	{"mehmet", "Mehmet", "Öztürk", "100000002"},
	{"ece", "Ece", "Tan", "100000003"},
	{"zeynep", "Zeynep", "Kaya", "100000004"},
	{"emre", "Emre", "Şahin", "100000005"},
	{"elif", "Elif", "Demir", "100000006"}, // at hs02
}

// issuePerson makes sample person i's TCKN, signing certificate (files in
// DIR/users) and passwords.
func issuePerson(esign *pki.CA, users string, i int) (tckn string, is *pki.Issued, files [3]string, pw, p12pw string, err error) {
	s := samples[i]
	if tckn, err = identity.CompleteTCKN(s.first9); err != nil {
		return
	}
	if is, err = esign.IssueSigner(pki.SignerSubject(tckn, s.given, s.surname, "TCKN"), "", pki.RSA2048); err != nil {
		return
	}
	p12pw = "p12-" + s.key
	crt, key, p12, e := is.WriteFiles(filepath.Join(users, s.key), p12pw)
	files, err = [3]string{crt, key, p12}, e
	pw = s.key + "-" + account.GeneratePassword(10)
	return
}

// seedHS02 opens the sample person at hs02, the other end of the tour's
// cross-provider send.
func seedHS02(ctx context.Context, cfg *config.Config, esign *pki.CA, info *Info) error {
	n, err := provider.OpenAdmin(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	const i = 5
	s := samples[i]
	tckn, is, files, pw, p12pw, err := issuePerson(esign, filepath.Join(info.Dir, "users"), i)
	if err != nil {
		return err
	}
	a, err := n.Accounts.Create(ctx, account.Actor{Name: "demo", Remote: "local"}, account.CreateRequest{Kind: account.Person,
		Capability: account.SendReceive, Owner: identity.ID{Scheme: identity.TCKN, Value: tckn}, GivenName: s.given, Surname: s.surname,
		Password: pw, Certificate: is.Cert, Activate: true})
	if err != nil {
		return err
	}
	info.Accounts = append(info.Accounts, AccountInfo{Key: s.key, Provider: "hs02", Address: a.Address, Kind: a.Kind, Capability: a.Capability,
		Name: a.OwnerName, Identity: a.OwnerID, Username: a.Address, Password: pw,
		Certificate: files[0], PrivateKey: files[1], PKCS12: files[2], PKCS12Password: p12pw})
	return nil
}

// demoNoticeSMS is the fictitious mobile number of the demo's SMS notices.
const demoNoticeSMS = "+905000000002"

// seed opens the sample accounts and writes their credentials.
func seed(ctx context.Context, cfg *config.Config, esign *pki.CA, info *Info) error {
	n, err := provider.OpenAdmin(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	users := filepath.Join(info.Dir, "users")
	person := func(i int) (string, *pki.Issued, [3]string, string, string, error) {
		return issuePerson(esign, users, i)
	}
	actor := account.Actor{Name: "demo", Remote: "local"}
	for i, capab := range []account.Capability{account.SendReceive, account.SendReceive, account.ReceiveOnly} {
		s := samples[i]
		tckn, is, files, pw, p12pw, err := person(i)
		if err != nil {
			return err
		}
		req := account.CreateRequest{Kind: account.Person, Capability: capab, Owner: identity.ID{Scheme: identity.TCKN, Value: tckn},
			GivenName: s.given, Surname: s.surname, Password: pw, Activate: true}
		if capab == account.SendReceive {
			req.Certificate = is.Cert
		} else {
			req.VerifiedBy = "demo: identity documents checked"
		}
		a, err := n.Accounts.Create(ctx, actor, req)
		if err != nil {
			return err
		}
		ai := AccountInfo{Key: s.key, Provider: "hs01", Address: a.Address, Kind: a.Kind, Capability: a.Capability, Name: a.OwnerName, Identity: a.OwnerID,
			Username: a.Address, Password: pw}
		// A receive-only holder may still have an e-signature certificate:
		// sending with it shows the receive-only refusal.
		ai.Certificate, ai.PrivateKey, ai.PKCS12, ai.PKCS12Password = files[0], files[1], files[2], p12pw
		if s.key == "mehmet" { // the tour's recipient is told of new messages by SMS (docs/notices.md)
			ai.NoticeSMS = demoNoticeSMS
			if _, err := n.Accounts.SetNoticePrefs(ctx, actor, a.Address, "", account.NoticeChange{SMS: &ai.NoticeSMS}); err != nil {
				return err
			}
		}
		info.Accounts = append(info.Accounts, ai)
	}
	vkn, err := identity.CompleteVKN("123456789")
	if err != nil {
		return err
	}
	co, err := n.Accounts.Create(ctx, actor, account.CreateRequest{Kind: account.Company, Owner: identity.ID{Scheme: identity.VKN, Value: vkn},
		OwnerName: "Deniz Lojistik A.Ş.", LocalPart: "Deniz Lojistik", VerifiedBy: "demo: trade-registry certificate checked", Activate: true})
	if err != nil {
		return err
	}
	seal, err := issueESeal(esign, users, vkn, co.OwnerName, co.Address)
	if err != nil {
		return err
	}
	info.Accounts = append(info.Accounts, AccountInfo{Key: "deniz", Provider: "hs01", Address: co.Address, Kind: co.Kind, Capability: co.Capability, Name: co.OwnerName, Identity: co.OwnerID, ESeal: seal})
	for i, role := range map[int]account.Role{3: account.MainOperator, 4: account.SubOperator} {
		s := samples[i]
		tckn, is, files, pw, p12pw, err := person(i)
		if err != nil {
			return err
		}
		grants := account.AllGrants
		if role == account.SubOperator {
			grants = account.GrantRead
		}
		r, err := n.Accounts.AddOperator(ctx, actor, co.Address, account.OperatorRequest{TCKN: tckn, Name: s.given + " " + s.surname, Password: pw,
			Certificate: is.Cert, Role: role, Grants: grants})
		if err != nil {
			return err
		}
		info.Operators = append(info.Operators, OperatorInfo{Key: s.key, Account: co.Address, Name: r.Name, TCKN: tckn, Role: r.Role,
			Grants: splitGrants(account.Grant(r.Grants)), Username: tckn, Password: pw,
			Certificate: files[0], PrivateKey: files[1], PKCS12: files[2], PKCS12Password: p12pw})
	}
	sortOperators(info.Operators)
	return nil
}

func splitGrants(g account.Grant) []string {
	var out []string
	for _, name := range []string{"read", "send", "delete", "archive", "sms-notice", "email-notice"} {
		if one, _ := account.ParseGrant(name); g&one != 0 {
			out = append(out, name)
		}
	}
	return out
}

func sortOperators(ops []OperatorInfo) {
	if len(ops) == 2 && ops[0].Role != "main" {
		ops[0], ops[1] = ops[1], ops[0]
	}
}

// Account finds a sample account or operator by key ("ayse", "zeynep") or
// address.
func (info *Info) Account(key string) (*AccountInfo, *OperatorInfo) {
	for i := range info.Accounts {
		if info.Accounts[i].Key == key || info.Accounts[i].Address == key {
			return &info.Accounts[i], nil
		}
	}
	for i := range info.Operators {
		if info.Operators[i].Key == key || info.Operators[i].TCKN == key {
			return nil, &info.Operators[i]
		}
	}
	return nil, nil
}

// Load reads a demo world's demo.json.
func Load(dir string) (*Info, error) {
	info, err := load(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no demo world in %s: start one with `kep demo --dir %s`", dir, dir)
	}
	return info, err
}
