package main

import (
	"context"
	"fmt"

	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
)

func init() {
	register("init", "create a provider directory: commented config, keys, development CAs", cmdInit)
}

func cmdInit(ctx context.Context, args []string) error {
	f := newFlags("init", "--dir DIR --provider hsNN [--domain hsNN.kep.tr]")
	dir := f.String("dir", "", "directory to create the provider in (required)")
	prov := f.String("provider", "", "provider id, e.g. hs01 (required)")
	domain := f.String("domain", "", "provider domain (default <provider>.kep.tr)")
	name := f.String("name", "", "provider name shown in evidence")
	keyType := f.String("key-type", string(pki.ECDSAP256), "provider signing key: ecdsa-p256, rsa-2048 or rsa-3072")
	if err := f.parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--dir is required")
	}
	cfg, err := provider.Init(*dir, provider.InitOptions{Provider: *prov, Domain: *domain, Name: *name, KeyType: pki.KeyType(*keyType)})
	if err != nil {
		return err
	}
	fmt.Printf("Created provider %s (%s) in %s\n", cfg.Provider.ID, cfg.Provider.Domain, cfg.Dir)
	fmt.Printf("  configuration  %s\n", cfg.Path("kep.toml"))
	fmt.Printf("  database       %s\n", cfg.DSN())
	fmt.Printf("  keys           %s\n", cfg.Path("keys"))
	fmt.Printf("Next: kep cert issue --dir %s --tckn ... to make a development e-signature certificate,\n", *dir)
	fmt.Printf("      kep account create --dir %s ... to open an account.\n", *dir)
	return nil
}
