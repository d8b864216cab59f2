package main

import (
	"context"
	"fmt"

	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
)

func cmdCertIssue(ctx context.Context, args []string) error {
	f := newFlags("cert issue", "--tckn N --given G --surname S --out BASE [--p12-password P]")
	load := configFlags(f)
	tckn := f.String("tckn", "", "holder's TCKN, written into the subject serialNumber (required)")
	given := f.String("given", "", "holder's given name")
	surname := f.String("surname", "", "holder's surname")
	email := f.String("email", "", "holder's KEP address, written as an rfc822Name")
	out := f.String("out", "", "write BASE.crt, BASE.key and (with --p12-password) BASE.p12 (required)")
	p12 := f.String("p12-password", "", "also write a PKCS#12 file with this password")
	keyType := f.String("key-type", string(pki.RSA2048), "ecdsa-p256, rsa-2048 or rsa-3072 (Turkish qualified certificates are mostly RSA)")
	prefix := f.String("serial-prefix", "TCKN", "how the TCKN is written in serialNumber: TCKN, IDCTR- or nothing")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := identity.ValidateTCKN(*tckn); err != nil {
		return err
	}
	if *out == "" || *given == "" || *surname == "" {
		return fmt.Errorf("--given, --surname and --out are required")
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	ca, err := provider.DevESignCA(cfg)
	if err != nil {
		return err
	}
	is, err := ca.IssueSigner(pki.SignerSubject(*tckn, *given, *surname, *prefix), *email, pki.KeyType(*keyType))
	if err != nil {
		return err
	}
	crt, key, p12path, err := is.WriteFiles(*out, *p12)
	if err != nil {
		return err
	}
	fmt.Printf("certificate %s\nkey         %s\n", crt, key)
	if p12path != "" {
		fmt.Printf("pkcs12      %s\n", p12path)
	}
	return nil
}
