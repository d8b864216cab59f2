package cms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// opensslKey makes a key and a self-signed certificate with openssl (an
// e-seal in the making: issue 13 needs P-384), returning a signer for
// opensslSign.
func opensslKey(t *testing.T, name string, keyArgs ...string) *signer {
	t.Helper()
	dir := t.TempDir()
	s := &signer{crt: filepath.Join(dir, name+".crt"), key: filepath.Join(dir, name+".key")}
	args := append([]string{"req", "-x509", "-nodes", "-days", "2", "-subj", "/C=TR/O=KEP Test/CN=" + name,
		"-keyout", s.key, "-out", s.crt}, keyArgs...)
	run(t, args...)
	return s
}

// TestVerifyAlgorithms checks the policy table against signatures openssl
// makes: what users (and e-seals) sign with today is accepted, what is
// retired is refused with a reason.
func TestVerifyAlgorithms(t *testing.T) {
	f := getFixture(t)
	openssl(t)
	p384 := opensslKey(t, "p384", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384")
	p521 := opensslKey(t, "p521", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521")
	rsa1024 := opensslKey(t, "rsa1024", "-newkey", "rsa:1024")
	entity := testEntity("1000")
	cases := []struct {
		name  string
		s     *signer
		flags []string
		hash  crypto.Hash
		want  error // under Current
	}{
		{"rsa-pkcs1-sha256", f.rsa, nil, crypto.SHA256, nil},
		{"rsa-pkcs1-sha384", f.rsa, []string{"-md", "sha384"}, crypto.SHA384, nil},
		{"rsa-pss-sha256", f.rsa, []string{"-keyopt", "rsa_padding_mode:pss"}, crypto.SHA256, nil},
		{"rsa-pss-sha384", f.rsa, []string{"-md", "sha384", "-keyopt", "rsa_padding_mode:pss"}, crypto.SHA384, nil},
		{"rsa-pss-sha512-maxsalt", f.rsa, []string{"-md", "sha512", "-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:max"}, crypto.SHA512, nil},
		{"rsa-pss-opaque", f.rsa, []string{"-nodetach", "-keyopt", "rsa_padding_mode:pss"}, crypto.SHA256, nil},
		{"ecdsa-p256-sha256", f.ec, nil, crypto.SHA256, nil},
		{"ecdsa-p384-sha384", p384, []string{"-md", "sha384"}, crypto.SHA384, nil},
		{"ecdsa-p384-sha256", p384, nil, crypto.SHA256, nil},
		{"ecdsa-p384-sha512-cades", p384, []string{"-md", "sha512", "-cades"}, crypto.SHA512, nil},
		{"ecdsa-p521-sha512", p521, []string{"-md", "sha512"}, crypto.SHA512, nil},
		{"sha1", f.ec, []string{"-md", "sha1"}, crypto.SHA1, ErrUnsupportedAlgorithm},
		{"rsa-pss-sha1", f.rsa, []string{"-md", "sha1", "-keyopt", "rsa_padding_mode:pss"}, crypto.SHA1, ErrUnsupportedAlgorithm},
		{"sha224", f.rsa, []string{"-md", "sha224"}, crypto.SHA224, ErrUnsupportedAlgorithm},
		{"md5", f.rsa, []string{"-md", "md5"}, crypto.MD5, ErrUnsupportedAlgorithm},
		{"rsa-1024", rsa1024, nil, crypto.SHA256, ErrUnsupportedAlgorithm},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, stderr, err := tryRun(t, append([]string{"cms", "-sign", "-in", writeTemp(t, "e.txt", entity),
				"-signer", c.s.crt, "-inkey", c.s.key}, c.flags...)...)
			if err != nil {
				t.Skipf("openssl cannot make this signature here: %s", stderr)
			}
			s, err := Verify(msg)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Verify: %v, want %v", err, c.want)
			}
			if err != nil {
				t.Logf("refused: %v", err)
				return
			}
			if s.DigestAlgorithm != c.hash {
				t.Errorf("DigestAlgorithm = %v, want %v", s.DigestAlgorithm, c.hash)
			}
			// openssl agrees that the signature verifies (the chain is
			// package identity's to check, hence -noverify).
			if out, stderr, err := tryRun(t, "cms", "-verify", "-noverify", "-in", writeTemp(t, "signed.eml", msg), "-out", os.DevNull); err != nil {
				t.Fatalf("openssl cms -verify: %v: %s%s", err, out, stderr)
			}
		})
	}

	// Old evidence, checked as of its time: SHA-1 and short RSA keys made
	// before their cut-offs stand; MD5 never does.
	asOf := []struct {
		name  string
		s     *signer
		flags []string
		at    time.Time
		ok    bool
	}{
		{"sha1 in 2015", f.ec, []string{"-md", "sha1"}, date(2015, 6, 1), true},
		{"sha1 in 2016-12-31", f.rsa, []string{"-md", "sha1"}, date(2016, 12, 31), true},
		{"sha1 in 2017", f.ec, []string{"-md", "sha1"}, date(2017, 1, 1), false},
		{"sha224 in 2025", f.rsa, []string{"-md", "sha224"}, date(2025, 1, 1), true},
		{"rsa-1024 in 2013", rsa1024, nil, date(2013, 3, 1), true},
		{"rsa-1024 in 2015", rsa1024, nil, date(2015, 3, 1), false},
		{"md5 in 2000", f.rsa, []string{"-md", "md5"}, date(2000, 1, 1), false},
		{"sha256 in 2040", f.rsa, nil, date(2040, 1, 1), true},
	}
	for _, c := range asOf {
		t.Run("as-of/"+c.name, func(t *testing.T) {
			der, stderr, err := tryRun(t, append([]string{"cms", "-sign", "-nodetach", "-outform", "DER", "-in", writeTemp(t, "e.txt", entity),
				"-signer", c.s.crt, "-inkey", c.s.key}, c.flags...)...)
			if err != nil {
				t.Skipf("openssl cannot make this signature here: %s", stderr)
			}
			sd, err := ParseSignedData(der)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sd.VerifySigner(0, nil, nil, Current); !errors.Is(err, ErrUnsupportedAlgorithm) && c.name != "sha256 in 2040" {
				t.Errorf("Current: %v, want ErrUnsupportedAlgorithm", err)
			}
			_, err = sd.VerifySigner(0, nil, nil, AsOf(c.at))
			if (err == nil) != c.ok {
				t.Fatalf("AsOf(%s): %v, want ok=%v", c.at.Format(time.DateOnly), err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrUnsupportedAlgorithm) {
				t.Errorf("error %v does not wrap ErrUnsupportedAlgorithm", err)
			}
			t.Logf("AsOf(%s): %v", c.at.Format(time.DateOnly), err)
		})
	}
}

func TestCheckDER(t *testing.T) {
	f := getFixture(t)
	der, err := SignDetached([]byte("x"), f.provider.Key, f.provider.Cert, f.provider.Chain)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.CheckDER(); err != nil {
		t.Errorf("our DER: %v", err)
	}
	// The same structure with the outer length in long form is BER.
	ber := append([]byte{0x30, 0x84, 0, 0, byte((len(der) - 4) >> 8), byte(len(der) - 4)}, der[4:]...)
	if der[1] != 0x82 {
		t.Fatalf("unexpected length form % x", der[:4])
	}
	sd, err = ParseSignedData(ber)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.CheckDER(); !errors.Is(err, ErrMalformed) {
		t.Errorf("BER: %v, want ErrMalformed", err)
	}
}

// A signature algorithm that names another hash than the digest algorithm
// is refused, though the signature itself is over the right bytes.
func TestSignatureAlgorithmNamesDigest(t *testing.T) {
	f := getFixture(t)
	s, err := newDetachedSigner(f.ec.Key, f.ec.Cert, f.ec.Chain)
	if err != nil {
		t.Fatal(err)
	}
	s.sigAlg = tlv(0x30, mustDER(oidECDSAWithSHA384)) // the signature is still over SHA-256
	der, err := s.signData([]byte("x"), time.Now(), true)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := ParseSignedData(der)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sd.VerifySigner(0, nil, nil, Current); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("ecdsa-with-SHA384 over a SHA-256 digest: %v, want ErrBadSignature", err)
	}
	s.sigAlg = tlv(0x30, mustDER(oidECDSAWithSHA256))
	der, _ = s.signData([]byte("x"), time.Now(), true)
	sd, _ = ParseSignedData(der)
	if _, err := sd.VerifySigner(0, nil, nil, Current); err != nil {
		t.Fatalf("matching names: %v", err)
	}
}

// The provider's signer with an ECDSA P-384 key (the e-seal of issue 13):
// openssl verifies what it makes, detached and encapsulated, and so does the
// one model under the policy for new signatures.
func TestSignP384OpenSSL(t *testing.T) {
	openssl(t)
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(384), Subject: pkix.Name{CommonName: "KEP e-seal P-384"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	certPEM := writeTemp(t, "eseal.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	content := []byte("Content-Type: text/plain\r\n\r\nmühür\r\n")
	sig, err := SignDetached(content, key, cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", writeTemp(t, "sig.p7s", sig),
		"-content", writeTemp(t, "content.bin", content), "-CAfile", certPEM, "-purpose", "any", "-out", os.DevNull)
	opaque, err := SignOpaque([]byte("Subject: x\r\n"), content, key, cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "smime", "-verify", "-in", writeTemp(t, "o.eml", opaque), "-CAfile", certPEM, "-purpose", "any", "-out", os.DevNull)
	s, err := Verify(opaque)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Signer.Equal(cert) || !s.Signers[0].CertificateBound {
		t.Errorf("signer %v, bound %v", s.Signer.Subject, s.Signers[0].CertificateBound)
	}
}
