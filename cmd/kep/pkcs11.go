package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/pkcs11"
)

// pinEnv is the environment variable a token's PIN may come from; a PIN is
// never a flag value, which any user could read in ps.
const pinEnv = "KEP_PKCS11_PIN"

// tokenOptions are the flags that name a key on a PKCS#11 token (kep send,
// kep signer).
type tokenOptions struct {
	module, token, key string
	pin                string // a demo world's PIN, from demo.json; else asked
}

func tokenFlags(f *flags) *tokenOptions {
	o := &tokenOptions{}
	f.StringVar(&o.module, "pkcs11-module", "", "sign with a key on a smartcard or HSM: its PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so or /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so (PIN from $"+pinEnv+" or a prompt)")
	f.StringVar(&o.token, "pkcs11-token", "", "with --pkcs11-module: the token's label")
	f.StringVar(&o.key, "pkcs11-key", "", "with --pkcs11-module: the key's label, or its id in hex")
	return o
}

// config completes the options with the PIN, from the environment or asked
// on the terminal.
func (o *tokenOptions) config() (pkcs11.Config, error) {
	if o.token == "" || o.key == "" {
		return pkcs11.Config{}, errors.New("--pkcs11-module needs --pkcs11-token LABEL and --pkcs11-key LABEL|ID")
	}
	cfg := pkcs11.Config{Module: o.module, Token: o.token, Key: o.key, PIN: o.pin}
	if o.pin != "" {
		return cfg, nil
	}
	if pin, ok := os.LookupEnv(pinEnv); ok {
		cfg.PIN = pin
		return cfg, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		return cfg, fmt.Errorf("the PIN of token %q: set $%s or run on a terminal", o.token, pinEnv)
	}
	defer tty.Close()
	fmt.Fprintf(tty, "PIN of token %q: ", o.token)
	pin, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return cfg, fmt.Errorf("read the PIN: %w", err)
	}
	cfg.PIN = string(pin)
	return cfg, nil
}

// signer opens the key; cert, when not nil, replaces the token's.
func (o *tokenOptions) signer(cert *x509.Certificate, chain []*x509.Certificate) (*client.Signer, *pkcs11.Key, error) {
	cfg, err := o.config()
	if err != nil {
		return nil, nil, err
	}
	return client.TokenSigner(cfg, cert, chain)
}
