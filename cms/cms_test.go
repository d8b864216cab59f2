package cms

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pki"
)

// fixture is the development PKI the tests share: an e-signature CA, two
// signers (RSA-2048 and ECDSA P-256, as Turkish qualified certificates with a
// TCKN) and a provider, with their PEM files.
type fixture struct {
	dir      string
	ca       *pki.CA
	caPEM    string
	rsa, ec  *signer
	provider *signer
}

type signer struct {
	*pki.Issued
	crt, key string
}

var (
	fixtureOnce sync.Once
	theFixture  *fixture
	fixtureErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theFixture != nil {
		os.RemoveAll(theFixture.dir)
	}
	os.Exit(code)
}

func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixtureOnce.Do(func() { theFixture, fixtureErr = newFixture() })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return theFixture
}

func newFixture() (*fixture, error) {
	dir, err := os.MkdirTemp("", "cms-test-")
	if err != nil {
		return nil, err
	}
	f := &fixture{dir: dir}
	f.ca, err = pki.NewRootCA(pkix.Name{Country: []string{"TR"}, Organization: []string{"KEP Test"}, CommonName: "KEP Test NES CA"}, pki.RSA2048, 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	f.caPEM = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(f.caPEM, pki.CertPEM(f.ca.Cert), 0o644); err != nil {
		return nil, err
	}
	mk := func(name string, is *pki.Issued, err error) (*signer, error) {
		if err != nil {
			return nil, err
		}
		s := &signer{Issued: is, crt: filepath.Join(dir, name+".crt"), key: filepath.Join(dir, name+".key")}
		kp, err := pki.KeyPEM(is.Key)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(s.crt, pki.CertPEM(is.Cert), 0o644); err != nil {
			return nil, err
		}
		return s, os.WriteFile(s.key, kp, 0o600)
	}
	is, err := f.ca.IssueSigner(pki.SignerSubject("10000000146", "Ayşe", "Yılmaz", "TCKN"), "ayse.yilmaz@hs01.kep.tr", pki.RSA2048)
	if f.rsa, err = mk("rsa", is, err); err != nil {
		return nil, err
	}
	is, err = f.ca.IssueSigner(pki.SignerSubject("10000000078", "Ali", "Çelik", ""), "ali.celik@hs01.kep.tr", pki.ECDSAP256)
	if f.ec, err = mk("ec", is, err); err != nil {
		return nil, err
	}
	is, err = f.ca.IssueProvider("hs01.kep.tr", []string{"hs01.kep.tr"}, pki.ECDSAP256)
	if f.provider, err = mk("provider", is, err); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *fixture) signers() []struct {
	name string
	s    *signer
} {
	return []struct {
		name string
		s    *signer
	}{{"rsa2048", f.rsa}, {"ecdsa-p256", f.ec}}
}

func openssl(t testing.TB) string {
	t.Helper()
	return testtool.Require(t, testtool.OpenSSL)
}

// run executes openssl and returns its stdout; it fails the test on error.
func run(t testing.TB, args ...string) []byte {
	t.Helper()
	out, stderr, err := tryRun(t, args...)
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

func tryRun(t testing.TB, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	cmd := exec.Command(openssl(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testEntity is a MIME entity with bare LF line breaks (as a file on disk),
// larger than openssl's 4 KiB streaming chunk, with 8-bit Turkish text.
func testEntity(marker string) []byte {
	var b strings.Builder
	b.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
	b.WriteString("Sayın Ayşe Yılmaz,\n\nKira bedeli olan " + marker + " TL ödenmemiştir. İhtar olunur.\n\n")
	for i := range 100 {
		fmt.Fprintf(&b, "Satır %03d: çğıöşü ÇĞİÖŞÜ — the quick brown fox jumps over the lazy dog.\n", i)
	}
	return []byte(b.String())
}

// opensslSign signs entity with openssl (cms or smime) and returns the message.
func opensslSign(t testing.TB, f *fixture, s *signer, entity []byte, cmd string, flags ...string) []byte {
	t.Helper()
	in := writeTemp(t, "entity.txt", entity)
	args := append([]string{cmd, "-sign", "-in", in, "-signer", s.crt, "-inkey", s.key, "-certfile", f.caPEM,
		"-from", "ayse.yilmaz@hs01.kep.tr", "-to", "mehmet.kaya@hs02.kep.tr", "-subject", "Ihtarname"}, flags...)
	return run(t, args...)
}

func TestVerifyOpenSSL(t *testing.T) {
	f := getFixture(t)
	openssl(t)
	entity := testEntity("1000")
	forms := []struct {
		name     string
		cmd      string
		flags    []string
		detached bool
		bound    bool // carries signing-certificate(-v2)
	}{
		{"cms-detached", "cms", nil, true, false},
		{"cms-opaque", "cms", []string{"-nodetach"}, false, false},
		{"cms-opaque-stream", "cms", []string{"-nodetach", "-stream"}, false, false},
		{"cms-detached-stream", "cms", []string{"-stream"}, true, false},
		{"cms-cades", "cms", []string{"-cades"}, true, true},
		{"cms-keyid", "cms", []string{"-keyid"}, true, false},
		{"cms-sha512", "cms", []string{"-md", "sha512"}, true, false},
		{"smime-detached", "smime", nil, true, false},
		{"smime-opaque", "smime", []string{"-nodetach"}, false, false},
	}
	for _, sg := range f.signers() {
		for _, form := range forms {
			msgLF := opensslSign(t, f, sg.s, entity, form.cmd, form.flags...)
			for _, eol := range []string{"LF", "CRLF"} {
				t.Run(sg.name+"/"+form.name+"/"+eol, func(t *testing.T) {
					msg := msgLF
					if eol == "CRLF" {
						msg = toCRLF(msgLF) // what SMTP does to openssl's output
					}
					s, err := Verify(msg)
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					if !s.Signer.Equal(sg.s.Cert) {
						t.Errorf("Signer = %s, want %s", s.Signer.Subject, sg.s.Cert.Subject)
					}
					if !bytes.Equal(s.Content, toCRLF(entity)) {
						t.Errorf("Content differs from the CRLF entity:\n%q", s.Content[:min(200, len(s.Content))])
					}
					if s.Detached != form.detached {
						t.Errorf("Detached = %v", s.Detached)
					}
					if got := s.Header.Get("Subject"); got != "Ihtarname" {
						t.Errorf("Subject = %q", got)
					}
					if d := time.Since(s.SigningTime); d < -time.Minute || d > 5*time.Minute {
						t.Errorf("SigningTime = %v", s.SigningTime)
					}
					wantHash := crypto.SHA256
					if strings.Contains(form.name, "sha512") {
						wantHash = crypto.SHA512
					}
					if s.DigestAlgorithm != wantHash {
						t.Errorf("DigestAlgorithm = %v", s.DigestAlgorithm)
					}
					if len(s.Certificates) != 2 || len(s.Signers) != 1 || s.Signers[0].CertificateBound != form.bound {
						t.Errorf("%d certificates, %d signers, bound %v", len(s.Certificates), len(s.Signers), s.Signers[0].CertificateBound)
					}
					// The caller (package identity) can build the chain from what Verify returns.
					roots := x509.NewCertPool()
					roots.AddCert(f.ca.Cert)
					if _, err := s.Signer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: s.Intermediates(),
						CurrentTime: s.SigningTime, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
						t.Errorf("chain: %v", err)
					}
				})
			}
		}
	}
}

// An openssl -binary signature covers the bytes as they are (bare LF here):
// Verify falls back to them when the CRLF form does not match.
func TestVerifyOpenSSLBinary(t *testing.T) {
	f := getFixture(t)
	entity := testEntity("1000")
	msg := opensslSign(t, f, f.rsa, entity, "cms", "-binary")
	s, err := Verify(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Content, entity) {
		t.Error("Content is not the bytes as signed")
	}
	// After SMTP turned LF into CRLF the signature is broken, for openssl too.
	if _, err := Verify(toCRLF(msg)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("CRLF-converted -binary message: err = %v, want ErrBadSignature", err)
	}
}

func TestVerifyMultipleSigners(t *testing.T) {
	f := getFixture(t)
	in := writeTemp(t, "entity.txt", testEntity("1000"))
	msg := run(t, "cms", "-sign", "-in", in, "-signer", f.rsa.crt, "-inkey", f.rsa.key,
		"-signer", f.ec.crt, "-inkey", f.ec.key, "-certfile", f.caPEM)
	s, err := Verify(msg)
	if err != nil {
		t.Fatal(err)
	}
	// openssl DER-sorts the SignerInfos SET, so the order is not the command line's.
	if len(s.Signers) != 2 || s.Signer != s.Signers[0].Certificate {
		t.Fatalf("%d signers", len(s.Signers))
	}
	algs := map[x509.SignatureAlgorithm]*x509.Certificate{}
	for _, si := range s.Signers {
		algs[si.SignatureAlgorithm] = si.Certificate
	}
	if !algs[x509.SHA256WithRSA].Equal(f.rsa.Cert) || !algs[x509.ECDSAWithSHA256].Equal(f.ec.Cert) {
		t.Errorf("signers: %v", algs)
	}
}

func TestVerifyNoAttributes(t *testing.T) {
	f := getFixture(t)
	msg := opensslSign(t, f, f.ec, testEntity("1000"), "cms", "-noattr")
	s, err := Verify(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !s.SigningTime.IsZero() {
		t.Errorf("SigningTime = %v, want zero", s.SigningTime)
	}
}

// replaceInOpaque decodes the CMS of an application/pkcs7-mime message,
// applies edit to it and re-encodes the message.
func replaceInOpaque(t *testing.T, msg []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	hdr, body := splitHeader(msg)
	der, err := decodeBase64(body)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.Write(hdr)
	out.WriteString("\n")
	writeBase64Lines(&out, edit(der))
	return out.Bytes()
}

func TestVerifyRejects(t *testing.T) {
	f := getFixture(t)
	openssl(t)
	entity := testEntity("1000")
	detached := opensslSign(t, f, f.rsa, entity, "cms")
	opaque := opensslSign(t, f, f.ec, entity, "cms", "-nodetach")
	other := opensslSign(t, f, f.rsa, testEntity("9000"), "cms")

	// The first message with the second one's signature part.
	swapped := func() []byte {
		h, b := splitHeader(detached)
		_, p := mediaParams(t, detached)
		_, p2 := mediaParams(t, other)
		parts, _ := splitMultipart(b, p["boundary"])
		_, b2 := splitHeader(other)
		parts2, _ := splitMultipart(b2, p2["boundary"])
		d := "--" + p["boundary"]
		return fmt.Appendf(nil, "%s\n%s\n%s\n%s\n%s\n%s--\n", h, d, parts[0], d, parts2[1], d)
	}()

	encrypted := run(t, "smime", "-encrypt", "-aes256", "-in", writeTemp(t, "e.txt", entity), f.rsa.crt)
	encryptedCMS := run(t, "cms", "-encrypt", "-aes256", "-in", writeTemp(t, "e.txt", entity), f.ec.crt)
	certsOnlyDER := run(t, "crl2pkcs7", "-nocrl", "-certfile", f.rsa.crt, "-outform", "DER")
	certsOnly := func(smimeType string) []byte {
		var b bytes.Buffer
		b.WriteString("MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime" + smimeType + "\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		writeBase64Lines(&b, certsOnlyDER)
		return b.Bytes()
	}
	deep := func() []byte {
		var b bytes.Buffer
		b.WriteString("Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		writeBase64Lines(&b, bytes.Repeat([]byte{0x30, 0x80}, 5_000_000))
		return b.Bytes()
	}()
	// Signed with the RSA key, but the signing-certificate-v2 attribute names
	// the ECDSA signer's certificate.
	wrongCertAttr := func() []byte {
		scv2, err := signingCertificateV2(f.ec.Cert)
		if err != nil {
			t.Fatal(err)
		}
		s, err := newDetachedSigner(f.rsa.Key, f.rsa.Cert, f.rsa.Chain)
		if err != nil {
			t.Fatal(err)
		}
		s.scv2Attr = attrDER(oidAttrSigningCertificateV2, scv2.FullBytes)
		der, err := s.signData(toCRLF(entity), time.Now(), true)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.WriteString("Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		writeBase64Lines(&b, der)
		return b.Bytes()
	}()

	cases := []struct {
		name string
		msg  []byte
		want error
	}{
		{"detached content changed", bytes.Replace(detached, []byte("1000 TL"), []byte("9000 TL"), 1), ErrBadSignature},
		{"detached header of part changed", bytes.Replace(detached, []byte("charset=utf-8"), []byte("charset=latin1"), 1), ErrBadSignature},
		{"detached line added", bytes.Replace(detached, []byte("İhtar olunur."), []byte("İhtar olunur.\n"), 1), ErrBadSignature},
		{"opaque content changed", replaceInOpaque(t, opaque, func(d []byte) []byte { return bytes.Replace(d, []byte("1000 TL"), []byte("9000 TL"), 1) }), ErrBadSignature},
		{"signature from another message", swapped, ErrBadSignature},
		{"signing-certificate-v2 names another certificate", wrongCertAttr, ErrBadSignature},
		{"plain text", []byte("From: a@hs01.kep.tr\nSubject: hi\n\nhello\n"), ErrNotSigned},
		{"text/plain", []byte("Content-Type: text/plain\r\n\r\nhello\r\n"), ErrNotSigned},
		{"multipart/mixed", []byte("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b--\n"), ErrNotSigned},
		{"pgp", []byte("Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=b\n\n--b\n\nhi\n--b\nContent-Type: application/pgp-signature\n\nx\n--b--\n"), ErrNotSigned},
		{"certs-only", certsOnly("; smime-type=certs-only"), ErrNotSigned},
		{"certs-only without smime-type", certsOnly(""), ErrNotSigned},
		{"encrypted smime", encrypted, ErrEncrypted},
		{"encrypted cms", encryptedCMS, ErrEncrypted},
		{"encrypted without smime-type", bytes.Replace(encryptedCMS, []byte("; smime-type=enveloped-data"), nil, 1), ErrEncrypted},
		{"no certificates", opensslSign(t, f, f.rsa, entity, "cms", "-nocerts"), ErrNoSignerCert},
		{"sha1", opensslSign(t, f, f.ec, entity, "cms", "-md", "sha1"), ErrUnsupportedAlgorithm},
		{"no boundary", []byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"\n\nx\n"), ErrMalformed},
		{"no closing boundary", bytes.TrimSuffix(bytes.TrimRight(detached, "\n"), []byte("--")), ErrMalformed},
		{"one part", []byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\n\n--b\n\nhi\n--b--\n"), ErrMalformed},
		{"garbage signature", bytes.Replace(detached, []byte("MII"), []byte("!!!"), 1), ErrMalformed},
		{"truncated cms", replaceInOpaque(t, opaque, func(d []byte) []byte { return d[:len(d)/2] }), ErrMalformed},
		{"deeply nested BER", deep, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(c.msg)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			t.Logf("%v", err)
		})
	}
}

func mediaParams(t *testing.T, msg []byte) (string, map[string]string) {
	t.Helper()
	h, _ := splitHeader(msg)
	hdr, err := parseHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	mt, p, err := mime.ParseMediaType(hdr.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	return mt, p
}

const testHeader = "From: Ayşe Yılmaz <ayse.yilmaz@hs01.kep.tr>\r\n" +
	"To: mehmet.kaya@hs02.kep.tr\r\n" +
	"Subject: =?utf-8?q?=C4=B0htarname?=\r\n" +
	"Date: Mon, 30 Nov 2026 09:00:00 +0300\r\n" +
	"Message-ID: <test-1@hs01.kep.tr>\r\n" +
	"X-TR-REM-iletiTip: standart\r\n"

func TestBuildSignedOpenSSL(t *testing.T) {
	f := getFixture(t)
	openssl(t)
	entity := testEntity("1000")
	for _, sg := range append(f.signers(), struct {
		name string
		s    *signer
	}{"provider-ecdsa-p256", f.provider}) {
		t.Run(sg.name, func(t *testing.T) {
			msg, err := BuildSigned([]byte(testHeader), entity, sg.s.Key, sg.s.Cert, sg.s.Chain)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) {
				t.Fatal("bare LF in the output")
			}
			if !bytes.HasSuffix(msg, []byte("--\r\n")) {
				t.Error("the message does not end with the close delimiter and CRLF")
			}
			path := writeTemp(t, "msg.eml", msg)
			out := filepath.Join(t.TempDir(), "out.txt")
			run(t, "smime", "-verify", "-CAfile", f.caPEM, "-in", path, "-out", out)
			got, _ := os.ReadFile(out)
			if !bytes.Contains(toCRLF(got), toCRLF(entity)[100:]) {
				t.Errorf("openssl smime -verify output differs:\n%q", got[:min(200, len(got))])
			}
			run(t, "cms", "-verify", "-cades", "-CAfile", f.caPEM, "-in", path, "-out", out)
			printed := run(t, "cms", "-verify", "-CAfile", f.caPEM, "-in", path, "-cmsout", "-print", "-noout")
			for _, want := range []string{"signingCertificateV2", "signingTime", "sha256"} {
				if !bytes.Contains(printed, []byte(want)) {
					t.Errorf("openssl cms -print shows no %s", want)
				}
			}
			// Stored by a tool that writes bare LF: still verifies.
			lf := bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
			run(t, "smime", "-verify", "-CAfile", f.caPEM, "-in", writeTemp(t, "lf.eml", lf), "-out", out)

			for _, m := range [][]byte{msg, lf} {
				s, err := Verify(m)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if !bytes.Equal(s.Content, toCRLF(entity)) || !s.Signer.Equal(sg.s.Cert) || !s.Signers[0].CertificateBound {
					t.Errorf("Verify: content equal %v, signer %s, bound %v", bytes.Equal(s.Content, toCRLF(entity)), s.Signer.Subject, s.Signers[0].CertificateBound)
				}
				if s.Header.Get("X-Tr-Rem-Iletitip") != "standart" || s.Header.Get("Mime-Version") != "1.0" {
					t.Errorf("header: %v", s.Header)
				}
			}
		})
	}
}

func TestSignOpaqueOpenSSL(t *testing.T) {
	f := getFixture(t)
	openssl(t)
	entity := testEntity("1000")
	msg, err := SignOpaque([]byte(testHeader), entity, f.rsa.Key, f.rsa.Cert, f.rsa.Chain)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.txt")
	run(t, "cms", "-verify", "-cades", "-CAfile", f.caPEM, "-in", writeTemp(t, "msg.eml", msg), "-out", out)
	run(t, "smime", "-verify", "-CAfile", f.caPEM, "-in", writeTemp(t, "msg.eml", msg), "-out", out)
	s, err := Verify(msg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Detached || !bytes.Equal(s.Content, toCRLF(entity)) || !s.Signers[0].CertificateBound {
		t.Errorf("Detached %v, content equal %v", s.Detached, bytes.Equal(s.Content, toCRLF(entity)))
	}
}

func TestSignDetachedOpenSSL(t *testing.T) {
	f := getFixture(t)
	openssl(t)
	content := []byte("any bytes\x00\xff, not MIME\n")
	for _, sg := range f.signers() {
		sig, err := SignDetached(content, sg.s.Key, sg.s.Cert, sg.s.Chain)
		if err != nil {
			t.Fatal(err)
		}
		run(t, "cms", "-verify", "-cades", "-binary", "-inform", "DER", "-in", writeTemp(t, "sig.p7s", sig),
			"-content", writeTemp(t, "content.bin", content), "-CAfile", f.caPEM, "-out", os.DevNull)
		v, err := verifySignedData(sig, true, content)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.certs) != 2 || !v.signers[0].CertificateBound {
			t.Errorf("%d certs, bound %v", len(v.certs), v.signers[0].CertificateBound)
		}
	}
}

func TestSignErrors(t *testing.T) {
	f := getFixture(t)
	entity := []byte("Content-Type: text/plain\r\n\r\nhi\r\n")
	if _, err := SignDetached(entity, f.ec.Key, f.rsa.Cert, nil); err == nil {
		t.Error("signing with a key that does not match the certificate succeeded")
	}
	for _, h := range []string{"Content-Type: text/plain\r\n", "Subject: a\r\n\r\nX: b\r\n", "Content-Transfer-Encoding: base64\r\n", " bad\r\n"} {
		if _, err := BuildSigned([]byte(h), entity, f.ec.Key, f.ec.Cert, nil); err == nil {
			t.Errorf("header %q accepted", h)
		}
	}
	if _, err := BuildSigned(nil, []byte("no header and body"), f.ec.Key, f.ec.Cert, nil); err == nil {
		t.Error("entity without an empty line accepted")
	}
	// An empty header is fine: MIME-Version is added.
	msg, err := BuildSigned(nil, entity, f.ec.Key, f.ec.Cert, nil)
	if err != nil || !bytes.HasPrefix(msg, []byte("MIME-Version: 1.0\r\nContent-Type: multipart/signed;")) {
		t.Fatalf("err %v, message starts %q", err, msg[:min(len(msg), 60)])
	}
	if _, err := Verify(msg); err != nil {
		t.Error(err)
	}
}

func TestChooseBoundary(t *testing.T) {
	zeros := make([]byte, 18)
	ones := bytes.Repeat([]byte{1}, 18)
	taken := "----=_KEP_" + strings.Repeat("00", 18)
	entity := []byte("Content-Type: text/plain\r\n\r\n--" + taken + "\r\n")
	got, err := chooseBoundary(entity, bytes.NewReader(append(zeros, ones...)))
	if err != nil {
		t.Fatal(err)
	}
	if got == taken || bytes.Contains(entity, []byte(got)) {
		t.Errorf("boundary %q occurs in the entity", got)
	}
}

func TestSplitMultipart(t *testing.T) {
	body := "preamble\r\n--b\r\nA: 1\r\n\r\nfirst\r\n\r\n--bb\r\n--b--x\r\n--b \t\r\nsecond\r\n--b--\r\nepilogue\r\n"
	parts, err := splitMultipart([]byte(body), "b")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A: 1\r\n\r\nfirst\r\n\r\n--bb\r\n--b--x", "second"}
	if len(parts) != 2 || string(parts[0]) != want[0] || string(parts[1]) != want[1] {
		t.Errorf("parts = %q, want %q", parts, want)
	}
	// The boundary at the very start and an empty part.
	parts, err = splitMultipart([]byte("--b\n--b\nx\n--b--"), "b")
	if err != nil || len(parts) != 2 || len(parts[0]) != 0 || string(parts[1]) != "x" {
		t.Errorf("parts = %q, %v", parts, err)
	}
	for _, bad := range []string{"no delimiter", "--b\r\nx\r\n", "x--b\r\n--b--\r\n"} {
		if _, err := splitMultipart([]byte(bad), "b"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestToCRLF(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		"a":              "a",
		"\n":             "\r\n",
		"a\nb\r\nc\n\n":  "a\r\nb\r\nc\r\n\r\n",
		"a\r\n":          "a\r\n",
		"\n\r\n\n":       "\r\n\r\n\r\n",
		"no final break": "no final break",
	} {
		if got := string(toCRLF([]byte(in))); got != want {
			t.Errorf("toCRLF(%q) = %q, want %q", in, got, want)
		}
	}
	b := []byte("already\r\ncanonical\r\n")
	if &toCRLF(b)[0] != &b[0] {
		t.Error("canonical input was copied")
	}
}

func TestNormalizeBER(t *testing.T) {
	der := []byte{0x30, 0x06, 0x04, 0x01, 'a', 0x04, 0x01, 'b'}
	if got, err := normalizeBER(der); err != nil || &got[0] != &der[0] {
		t.Errorf("DER input: %x, %v (want the same slice)", got, err)
	}
	cases := []struct{ in, want []byte }{
		// indefinite SEQUENCE
		{[]byte{0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00}, []byte{0x30, 0x03, 0x02, 0x01, 0x05}},
		// constructed, indefinite OCTET STRING in chunks, one of them nested
		{[]byte{0x30, 0x80, 0x24, 0x80, 0x04, 0x02, 'a', 'b', 0x24, 0x03, 0x04, 0x01, 'c', 0x04, 0x00, 0x00, 0x00, 0x00, 0x00},
			[]byte{0x30, 0x05, 0x04, 0x03, 'a', 'b', 'c'}},
		// non-minimal length
		{[]byte{0x04, 0x81, 0x01, 'x'}, []byte{0x04, 0x01, 'x'}},
		// high tag number, definite inside indefinite
		{[]byte{0xbf, 0x81, 0x00, 0x80, 0x05, 0x00, 0x00, 0x00}, []byte{0xbf, 0x81, 0x00, 0x02, 0x05, 0x00}},
	}
	for _, c := range cases {
		got, err := normalizeBER(c.in)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("normalizeBER(%x) = %x, %v; want %x", c.in, got, err, c.want)
		}
	}
	long := append([]byte{0x24, 0x80}, bytes.Repeat([]byte{0x04, 0x7f}, 1)...)
	long = append(long, bytes.Repeat([]byte{'z'}, 0x7f)...)
	long = append(long, 0x04, 0x01, 'y', 0, 0)
	got, err := normalizeBER(long)
	if err != nil || len(got) != 3+0x80 || got[0] != 0x04 || got[1] != 0x81 || got[2] != 0x80 || got[len(got)-1] != 'y' {
		t.Errorf("long merge: %x, %v", got[:min(8, len(got))], err)
	}
	for _, bad := range [][]byte{
		{},
		{0x30},
		{0x30, 0x80, 0x02, 0x01, 0x05}, // no end-of-contents
		{0x30, 0x03, 0x02, 0x02, 0x05}, // child overruns parent
		{0x04, 0x80, 0x00, 0x00},       // indefinite primitive
		{0x24, 0x03, 0x02, 0x01, 0x00}, // INTEGER in an OCTET STRING
		{0x30, 0x00, 0x00},             // trailing data
		{0x00, 0x00},                   // end-of-contents at top
		{0x04, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00}, // length of length too large
		bytes.Repeat([]byte{0x30, 0x80}, 100),      // too deep
	} {
		if _, err := normalizeBER(bad); err == nil {
			t.Errorf("normalizeBER(%x): no error", bad[:min(12, len(bad))])
		}
	}
}

// decodeBase64 must accept what mail agents send.
func TestDecodeBase64(t *testing.T) {
	want := []byte("signature bytes!")
	enc := base64.StdEncoding.EncodeToString(want)
	for _, in := range []string{enc, enc[:10] + "\r\n" + enc[10:] + "\r\n", " " + enc[:8] + " \t\n" + enc[8:], strings.TrimRight(enc, "=")} {
		got, err := decodeBase64([]byte(in))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("decodeBase64(%q) = %q, %v", in, got, err)
		}
	}
}
