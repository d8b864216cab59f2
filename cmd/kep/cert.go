package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/kephs/kep/config"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
)

func cmdCertIssue(ctx context.Context, args []string) error {
	f := newFlags("cert issue", "--tckn N --given G --surname S --out BASE [--p12-password P] | --eseal --vkn N --org NAME --out BASE")
	load := configFlags(f)
	tckn := f.String("tckn", "", "holder's TCKN, written into the subject serialNumber (required)")
	given := f.String("given", "", "holder's given name")
	surname := f.String("surname", "", "holder's surname")
	email := f.String("email", "", "holder's KEP address, written as an rfc822Name")
	out := f.String("out", "", "write BASE.crt, BASE.key and (with --p12-password) BASE.p12 (required)")
	p12 := f.String("p12-password", "", "also write a PKCS#12 file with this password")
	keyType := f.String("key-type", string(pki.RSA2048), "ecdsa-p256, rsa-2048 or rsa-3072 (Turkish qualified certificates are mostly RSA)")
	prefix := f.String("serial-prefix", "TCKN", "how the TCKN is written in serialNumber: TCKN, IDCTR- or nothing")
	eseal := f.Bool("eseal", false, "issue a company's e-seal (mali mühür) certificate bound to --vkn instead of a person's (key: ECDSA P-384 unless --key-type)")
	vkn := f.String("vkn", "", "with --eseal: the company's VKN, written into the subject")
	org := f.String("org", "", "with --eseal: the company's name")
	form := f.String("vkn-form", pki.ESealOrgID, "with --eseal: where the VKN goes: organizationIdentifier (VATTR-…) or serialNumber (VKN…)")
	if err := f.parse(args); err != nil {
		return err
	}
	if *eseal {
		kt := pki.ECDSAP384
		if isFlagSet(f, "key-type") {
			kt = pki.KeyType(*keyType)
		}
		return issueESeal(load, *vkn, *org, *form, *email, *out, *p12, kt)
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

func isFlagSet(f *flags, name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// issueESeal is `kep cert issue --eseal`: a company's e-seal certificate
// from the development CA, its key in a file.
func issueESeal(load func() (*config.Config, error), vkn, org, form, email, out, p12 string, kt pki.KeyType) error {
	if err := identity.ValidateVKN(vkn); err != nil {
		return err
	}
	if out == "" || org == "" {
		return fmt.Errorf("--eseal needs --vkn, --org and --out")
	}
	subj, err := pki.ESealSubject(vkn, org, form)
	if err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	ca, err := provider.DevESignCA(cfg)
	if err != nil {
		return err
	}
	is, err := ca.IssueESeal(subj, email, kt, nil)
	if err != nil {
		return err
	}
	crt, key, p12path, err := is.WriteFiles(out, p12)
	if err != nil {
		return err
	}
	fmt.Printf("e-seal      %s\nkey         %s\n", crt, key)
	if p12path != "" {
		fmt.Printf("pkcs12      %s\n", p12path)
	}
	return nil
}
