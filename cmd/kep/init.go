package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/kephs/kep/config"

	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
)

func cmdInit(ctx context.Context, args []string) error {
	f := newFlags("init", "--dir DIR --provider hsNN [--domain hsNN.kep.tr]")
	dir := f.String("dir", "", "directory to create the provider in (required)")
	prov := f.String("provider", "", "provider id, e.g. hs01 (required)")
	domain := f.String("domain", "", "provider domain (default <provider>.kep.tr)")
	name := f.String("name", "", "provider name shown in evidence")
	keyType := f.String("key-type", string(pki.ECDSAP256), "provider signing key: ecdsa-p256, rsa-2048 or rsa-3072")
	ports := f.String("ports", "standard", "standard (loopback 587, 465, 143, 993, 8443, 9464) or free (free loopback ports, chosen now and written into kep.toml: to try it out without root)")
	if err := f.parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return f.usageError("--dir is required")
	}
	o := provider.InitOptions{Provider: *prov, Domain: *domain, Name: *name, KeyType: pki.KeyType(*keyType)}
	switch *ports {
	case "standard":
	case "free":
		o.Config = func(c *config.Config) {
			for _, addr := range []*string{&c.SMTP.Submission, &c.SMTP.Submissions, &c.IMAP.Listen, &c.IMAP.ListenTLS, &c.HTTP.Listen, &c.Metrics.Listen} {
				*addr = freeLoopback()
			}
		}
	default:
		return f.usageError("--ports %q: want standard or free", *ports)
	}
	cfg, err := provider.Init(*dir, o)
	if err != nil {
		return err
	}
	anchors, err := writeAnchors(cfg)
	if err != nil {
		return err
	}
	fmt.Printf("Created provider %s (%s) in %s\n", cfg.Provider.ID, cfg.Provider.Domain, cfg.Dir)
	fmt.Printf("  configuration  %s\n", cfg.Path("kep.toml"))
	fmt.Printf("  database       %s\n", cfg.DSN())
	fmt.Printf("  keys           %s\n", cfg.Path("keys"))
	fmt.Printf("  trust anchors  %s (for kep verify --anchors; give them to whoever checks your evidence)\n", anchors)
	fmt.Printf("Next: kep cert issue --dir %s --tckn \"$(kep id sample tckn)\" ... to make a development e-signature certificate,\n", *dir)
	fmt.Printf("      kep account create --dir %s ... to open an account.\n", *dir)
	return nil
}

// anchorFiles are the trust anchors of a provider directory, as `kep demo`
// lays them out in its anchors directory (docs/demo.md, "Files"): the name
// in DIR/anchors and the file in DIR/keys it copies.
var anchorFiles = []struct{ name, from string }{
	{"provider-ca.pem", "keys/provider-ca.crt"}, // CA of the evidence-signing (and TLS) certificate
	{"tsa-ca.pem", "keys/tsa-ca.crt"},           // CA of the development TSA
	{"log.pub", "keys/log.pub"},                 // the evidence log's verifier key
	{"esign-ca.pem", "keys/esign-ca.crt"},       // the development e-signature CA
}

// writeAnchors copies the public trust anchors of a new provider directory
// into DIR/anchors, so that `kep verify --anchors DIR/anchors` checks its
// evidence. It returns the directory.
func writeAnchors(cfg *config.Config) (string, error) {
	dir := cfg.Path("anchors")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, a := range anchorFiles {
		b, err := os.ReadFile(cfg.Path(a.from))
		if err != nil {
			return "", fmt.Errorf("writing the trust anchors: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, a.name), b, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// freeLoopback returns a loopback address with a port free right now.
func freeLoopback() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}
