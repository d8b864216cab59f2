package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/pki"
)

func cmdAuthorityInit(ctx context.Context, args []string) error {
	f := newFlags("authority init", "--dir DIR [--name NAME]")
	dir := f.String("dir", "", "authority directory to create (required)")
	name := f.String("name", "KEP-Authority", "the authority's name, as its key names it")
	if err := f.parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--dir is required")
	}
	a, err := directory.InitAuthority(*dir, *name)
	if err != nil {
		return err
	}
	pub, _ := a.VerifierKey()
	fmt.Printf("Created authority %s in %s\n  verifier key (give it to every provider): %s\n", *name, *dir, pub)
	return nil
}

func loadCertFiles(paths []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range paths {
		cs, err := pki.LoadCertsPEM(p)
		if err != nil {
			return nil, err
		}
		if len(cs) > 0 {
			out = append(out, cs[0]) // the leaf; the rest is its chain
		}
	}
	return out, nil
}

func cmdAuthorityAdd(ctx context.Context, args []string) error {
	f := newFlags("authority add-provider", "--dir DIR --id hsNN --name NAME --domain D --relay HOST:PORT --tls-cert FILE [--signing-cert FILE] --log-key KEY")
	dir := f.String("dir", "", "authority directory (required)")
	id := f.String("id", "", "provider id, hsNN (required)")
	name := f.String("name", "", "provider name")
	var domains, tlsCerts, signCerts listFlag
	f.Var(&domains, "domain", "a domain the provider serves; its subdomains are covered too (repeatable)")
	relay := f.String("relay", "", "host:port of the provider's reception point")
	rehber := f.String("rehber", "", "https URL of the provider's KEP Rehberi endpoint")
	f.Var(&tlsCerts, "tls-cert", "PEM certificate the provider presents in TLS; its key is pinned (repeatable)")
	f.Var(&signCerts, "signing-cert", "PEM envelope and evidence signing certificate (repeatable; default the TLS certificates)")
	logKey := f.String("log-key", "", "the provider's log verifier key, or @FILE")
	if err := f.parse(args); err != nil {
		return err
	}
	if *dir == "" || *id == "" {
		return fmt.Errorf("--dir and --id are required")
	}
	tc, err := loadCertFiles(tlsCerts)
	if err != nil {
		return err
	}
	if len(signCerts) == 0 {
		signCerts = tlsCerts
	}
	sc, err := loadCertFiles(signCerts)
	if err != nil {
		return err
	}
	lk, err := readSecret(*logKey)
	if err != nil {
		return err
	}
	a := &directory.Authority{Dir: *dir}
	if err := a.AddProvider(directory.ProviderEntry{ID: *id, Name: *name, Domains: domains, Relay: *relay, Rehber: *rehber,
		TLSCerts: tc, SigningCerts: sc, LogKey: strings.TrimSpace(lk)}, time.Now()); err != nil {
		return err
	}
	fmt.Printf("Listed %s in the working directory; run `kep authority sign --dir %s` to publish it.\n", *id, *dir)
	return nil
}

func cmdAuthorityRemove(ctx context.Context, args []string) error {
	f := newFlags("authority remove-provider", "--dir DIR --id hsNN")
	dir := f.String("dir", "", "authority directory (required)")
	id := f.String("id", "", "provider id (required)")
	if err := f.parse(args); err != nil {
		return err
	}
	if *dir == "" || *id == "" {
		return fmt.Errorf("--dir and --id are required")
	}
	if err := (&directory.Authority{Dir: *dir}).RemoveProvider(*id, time.Now()); err != nil {
		return err
	}
	fmt.Printf("Marked %s removed; run `kep authority sign --dir %s` to publish it.\n", *id, *dir)
	return nil
}

func cmdAuthoritySign(ctx context.Context, args []string) error {
	f := newFlags("authority sign", "--dir DIR")
	dir := f.String("dir", "", "authority directory (required)")
	if err := f.parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("--dir is required")
	}
	a := &directory.Authority{Dir: *dir}
	if _, err := a.Sign(time.Now()); err != nil {
		return err
	}
	d, _ := a.Working()
	fmt.Printf("Signed version %d with %d providers: %s/%s\n", d.Version, len(d.Providers), *dir, directory.PublishedFile)
	return nil
}

func cmdAuthorityShow(ctx context.Context, args []string) error {
	f := newFlags("authority show", "FILE --key KEY|@FILE")
	key := f.String("key", "", "the authority's verifier key, or @FILE (e.g. @DIR/authority.pub)")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "the signed directory file")
	if err != nil {
		return err
	}
	k, err := readSecret(*key)
	if err != nil {
		return err
	}
	signed, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	d, err := directory.Open(signed, strings.TrimSpace(k))
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	fmt.Printf("Directory of %s, version %d, issued %s: signature good\n", d.Authority, d.Version, d.IssuedAt.Format(time.RFC3339))
	for _, p := range d.Providers {
		state := "active"
		if p.Removed != nil {
			state = "removed " + p.Removed.Format(time.RFC3339)
		}
		fmt.Printf("  %s  %-24s %s  relay %s  %d pins, %d certificates, %d log keys  (%s)\n", p.ID, p.Name, strings.Join(p.Domains, ","), p.Relay, len(p.TLSPins), len(p.Certificates), len(p.LogKeys), state)
	}
	return nil
}
