package provider

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kephs/kep/config"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/tlog"
)

// Key rotation (issue 9.3, docs/deployment.md "Key rotation"). A rotation
// makes the new key, keeps what verifies the old one, and switches signing
// to the new one at the node's next start:
//
//   - provider: the new certificate and key replace keys.cert and keys.key;
//     the old certificate (and its chain) moves to keys/retired/, from where
//     the node adds it to the intermediates bundles may carry, so that
//     bundles of evidence signed before the rotation still chain (each
//     evidence carries its own signer certificate in its XAdES KeyInfo);
//   - log: a new Ed25519 note key of the same name (the log's origin)
//     replaces keys.log_key; the verifier keys of every earlier log key
//     follow it in the same file, keys/log.pub holds the whole key set
//     (keys/log-current.pub the new key alone), so that checkpoints signed with an old key still verify (a signed
//     note names its key by name and key hash; tlog.OpenCheckpoint picks
//     by it).
//
// The old private key moves to keys/retired/ so that a failed switch can be
// undone; destroy it once the node runs on the new key.

// Which keys Rotate knows.
const (
	RotateProvider = "provider"
	RotateLog      = "log"
)

// RotateOptions says what to rotate.
type RotateOptions struct {
	Which string // RotateProvider or RotateLog
	// CertFile and KeyFile, for the provider, are a new certificate (leaf
	// first, then its chain) and its key made by the provider's CA
	// elsewhere. Empty: a new one is issued by the development provider CA
	// of `kep init` (keys/provider-ca.crt and .key).
	CertFile, KeyFile string
	Now               func() time.Time
}

// Rotation reports what a rotation did.
type Rotation struct {
	Which    string
	New      string   // the new key: certificate subject and validity, or verifier key
	Retired  []string // files moved to keys/retired/
	NotAfter time.Time
}

// RetiredDir is where rotations keep the retired keys of a provider.
func RetiredDir(cfg *config.Config) string {
	return filepath.Join(filepath.Dir(cfg.Path(cfg.Keys.Cert)), "retired")
}

// Rotate rotates one of the provider's keys in its directory. The node
// signs with the new key from its next start.
func Rotate(cfg *config.Config, o RotateOptions) (*Rotation, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	stamp := now().UTC().Format("20060102T150405Z")
	if err := os.MkdirAll(RetiredDir(cfg), 0o700); err != nil {
		return nil, err
	}
	switch o.Which {
	case RotateProvider:
		return rotateProvider(cfg, o, now(), stamp)
	case RotateLog:
		return rotateLog(cfg, now(), stamp)
	}
	return nil, fmt.Errorf("rotate: --which %q: want %s or %s", o.Which, RotateProvider, RotateLog)
}

func rotateProvider(cfg *config.Config, o RotateOptions, now time.Time, stamp string) (*Rotation, error) {
	certPath, keyPath := cfg.Path(cfg.Keys.Cert), cfg.Path(cfg.Keys.Key)
	old, err := pki.LoadIssued(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("rotate: the current provider certificate (keys.cert, keys.key): %w", err)
	}
	var next *pki.Issued
	if o.CertFile != "" || o.KeyFile != "" {
		if o.CertFile == "" || o.KeyFile == "" {
			return nil, errors.New("rotate: give both --cert and --key of the new provider certificate")
		}
		if next, err = pki.LoadIssued(o.CertFile, o.KeyFile); err != nil {
			return nil, fmt.Errorf("rotate: the new provider certificate: %w", err)
		}
	} else {
		ca, err := pki.LoadCA(cfg.Path("keys/provider-ca.crt"), cfg.Path("keys/provider-ca.key"))
		if err != nil {
			return nil, fmt.Errorf("rotate: no --cert/--key given and no development provider CA (keys/provider-ca.crt, .key) to issue one: %w", err)
		}
		if next, err = ca.IssueProvider(cfg.Provider.Name, []string{cfg.Provider.Domain, cfg.SMTP.Hostname, "localhost"}, ""); err != nil {
			return nil, err
		}
	}
	if next.Cert.Equal(old.Cert) {
		return nil, errors.New("rotate: the new provider certificate is the current one")
	}
	if now.Before(next.Cert.NotBefore) || !now.Before(next.Cert.NotAfter) {
		return nil, fmt.Errorf("rotate: the new provider certificate is not valid now (valid %s to %s)", next.Cert.NotBefore.Format(time.RFC3339), next.Cert.NotAfter.Format(time.RFC3339))
	}
	base := filepath.Join(RetiredDir(cfg), "provider-"+stamp)
	crt, key, _, err := old.WriteFiles(base, "")
	if err != nil {
		return nil, err
	}
	kp, err := pki.KeyPEM(next.Key)
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(certPath, pki.CertPEM(append([]*x509.Certificate{next.Cert}, next.Chain...)...), 0o644); err != nil {
		return nil, err
	}
	if err := writeAtomic(keyPath, kp, 0o600); err != nil {
		return nil, err
	}
	return &Rotation{Which: RotateProvider, Retired: []string{crt, key}, NotAfter: next.Cert.NotAfter,
		New: fmt.Sprintf("%q, serial %s, valid %s to %s", next.Cert.Subject.CommonName, next.Cert.SerialNumber, next.Cert.NotBefore.Format(time.RFC3339), next.Cert.NotAfter.Format(time.RFC3339))}, nil
}

// LogKeyLife is how long a log key serves before its rotation is due
// (keys.log_key_not_after, set by `kep init` and by each rotation).
const LogKeyLife = 5 // years

func rotateLog(cfg *config.Config, now time.Time, stamp string) (*Rotation, error) {
	keyPath := cfg.Path(cfg.Keys.LogKey)
	oldSigner, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("rotate: keys.log_key: %w", err)
	}
	_, set, err := tlog.LoadSigner(keyPath)
	if err != nil {
		return nil, fmt.Errorf("rotate: keys.log_key: %w", err)
	}
	skey, vkey, err := tlog.GenerateLogKey(cfg.Log.Origin)
	if err != nil {
		return nil, err
	}
	retired := filepath.Join(RetiredDir(cfg), "log-"+stamp+".key")
	if err := os.WriteFile(retired, oldSigner, 0o600); err != nil {
		return nil, err
	}
	// The new signer, then every verifier key of the log: the old current
	// one and those it had retired (tlog.LoadSigner's format).
	keys := append([]string{vkey}, tlog.SplitKeys(set)...)
	if err := writeAtomic(keyPath, []byte(skey+"\n"+strings.Join(keys[1:], "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := writeAtomic(cfg.Path("keys/log.pub"), []byte(strings.Join(keys, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	// The new key alone, for what takes one key (`kep authority add
	// --log-key`: the directory keeps each key with its own window).
	if err := writeAtomic(cfg.Path("keys/log-current.pub"), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	notAfter := now.AddDate(LogKeyLife, 0, 0).UTC()
	if err := setConfigLine(filepath.Join(cfg.Dir, "kep.toml"), "keys", "log_key_not_after", notAfter.Format(time.DateOnly)); err != nil {
		return nil, err
	}
	return &Rotation{Which: RotateLog, New: vkey, Retired: []string{retired}, NotAfter: notAfter}, nil
}

// setConfigLine sets key = "value" in section of a kep.toml: the existing
// line is replaced, or a line added at the section's start. The rest of the
// file, the operator's comments included, is left as it is.
func setConfigLine(path, section, key, value string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a configuration elsewhere: the operator sets it
	}
	if err != nil {
		return err
	}
	line := fmt.Sprintf("%s = %q", key, value)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s*=.*$`)
	var out string
	switch {
	case re.Match(b):
		out = re.ReplaceAllLiteralString(string(b), line)
	case strings.Contains(string(b), "["+section+"]\n"):
		out = strings.Replace(string(b), "["+section+"]\n", "["+section+"]\n"+line+"\n", 1)
	default:
		return fmt.Errorf("rotate: %s has no [%s] section; add %s there", path, section, line)
	}
	return writeAtomic(path, []byte(out), 0o600)
}

// writeAtomic replaces a file by a new one in one rename.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// retiredChains reads the certificates of the retired provider
// certificates (keys/retired/provider-*.crt): the intermediates bundles
// of evidence signed before a rotation may need.
func retiredChains(cfg *config.Config) ([]*x509.Certificate, error) {
	files, err := filepath.Glob(filepath.Join(RetiredDir(cfg), "provider-*.crt"))
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, f := range files {
		certs, err := pki.LoadCertsPEM(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, certs...)
	}
	return out, nil
}

// WatchKeys returns a watch over the keys of a provider directory as the
// node would load them (`kep keys status`), without opening the node.
func WatchKeys(cfg *config.Config, now func() time.Time, logger *slog.Logger) (*KeyWatch, error) {
	w := NewKeyWatch(now, logger, cfg.TSA.OutageTolerance.Duration)
	prov, err := pki.LoadIssued(cfg.Path(cfg.Keys.Cert), cfg.Path(cfg.Keys.Key))
	if err != nil {
		return nil, fmt.Errorf("keys.cert / keys.key: %w", err)
	}
	w.SetCert(KeyProvider, "provider certificate", prov.Cert, prov.Chain)
	if err := watchLogKey(w, cfg); err != nil {
		return nil, err
	}
	if cfg.TSA.URL == "" {
		if tc, err := pki.LoadCertsPEM(cfg.Path(cfg.TSA.DevCert)); err == nil && len(tc) > 0 {
			w.SetCert(KeyTSA, "TSA certificate", tc[0], tc[1:])
		}
	}
	return w, nil
}

func watchLogKey(w *KeyWatch, cfg *config.Config) error {
	if cfg.Keys.LogKeyNotAfter == "" {
		return nil
	}
	na, err := time.Parse(time.DateOnly, cfg.Keys.LogKeyNotAfter)
	if err != nil {
		return fmt.Errorf("keys.log_key_not_after: want a date YYYY-MM-DD: %w", err)
	}
	w.SetNotAfter(KeyLog, "log key (keys.log_key_not_after)", na)
	return nil
}
