package pkcs11_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pkcs11"
	"github.com/kephs/kep/pkcs11/softhsm"
)

const pin = "123456"

var (
	once    sync.Once
	hsm     *softhsm.Dir
	hsmErr  error
	rsaKey  *rsa.PrivateKey
	rsaCert *x509.Certificate
)

// token makes, once per test process (SoftHSM reads SOFTHSM2_CONF when the
// module is first initialised), a token directory with one token "kep-test"
// holding an imported RSA key with its certificate and two EC keys made on
// the token by pkcs11-tool, with no certificate.
func token(t *testing.T) *softhsm.Dir {
	t.Helper()
	testtool.Require(t, testtool.SoftHSM2)
	testtool.Require(t, testtool.PKCS11Tool)
	once.Do(func() {
		dir, err := os.MkdirTemp("", "kep-pkcs11-test-")
		if hsmErr = err; err != nil {
			return
		}
		if hsm, hsmErr = softhsm.Open(dir); hsmErr != nil {
			return
		}
		os.Setenv("SOFTHSM2_CONF", hsm.Conf)
		if hsmErr = hsm.InitToken("kep-test", "so-"+pin, pin); hsmErr != nil {
			return
		}
		rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "token test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rsaKey.Public(), rsaKey)
		rsaCert, _ = x509.ParseCertificate(der)
		if hsmErr = hsm.ImportKey("kep-test", pin, rsaKey, rsaCert, "rsa", []byte{1}); hsmErr != nil {
			return
		}
		if hsmErr = hsm.GenerateKey("kep-test", pin, "EC:secp384r1", "p384", []byte{2}); hsmErr != nil {
			return
		}
		if hsmErr = hsm.GenerateKey("kep-test", pin, "EC:prime256v1", "p256", []byte{3}); hsmErr != nil {
			return
		}
		// A qualified signature card's key: the PIN again for each
		// signature (CKA_ALWAYS_AUTHENTICATE).
		hsmErr = hsm.GenerateKey("kep-test", pin, "EC:secp384r1", "qes", []byte{4}, "--always-auth", "--usage-sign")
	})
	if hsmErr != nil {
		t.Fatal(hsmErr)
	}
	return hsm
}

func open(t *testing.T, key string) *pkcs11.Key {
	t.Helper()
	k, err := pkcs11.Open(pkcs11.Config{Module: softhsm.Module, Token: "kep-test", Key: key, PIN: pin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// TestSign signs with each mechanism on SoftHSM2 and checks the signature
// with the standard library.
func TestSign(t *testing.T) {
	token(t)
	msg := []byte("KEP iletisi")
	d256 := sha256.Sum256(msg)
	d384 := sha512.Sum384(msg)
	cases := []struct {
		name string
		key  string
		opts crypto.SignerOpts
		dig  []byte
	}{
		{"rsa-pkcs1-sha256", "rsa", crypto.SHA256, d256[:]},
		{"rsa-pkcs1-sha384", "id:01", crypto.SHA384, d384[:]},
		{"rsa-pss-sha256", "rsa", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, d256[:]},
		{"rsa-pss-sha384-auto", "01", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA384}, d384[:]},
		{"ecdsa-p384-sha384", "p384", crypto.SHA384, d384[:]},
		{"ecdsa-p384-sha256", "id:02", crypto.SHA256, d256[:]},
		{"ecdsa-p256-sha256", "p256", crypto.SHA256, d256[:]},
		{"always-authenticate", "qes", crypto.SHA384, d384[:]},
		{"always-authenticate twice", "qes", crypto.SHA256, d256[:]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := open(t, c.key)
			sig, err := k.Sign(rand.Reader, c.dig, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			switch pub := k.Public().(type) {
			case *rsa.PublicKey:
				if k.Cert == nil || !k.Cert.Equal(rsaCert) {
					t.Error("the RSA key's certificate was not found on the token")
				}
				if pss, ok := c.opts.(*rsa.PSSOptions); ok {
					err = rsa.VerifyPSS(pub, c.opts.HashFunc(), c.dig, sig, pss)
				} else {
					err = rsa.VerifyPKCS1v15(pub, c.opts.HashFunc(), c.dig, sig)
				}
			case *ecdsa.PublicKey:
				want := map[string]elliptic.Curve{"p384": elliptic.P384(), "id:02": elliptic.P384(), "p256": elliptic.P256(), "qes": elliptic.P384()}[c.key]
				if pub.Curve != want {
					t.Errorf("curve %s, want %s", pub.Curve.Params().Name, want.Params().Name)
				}
				if !ecdsa.VerifyASN1(pub, c.dig, sig) {
					err = errors.New("ECDSA signature does not verify")
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCMS signs a message on the token with package cms and has both cms
// and openssl verify it.
func TestCMS(t *testing.T) {
	token(t)
	openssl := testtool.Require(t, testtool.OpenSSL)
	for _, key := range []string{"rsa", "p384"} {
		t.Run(key, func(t *testing.T) {
			k := open(t, key)
			cert := k.Cert
			if cert == nil { // the EC keys were made on the token: certify them here
				tmpl := &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: "token " + key},
					NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
					KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
				if err != nil {
					t.Fatal(err)
				}
				cert, _ = x509.ParseCertificate(der)
			}
			msg, err := cms.BuildSigned([]byte("From: a@hs01.kep.tr\r\nSubject: t\r\n"), []byte("Content-Type: text/plain\r\n\r\nmerhaba\r\n"), k, cert, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cms.Verify(msg); err != nil {
				t.Fatalf("cms.Verify: %v", err)
			}
			dir := t.TempDir()
			in, ca := filepath.Join(dir, "m.eml"), filepath.Join(dir, "ca.pem")
			os.WriteFile(in, msg, 0o600)
			os.WriteFile(ca, pemCert(cert), 0o600)
			out, err := exec.Command(openssl, "cms", "-verify", "-in", in, "-CAfile", ca, "-purpose", "any", "-out", os.DevNull).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Verification successful") {
				t.Fatalf("openssl cms -verify: %v: %s", err, out)
			}
		})
	}
}

// TestRefusals: each failure names what to do.
func TestRefusals(t *testing.T) {
	token(t)
	cases := []struct {
		name string
		cfg  pkcs11.Config
		want error
		says string
	}{
		{"wrong pin", pkcs11.Config{Module: softhsm.Module, Token: "kep-test", Key: "rsa", PIN: "000000"}, pkcs11.ErrLogin, "CKR_PIN_INCORRECT"},
		{"no such key", pkcs11.Config{Module: softhsm.Module, Token: "kep-test", Key: "nokey", PIN: pin}, pkcs11.ErrNoKey, `"p384"`},
		{"no such token", pkcs11.Config{Module: softhsm.Module, Token: "other", Key: "rsa", PIN: pin}, pkcs11.ErrNoToken, `"kep-test"`},
		{"no module", pkcs11.Config{Module: "/nonexistent/libnone.so", Token: "kep-test", Key: "rsa", PIN: pin}, pkcs11.ErrModule, "apt-get install"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := pkcs11.Open(c.cfg)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("Open: %v, want %v saying %s", err, c.want, c.says)
			}
			if strings.Contains(err.Error(), c.cfg.PIN) {
				t.Errorf("the error shows the PIN: %v", err)
			}
		})
	}
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// TestSharedLogin: closing one key leaves another on the same token usable
// (the login is the token's, not the session's).
func TestSharedLogin(t *testing.T) {
	token(t)
	a, err := pkcs11.Open(pkcs11.Config{Module: softhsm.Module, Token: "kep-test", Key: "p256", PIN: pin})
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, "p384")
	a.Close()
	d := sha256.Sum256([]byte("x"))
	if _, err := b.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Fatalf("after closing another key: %v", err)
	}
	if _, err := a.Sign(rand.Reader, d[:], crypto.SHA256); err == nil {
		t.Error("a closed key signed")
	}
}
