// Package provider is in charge of assembling one provider node from its
// configuration: creating a new provider's directory (`kep init`: config,
// keys, development CAs), opening the store and the services, and running
// the protocol servers. Protocol and domain logic live in the packages it
// wires; this package only connects them.
package provider

import (
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kephs/kep/address"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/tlog"
)

// InitOptions tunes a new provider directory.
type InitOptions struct {
	Provider string // "hs01"
	Domain   string // "hs01.kep.tr"; default from Provider
	Name     string
	KeyType  pki.KeyType // provider signing key; ECDSA P-256 by default
	// ESignCA, when set, is an existing e-signature CA (cert and key) to
	// use instead of generating a development one; demo worlds share one.
	ESignCA *pki.CA
	// TSACA likewise for the development TSA's CA.
	TSACA *pki.CA
	// Config is applied to the defaults before the file is written.
	Config func(*config.Config)
}

// Init creates a new provider directory: a commented kep.toml, the
// provider's key and certificate (from a provider CA made here), the log
// key, and development CAs for e-signatures and time stamps. It refuses to
// overwrite an existing configuration.
func Init(dir string, o InitOptions) (*config.Config, error) {
	if o.Provider == "" {
		return nil, errors.New("init: --provider is required (e.g. hs01)")
	}
	if o.Domain == "" {
		o.Domain = address.ProviderDomain(o.Provider)
	}
	if !address.IsKEPDomain(o.Domain) {
		return nil, fmt.Errorf("init: %q is not a KEP provider domain (want hsNN.kep.tr)", o.Domain)
	}
	cfgPath := filepath.Join(dir, "kep.toml")
	if _, err := os.Stat(cfgPath); err == nil {
		return nil, fmt.Errorf("init: %s exists already; choose another --dir", cfgPath)
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		return nil, err
	}
	cfg := config.Default(dir, o.Provider, o.Domain)
	if o.Name != "" {
		cfg.Provider.Name = o.Name
	}
	cfg.Keys.LogKeyNotAfter = time.Now().AddDate(LogKeyLife, 0, 0).UTC().Format(time.DateOnly)
	if o.Config != nil {
		o.Config(cfg)
	}
	const tenYears = 10 * 365 * 24 * time.Hour
	// The provider CA: in production the provider's evidence-signing
	// certificate comes from a qualified CA; here a CA of its own.
	provCA, err := pki.NewRootCA(pkix.Name{Country: []string{"TR"}, Organization: []string{cfg.Provider.Name}, CommonName: cfg.Provider.Name + " Provider CA (development)"}, pki.ECDSAP256, tenYears)
	if err != nil {
		return nil, err
	}
	if err := writeCA(cfg.Path("keys/provider-ca"), provCA); err != nil {
		return nil, err
	}
	prov, err := provCA.IssueProvider(cfg.Provider.Name, []string{o.Domain, cfg.SMTP.Hostname, "localhost"}, o.KeyType)
	if err != nil {
		return nil, err
	}
	certPath, keyPath, _, err := prov.WriteFiles(cfg.Path("keys/provider"), "")
	if err != nil {
		return nil, err
	}
	cfg.Keys.Cert, cfg.Keys.Key = rel(dir, certPath), rel(dir, keyPath)

	esign := o.ESignCA
	if esign == nil {
		if esign, err = pki.NewRootCA(pkix.Name{Country: []string{"TR"}, Organization: []string{"KEP Development"}, CommonName: "Development E-Signature CA (not qualified)"}, pki.ECDSAP256, tenYears); err != nil {
			return nil, err
		}
		// kep cert issue makes certificates of this CA without a revocation
		// source (there is no responder to name): accept them, recorded.
		cfg.ESign.AllowNoSource = true
	}
	if err := writeCA(cfg.Path("keys/esign-ca"), esign); err != nil {
		return nil, err
	}
	cfg.ESign.TrustAnchors = []string{"keys/esign-ca.crt"}

	tsaCA := o.TSACA
	if tsaCA == nil {
		if tsaCA, err = pki.NewRootCA(pkix.Name{Country: []string{"TR"}, Organization: []string{"KEP Development"}, CommonName: "Development Time-Stamping CA"}, pki.ECDSAP256, tenYears); err != nil {
			return nil, err
		}
	}
	if err := writeCA(cfg.Path("keys/tsa-ca"), tsaCA); err != nil {
		return nil, err
	}
	tsaCert, err := tsaCA.IssueTSA("Development TSA "+o.Provider, pki.ECDSAP256)
	if err != nil {
		return nil, err
	}
	if _, _, _, err := tsaCert.WriteFiles(cfg.Path("keys/tsa"), ""); err != nil {
		return nil, err
	}
	cfg.TSA.TrustAnchors = []string{"keys/tsa-ca.crt"}

	skey, vkey, err := tlog.GenerateLogKey(cfg.Log.Origin)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfg.Path(cfg.Keys.LogKey), []byte(skey+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfg.Path("keys/log.pub"), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	b, err := cfg.Render()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, err
	}
	return config.Load(cfgPath)
}

func writeCA(base string, ca *pki.CA) error {
	if err := os.WriteFile(base+".crt", pki.CertPEM(ca.Cert), 0o644); err != nil {
		return err
	}
	kp, err := pki.KeyPEM(ca.Key)
	if err != nil {
		return err
	}
	return os.WriteFile(base+".key", kp, 0o600)
}

func rel(dir, p string) string {
	if r, err := filepath.Rel(dir, p); err == nil {
		return r
	}
	return p
}

// DevESignCA loads the development e-signature CA of a provider directory
// (keys/esign-ca.crt and .key), to issue test signer certificates.
func DevESignCA(cfg *config.Config) (*pki.CA, error) {
	ca, err := pki.LoadCA(cfg.Path("keys/esign-ca.crt"), cfg.Path("keys/esign-ca.key"))
	if err != nil {
		return nil, fmt.Errorf("no development e-signature CA in %s (only `kep init` directories have one): %w", cfg.Dir, err)
	}
	return ca, nil
}
