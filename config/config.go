// Package config is in charge of the provider's configuration file: its
// keys, their defaults, the commented file `kep init` writes, and loading it
// (relative paths are taken from the file's directory).
package config

//go:generate go run ./gen ../docs/configuration.md

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Duration is a time.Duration written as "24h", "2s" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q: %w", b, err)
	}
	d.Duration = v
	return nil
}

// MarshalText writes a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(shortDuration(d.Duration)), nil }

// Config is the whole configuration of one provider node.
type Config struct {
	Provider   Provider   `toml:"provider"`
	Store      Store      `toml:"store"`
	Keys       Keys       `toml:"keys"`
	ESign      ESign      `toml:"esign"`
	TSA        TSA        `toml:"tsa"`
	Log        Log        `toml:"log"`
	SMTP       SMTP       `toml:"smtp"`
	IMAP       IMAP       `toml:"imap"`
	HTTP       HTTP       `toml:"http"`
	Metrics    Metrics    `toml:"metrics"`
	Federation Federation `toml:"federation"`
	Accounts   Accounts   `toml:"accounts"`
	Timing     Timing     `toml:"timing"`
	Notices    Notices    `toml:"notices"`

	// Dir is the directory of the file the configuration came from.
	Dir string `toml:"-"`
}

// Provider names the provider.
type Provider struct {
	ID     string `toml:"id"`     // "hs01"
	Domain string `toml:"domain"` // "hs01.kep.tr"
	Name   string `toml:"name"`   // "PTT KEP Hizmet Sağlayıcısı"
	Policy string `toml:"policy"` // evidence issuer policy URI
}

// Store locates the database and the content store.
type Store struct {
	DSN        string `toml:"dsn"`
	ContentDir string `toml:"content_dir"`
}

// Keys locates the provider's own keys and certificates.
type Keys struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// LogKey is the Ed25519 key that signs log checkpoints (signed-note format).
	LogKey string `toml:"log_key"`
	// LogKeyNotAfter is the date (YYYY-MM-DD) after which the log key is
	// due for rotation; empty for none (issue 9.3, docs/deployment.md).
	LogKeyNotAfter string `toml:"log_key_not_after"`
}

// ESign configures the trust store of qualified e-signature CAs.
type ESign struct {
	TrustAnchors []string `toml:"trust_anchors"`
	// Revocation is what a submission does when no revocation source
	// answers: "check" (a temporary failure, 451, no evidence) or
	// "accept-and-record" (accepted; the evidence records it).
	Revocation string `toml:"revocation"`
	// AllowNoSource accepts certificates that name no OCSP responder or
	// CRL: development CAs only.
	AllowNoSource bool `toml:"allow_no_source"`
	// ESealVKNFields are where an e-seal certificate carries the company's
	// VKN (identity.ParseESealFields); empty: identity.DefaultESealFields.
	ESealVKNFields []string `toml:"eseal_vkn_fields"`
}

// TSA configures the RFC 3161 time-stamp authority.
type TSA struct {
	URL          string   `toml:"url"`
	Username     string   `toml:"username"`
	Password     string   `toml:"password"`
	TrustAnchors []string `toml:"trust_anchors"`
	// DevCert and DevKey, when URL is empty, run a development TSA inside
	// the process. Never in production: a provider's time stamps must come
	// from an accredited TSA.
	DevCert string `toml:"dev_cert"`
	DevKey  string `toml:"dev_key"`
	// OutageTolerance is how long the TSA may fail (or its certificate be
	// expired) before submissions are refused with 451 (issue 9.3).
	OutageTolerance Duration `toml:"outage_tolerance"`
}

// Log configures the evidence log.
type Log struct {
	Origin             string   `toml:"origin"`
	CheckpointInterval Duration `toml:"checkpoint_interval"`
	BatchSize          int      `toml:"batch_size"`
}

// SMTP configures mail submission.
type SMTP struct {
	Submission      string `toml:"submission"`
	Submissions     string `toml:"submissions"`
	Hostname        string `toml:"hostname"`
	MaxMessageBytes int64  `toml:"max_message_bytes"`
	MaxRecipients   int    `toml:"max_recipients"`
	MaxTotalBytes   int64  `toml:"max_total_bytes"`
	// MaxPerAddress caps the sessions one client address holds at once
	// (over both submission ports); 0 takes the default, 100.
	MaxPerAddress int `toml:"max_connections_per_address"`
}

// IMAP configures mail retrieval.
type IMAP struct {
	Listen    string `toml:"listen"`
	ListenTLS string `toml:"listen_tls"`
}

// HTTP configures the web, API and public log endpoints.
type HTTP struct {
	Listen string `toml:"listen"`
	// SignerOrigin is the local signer's origin (`kep signer`), the one
	// place the web mail's pages may connect to besides the provider.
	SignerOrigin string `toml:"signer_origin"`
	// APIRate and APIBurst are each REST API token's rate limit: a token
	// bucket of APIBurst units refilled at APIRate units a second
	// (docs/api.md, "Rate limits"; api.Limits).
	APIRate  int `toml:"api_rate"`
	APIBurst int `toml:"api_burst"`
}

// Metrics configures the operator's listener: /metrics and /healthz.
type Metrics struct {
	Listen string `toml:"listen"` // plain HTTP; keep it on loopback or a private network; empty turns it off
}

// Federation says how the provider knows the other providers: the
// authority's signed provider directory (docs/relay.md).
type Federation struct {
	// Directory is a file or an https:// URL of the signed directory;
	// empty: this provider stands alone (only its own domain is KEP).
	Directory string `toml:"directory"`
	// AuthorityKeys are the authority's note verifier keys.
	AuthorityKeys []string `toml:"authority_keys"`
	// Refresh is how often the directory is fetched again.
	Refresh Duration `toml:"refresh"`
	// RelayListen is the reception point's address (SMTP over mutual TLS,
	// for other providers only); empty: messages are only sent.
	RelayListen string `toml:"relay_listen"`
	// RehberListen answers other providers' KEP Rehberi queries (HTTPS
	// over mutual TLS); empty: none.
	RehberListen string `toml:"rehber_listen"`
	// EvidenceAlarm: a recipient the other provider took (250) whose 20
	// has not come back this long after acceptance is logged at WARN.
	EvidenceAlarm Duration `toml:"evidence_alarm"`
}

// Accounts holds account defaults.
type Accounts struct {
	DefaultQuota int64 `toml:"default_quota"`
}

// Timing holds the timing rules.
type Timing struct {
	DeemedReadStandart  Duration `toml:"deemed_read_standart"`
	DeemedReadETebligat int      `toml:"deemed_read_etebligat_days"`
	DeemedReadEYazisma  Duration `toml:"deemed_read_eyazisma"`
	TimeZone            string   `toml:"time_zone"`
}

// Notices configures notices by SMS and e-mail (docs/notices.md).
type Notices struct {
	DeadlineLead  Duration `toml:"deadline_lead"`
	SMSFile       string   `toml:"sms_file"`
	SMSURL        string   `toml:"sms_url"`
	SMSToken      string   `toml:"sms_token"`
	SMSUsername   string   `toml:"sms_username"`
	SMSPassword   string   `toml:"sms_password"`
	EmailRelay    string   `toml:"email_relay"`
	EmailTLS      string   `toml:"email_tls"`
	EmailUsername string   `toml:"email_username"`
	EmailPassword string   `toml:"email_password"`
	EmailFrom     string   `toml:"email_from"`
}

// Default returns the configuration of a provider rooted at dir.
func Default(dir, provider, domain string) *Config {
	return &Config{
		Provider: Provider{ID: provider, Domain: domain, Name: strings.ToUpper(provider) + " KEP", Policy: "urn:kep:tr:policy:" + domain + ":evidence:1"},
		Store:    Store{DSN: "sqlite:data/kep.db", ContentDir: "data/content"},
		Keys:     Keys{Cert: "keys/provider.crt", Key: "keys/provider.key", LogKey: "keys/log.key"},
		ESign:    ESign{TrustAnchors: []string{"keys/esign-ca.crt"}, Revocation: "check", ESealVKNFields: []string{}},
		TSA:      TSA{TrustAnchors: []string{"keys/tsa-ca.crt"}, DevCert: "keys/tsa.crt", DevKey: "keys/tsa.key", OutageTolerance: Duration{time.Hour}},
		Log:      Log{Origin: domain + "/log", CheckpointInterval: Duration{2 * time.Second}, BatchSize: 512},
		SMTP: SMTP{Submission: "127.0.0.1:587", Submissions: "127.0.0.1:465", Hostname: "mail." + domain,
			MaxMessageBytes: 100 << 20, MaxRecipients: 100, MaxTotalBytes: 1 << 30},
		IMAP:       IMAP{Listen: "127.0.0.1:143", ListenTLS: "127.0.0.1:993"},
		HTTP:       HTTP{Listen: "127.0.0.1:8443", SignerOrigin: "http://127.0.0.1:18443", APIRate: 1000, APIBurst: 3000},
		Metrics:    Metrics{Listen: "127.0.0.1:9464"},
		Federation: Federation{AuthorityKeys: []string{}, Refresh: Duration{10 * time.Minute}, EvidenceAlarm: Duration{15 * time.Minute}},
		Accounts:   Accounts{DefaultQuota: 100 << 20},
		Timing:     Timing{DeemedReadStandart: Duration{24 * time.Hour}, DeemedReadETebligat: 5, DeemedReadEYazisma: Duration{24 * time.Hour}, TimeZone: "Europe/Istanbul"},
		Notices:    Notices{DeadlineLead: Duration{24 * time.Hour}, EmailTLS: "starttls"},
		Dir:        dir,
	}
}

// Load reads a configuration file over the defaults.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no configuration at %s: create one with `kep init --dir DIR`", path)
		}
		return nil, err
	}
	// First the provider's id and domain, which other defaults derive from;
	// then the whole file over the defaults for that provider.
	var head struct {
		Provider Provider `toml:"provider"`
	}
	if _, err := toml.Decode(string(b), &head); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if head.Provider.ID == "" || head.Provider.Domain == "" {
		return nil, fmt.Errorf("%s: provider.id and provider.domain are required", path)
	}
	c := Default(filepath.Dir(abs), head.Provider.ID, head.Provider.Domain)
	md, err := toml.Decode(string(b), c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key %s", path, und[0].String())
	}
	c.Dir = filepath.Dir(abs)
	if c.Timing.TimeZone == "" || c.Timing.TimeZone == "Local" {
		return nil, fmt.Errorf("%s: timing.time_zone must be an IANA zone name such as Europe/Istanbul (%q would change with the host)", path, c.Timing.TimeZone)
	}
	if _, err := time.LoadLocation(c.Timing.TimeZone); err != nil {
		return nil, fmt.Errorf("%s: timing.time_zone: %w", path, err)
	}
	return c, nil
}

// Path resolves a path from the file against the configuration's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Paths resolves a list of paths.
func (c *Config) Paths(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = c.Path(p)
	}
	return out
}

// DSN returns the database DSN with a relative SQLite path resolved.
func (c *Config) DSN() string {
	d := c.Store.DSN
	if strings.HasPrefix(d, "sqlite:") {
		return "sqlite:" + c.Path(strings.TrimPrefix(d, "sqlite:"))
	}
	return d
}
