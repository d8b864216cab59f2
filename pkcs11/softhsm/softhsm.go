// Package softhsm is in charge of SoftHSM2 tokens made on this machine: a
// token directory with its own configuration file, tokens initialised in it
// and keys and certificates put on them, with Debian's softhsm2-util and
// OpenSC's pkcs11-tool. `kep demo` gives the sample company its e-seal on
// such a token, and the tests of package pkcs11, client and signer sign on
// one. A real smartcard or HSM is initialised by its owner's tools instead.
package softhsm

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Module is where Debian's softhsm2 package puts the PKCS#11 module.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// Available reports why SoftHSM2 cannot be used here, or nil.
func Available() error {
	if _, err := os.Stat(Module); err != nil {
		return fmt.Errorf("softhsm: no PKCS#11 module at %s (apt-get install softhsm2)", Module)
	}
	for _, c := range []string{"softhsm2-util", "pkcs11-tool"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("softhsm: %s is not installed (apt-get install softhsm2 opensc)", c)
		}
	}
	return nil
}

// Dir is a SoftHSM2 token directory with its configuration file.
type Dir struct {
	// Conf is the configuration file; a process that loads the module must
	// have SOFTHSM2_CONF set to it before the module is initialised.
	Conf string
}

// Open makes (or reuses) a token directory under dir: dir/softhsm2.conf and
// dir/tokens.
func Open(dir string) (*Dir, error) {
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	text := fmt.Sprintf("# SoftHSM2 configuration made by kep (package pkcs11/softhsm)\ndirectories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	return &Dir{Conf: conf}, nil
}

// Env is the environment of a command that uses this directory.
func (d *Dir) Env() []string { return append(os.Environ(), "SOFTHSM2_CONF="+d.Conf) }

func (d *Dir) run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = d.Env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("softhsm: %s %s: %v: %s", name, args[0], err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// InitToken initialises a new token labelled label with the given security
// officer and user PINs.
func (d *Dir) InitToken(label, soPIN, pin string) error {
	return d.run("softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", soPIN, "--pin", pin)
}

// ImportKey puts key (and cert, when not nil) on the token labelled token,
// under label and id.
func (d *Dir) ImportKey(token, pin string, key crypto.Signer, cert *x509.Certificate, label string, id []byte) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(d.Conf), "import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	keyFile := filepath.Join(tmp, "key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	if err := d.run("softhsm2-util", "--import", keyFile, "--token", token, "--label", label, "--id", hex.EncodeToString(id), "--pin", pin); err != nil {
		return err
	}
	if cert == nil {
		return nil
	}
	return d.WriteCert(token, pin, cert, label, id)
}

// GenerateKey makes a key pair on the token: keyType as pkcs11-tool names
// it, e.g. "EC:secp384r1", "EC:prime256v1" or "rsa:2048"; extra are more
// pkcs11-tool flags (e.g. --always-auth).
func (d *Dir) GenerateKey(token, pin, keyType, label string, id []byte, extra ...string) error {
	if len(id) == 0 {
		return errors.New("softhsm: a key needs an id")
	}
	args := append([]string{"--module", Module, "--token-label", token, "--login", "--pin", pin,
		"--keypairgen", "--key-type", keyType, "--label", label, "--id", hex.EncodeToString(id)}, extra...)
	return d.run("pkcs11-tool", args...)
}

// WriteCert stores cert on the token beside the key with id.
func (d *Dir) WriteCert(token, pin string, cert *x509.Certificate, label string, id []byte) error {
	f := filepath.Join(filepath.Dir(d.Conf), "cert-"+hex.EncodeToString(id)+".der")
	if err := os.WriteFile(f, cert.Raw, 0o600); err != nil {
		return err
	}
	defer os.Remove(f)
	return d.run("pkcs11-tool", "--module", Module, "--token-label", token, "--login", "--pin", pin,
		"--write-object", f, "--type", "cert", "--label", label, "--id", hex.EncodeToString(id))
}
