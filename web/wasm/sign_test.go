package main

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pki"
)

type fixture struct {
	ca           *pki.CA
	user, other  *pki.Issued
	p12          []byte // user's, password "doğru-parola"
	keyPEM, cert []byte // user's key (PKCS#8) and certificate then chain
}

const p12Password = "doğru-parola"

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Test E-Signature CA"}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ca: ca}
	if f.user, err = ca.IssueSigner(pki.SignerSubject("10000000146", "Ayşe", "Yılmaz", "TCKN"), "ayse.yilmaz@hs01.kep.tr", pki.RSA2048); err != nil {
		t.Fatal(err)
	}
	if f.other, err = ca.IssueSigner(pki.SignerSubject("10000000078", "Mehmet", "Öztürk", "TCKN"), "", pki.ECDSAP256); err != nil {
		t.Fatal(err)
	}
	if f.p12, err = f.user.PKCS12(p12Password); err != nil {
		t.Fatal(err)
	}
	if f.keyPEM, err = pki.KeyPEM(f.user.Key); err != nil {
		t.Fatal(err)
	}
	f.cert = pki.CertPEM(append([]*x509.Certificate{f.user.Cert}, f.user.Chain...)...)
	return f
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// opensslKey re-encrypts the user's key with openssl: args choose the form.
func opensslKey(t testing.TB, f *fixture, args ...string) []byte {
	t.Helper()
	openssl := testtool.Require(t, testtool.OpenSSL)
	in := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(in, f.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, append(args, "-in", in, "-passout", "pass:"+p12Password)...).Output()
	if err != nil {
		t.Fatalf("openssl %v: %v", args, err)
	}
	return out
}

// Every kind of key file a user may pick, and every refusal with its code.
func TestDecodeKeyFile(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	otherKey, _ := pki.KeyPEM(f.other.Key)
	chainFirst := cat(pki.CertPEM(f.user.Chain...), f.keyPEM, pki.CertPEM(f.user.Cert))
	for _, tc := range []struct {
		name     string
		file     func() []byte
		password string
		now      time.Time
		code     string // "" when it signs
	}{
		{"pkcs12", func() []byte { return f.p12 }, p12Password, now, ""},
		{"pkcs12 wrong password", func() []byte { return f.p12 }, "yanlış", now, codeWrongPassword},
		{"pkcs12 no password", func() []byte { return f.p12 }, "", now, codeWrongPassword},
		{"pem key then certificates", func() []byte { return cat(f.keyPEM, f.cert) }, "", now, ""},
		{"pem chain first", func() []byte { return chainFirst }, "", now, ""},
		{"pem encrypted pkcs8 aes-256 (openssl)", func() []byte {
			return cat(opensslKey(t, f, "pkcs8", "-topk8", "-v2", "aes-256-cbc"), f.cert)
		}, p12Password, now, ""},
		{"pem encrypted pkcs8 aes-128 sha1 prf (openssl)", func() []byte {
			return cat(opensslKey(t, f, "pkcs8", "-topk8", "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"), f.cert)
		}, p12Password, now, ""},
		{"pem encrypted wrong password", func() []byte {
			return cat(opensslKey(t, f, "pkcs8", "-topk8", "-v2", "aes-256-cbc"), f.cert)
		}, "yanlış", now, codeWrongPassword},
		{"pem legacy encryption", func() []byte {
			return cat(opensslKey(t, f, "rsa", "-aes128", "-traditional"), f.cert)
		}, p12Password, now, codeUnreadable},
		{"pem certificates only", func() []byte { return f.cert }, "", now, codeNoKey},
		{"pem key only", func() []byte { return f.keyPEM }, "", now, codeNoCertificate},
		{"pem key of someone else", func() []byte { return cat(otherKey, f.cert) }, "", now, codeKeyMismatch},
		{"expired", func() []byte { return f.p12 }, p12Password, f.user.Cert.NotAfter.Add(time.Minute), codeExpired},
		{"not yet valid", func() []byte { return f.p12 }, p12Password, f.user.Cert.NotBefore.Add(-time.Minute), codeNotYetValid},
		{"not a key file", func() []byte { return []byte("Merhaba, bu bir anahtar değil.") }, "", now, codeUnreadable},
		{"empty", func() []byte { return nil }, "", now, codeUnreadable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := decodeKeyFile(tc.file(), tc.password, tc.now)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !s.Cert.Equal(f.user.Cert) || len(s.Chain) != 1 || !s.Chain[0].Equal(f.ca.Cert) {
					t.Fatalf("signer %s with %d chain certificates", s.Cert.Subject, len(s.Chain))
				}
				return
			}
			var r *refusalError
			if !errors.As(err, &r) || r.Code != tc.code || r.EN == "" || r.TR == "" {
				t.Fatalf("got %v (%#v), want refusal %s", err, r, tc.code)
			}
			if strings.Contains(r.EN+r.TR, p12Password) {
				t.Fatalf("the refusal repeats the password: %s", r.EN)
			}
		})
	}
}

// The message as the compose page sends it becomes a signed message the
// provider's cms.Verify accepts, signed by the key file's holder.
func TestSignMessage(t *testing.T) {
	f := newFixture(t)
	msg := map[string]any{
		"From": "ayse.yilmaz@hs01.kep.tr", "To": []string{"mehmet.ozturk@hs01.kep.tr"}, "Cc": []string{},
		"Subject": "Ödeme emri", "Body": "Merhaba,\nekte fatura var.",
		"Attachments": []map[string]any{{"Name": "fatura.txt", "ContentType": "text/plain", "Data": []byte("Tutar: 100 TL")}},
		"IletiTip":    "eYazisma", "IletiID": "", "Date": "2026-12-07T10:00:00.000Z", "MessageID": "<1@hs01.kep.tr>",
	}
	good, _ := json.Marshal(msg)
	signed, err := signMessage(good, f.p12, p12Password, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s, err := cms.Verify(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Signer.Equal(f.user.Cert) || !bytes.Contains(s.Content, []byte("VHV0YXI6IDEwMCBUTA==")) {
		t.Fatalf("signer %s, content %q", s.Signer.Subject, s.Content)
	}
	for _, want := range []string{"X-TR-REM-iletiTip: eYazisma", "Date: Mon, 07 Dec 2026 10:00:00 +0000", "Message-ID: <1@hs01.kep.tr>"} {
		if !bytes.Contains(signed, []byte(want)) {
			t.Errorf("signed message lacks %q", want)
		}
	}

	for _, tc := range []struct{ name, json string }{
		{"not json", `Merhaba`},
		{"unknown field", `{"From":"a@hs01.kep.tr","To":["b@hs01.kep.tr"],"Konu":"x"}`},
		{"bad date", `{"From":"a@hs01.kep.tr","To":["b@hs01.kep.tr"],"Date":"07.12.2026"}`},
		{"no recipient", `{"From":"a@hs01.kep.tr","To":[]}`},
		{"no sender", `{"To":["b@hs01.kep.tr"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signMessage([]byte(tc.json), f.p12, p12Password, time.Now())
			var r *refusalError
			if !errors.As(err, &r) || r.Code != codeBadMessage {
				t.Fatalf("got %v, want %s", err, codeBadMessage)
			}
		})
	}
	// No Date: the signing time is now.
	now := time.Now().UTC()
	signed, err = signMessage([]byte(`{"From":"ayse.yilmaz@hs01.kep.tr","To":["b@hs01.kep.tr"],"Body":"x"}`), f.p12, p12Password, now)
	if err != nil || !bytes.Contains(signed, []byte("Date: "+now.Format(time.RFC1123Z))) {
		t.Fatalf("no Date: %v\n%.300s", err, signed)
	}
}
