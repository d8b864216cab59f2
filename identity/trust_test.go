package identity

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/pki"
)

const (
	testTCKN  = "10000000146"
	otherTCKN = "12345678950"
	year      = 365 * 24 * time.Hour
)

func newRoot(t testing.TB, cn string) *pki.CA {
	t.Helper()
	ca, err := pki.NewRootCA(pkix.Name{Country: []string{"TR"}, CommonName: cn}, pki.ECDSAP256, 10*year)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// newIntermediate makes a sub-CA under parent valid from notBefore for
// validity (pki issues end-entity certificates only).
func newIntermediate(t testing.TB, parent *pki.CA, cn string, notBefore time.Time, validity time.Duration) *pki.CA {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	nb := notBefore.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Country: []string{"TR"}, CommonName: cn},
		NotBefore:             nb,
		NotAfter:              nb.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.Cert, key.Public(), parent.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pki.CA{Issued: pki.Issued{Cert: cert, Key: key, Chain: append([]*x509.Certificate{parent.Cert}, parent.Chain...)}}
}

func signer(t testing.TB, ca *pki.CA, tckn, prefix string) *x509.Certificate {
	t.Helper()
	is, err := ca.IssueSigner(pki.SignerSubject(tckn, "Ahmet", "Yılmaz", prefix), "ahmet.yilmaz@hs01.kep.tr", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return is.Cert
}

func issue(t testing.TB, ca *pki.CA, tmpl pki.Template) *x509.Certificate {
	t.Helper()
	if tmpl.Subject.CommonName == "" {
		tmpl.Subject = pki.SignerSubject(testTCKN, "Ahmet", "Yılmaz", "")
	}
	is, err := ca.Issue(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return is.Cert
}

var signerUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
var emailEKU = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}

func TestTCKNFromCertificate(t *testing.T) {
	ca := newRoot(t, "Test ESHS Root")
	for _, prefix := range []string{"", "TCKN", "TCKN-", "TCKN:", "IDCTR-", "PNOTR-", "tckn", "idctr-", "pnotr-"} {
		t.Run("form "+prefix, func(t *testing.T) {
			got, err := TCKNFromCertificate(signer(t, ca, testTCKN, prefix))
			if err != nil || got != testTCKN {
				t.Fatalf("TCKNFromCertificate = %q, %v", got, err)
			}
		})
	}
	bad := []struct {
		serial string
		want   []error
	}{
		{"PASTR-U12345678", []error{ErrBadSerialNumber}},
		{"VATTR-4540536920", []error{ErrBadSerialNumber}},
		{"TCKN 10000000146", []error{ErrBadSerialNumber}},
		{"1000000014", []error{ErrBadSerialNumber}},
		{"TCKN10000000147", []error{ErrBadSerialNumber, ErrTCKNDigit11, ErrChecksum}},
		{"IDCTR-10000000156", []error{ErrBadSerialNumber, ErrTCKNDigit10}},
		{"IDCTR-01234567890", []error{ErrBadSerialNumber, ErrLeadingZero}},
	}
	for _, tt := range bad {
		t.Run("bad "+tt.serial, func(t *testing.T) {
			cert := issue(t, ca, pki.Template{Subject: pkix.Name{CommonName: "X", SerialNumber: tt.serial}, KeyUsage: signerUsage})
			_, err := TCKNFromCertificate(cert)
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error %v does not match %v", err, w)
				}
			}
			var ce *CertError
			if !errors.As(err, &ce) || ce.Cert != cert {
				t.Errorf("error %#v does not carry the certificate", err)
			}
			if strings.Contains(err.Error(), tt.serial) {
				t.Errorf("error %q shows the serialNumber unmasked", err)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		cert := issue(t, ca, pki.Template{Subject: pkix.Name{CommonName: "No Serial"}, KeyUsage: signerUsage})
		if _, err := TCKNFromCertificate(cert); !errors.Is(err, ErrNoSerialNumber) {
			t.Fatalf("error = %v, want ErrNoSerialNumber", err)
		}
		if _, err := TCKNFromCertificate(nil); !errors.Is(err, ErrNoSerialNumber) {
			t.Fatalf("nil certificate: error = %v", err)
		}
	})
	oid := asn1.ObjectIdentifier{2, 5, 4, 5}
	t.Run("two agreeing", func(t *testing.T) {
		cert := issue(t, ca, pki.Template{Subject: pkix.Name{CommonName: "Two", ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: oid, Value: testTCKN}, {Type: oid, Value: "IDCTR-" + testTCKN}}}, KeyUsage: signerUsage})
		if got, err := TCKNFromCertificate(cert); err != nil || got != testTCKN {
			t.Fatalf("TCKNFromCertificate = %q, %v", got, err)
		}
	})
	t.Run("two disagreeing", func(t *testing.T) {
		cert := issue(t, ca, pki.Template{Subject: pkix.Name{CommonName: "Two", ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: oid, Value: testTCKN}, {Type: oid, Value: otherTCKN}}}, KeyUsage: signerUsage})
		if _, err := TCKNFromCertificate(cert); !errors.Is(err, ErrBadSerialNumber) {
			t.Fatalf("error = %v, want ErrBadSerialNumber", err)
		}
	})
}

func TestBindCertificate(t *testing.T) {
	ca := newRoot(t, "Test ESHS Root")
	cert := signer(t, ca, testTCKN, "TCKN")
	tests := []struct {
		name string
		want ID
		err  error
	}{
		{"same", ID{TCKN, testTCKN}, nil},
		{"other person", ID{TCKN, otherTCKN}, ErrIdentityMismatch},
		{"company", ID{VKN, "4540536920"}, ErrNotBindable},
		{"public body", ID{DETSIS, "12345678"}, ErrNotBindable},
		{"invalid want", ID{TCKN, "10000000147"}, ErrTCKNDigit11},
		{"unknown scheme", ID{"SSN", "123"}, ErrUnknownScheme},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := BindCertificate(cert, tt.want)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("BindCertificate = %v, want %v", err, tt.err)
			}
		})
	}
	err := BindCertificate(cert, ID{TCKN, otherTCKN})
	var ce *CertError
	if !errors.As(err, &ce) || ce.Got != (ID{TCKN, testTCKN}) || ce.Want != (ID{TCKN, otherTCKN}) {
		t.Fatalf("mismatch error %#v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "TCKN:100******46") || !strings.Contains(msg, "TCKN:123******50") {
		t.Errorf("mismatch error %q does not name both identities (masked)", msg)
	}
	if strings.Contains(msg, testTCKN) || strings.Contains(msg, otherTCKN) {
		t.Errorf("mismatch error %q shows a TCKN unmasked", msg)
	}
}

func TestVerifyCertificate(t *testing.T) {
	now := time.Now()
	root := newRoot(t, "Test ESHS Root")
	stranger := newRoot(t, "Unknown CA")
	inter := newIntermediate(t, root, "Test ESHS Sub CA", now.Add(-time.Hour), 5*year)
	// Valid from 50 to 30 minutes ago.
	oldInter := newIntermediate(t, root, "Old Sub CA", now.Add(-50*time.Minute), 20*time.Minute)
	ts := NewTrustStore(root.Cert)

	valid := signer(t, root, testTCKN, "")
	viaInter := signer(t, inter, testTCKN, "")
	viaOld := issue(t, oldInter, pki.Template{NotBefore: now.Add(-40 * time.Minute), Validity: year, KeyUsage: signerUsage, ExtKeyUsage: emailEKU})
	untrusted := signer(t, stranger, testTCKN, "")
	expired := issue(t, root, pki.Template{NotBefore: now.Add(-3 * year), Validity: year, KeyUsage: signerUsage, ExtKeyUsage: emailEKU})
	// Valid from 30 to 20 minutes ago: signed then, expired now.
	shortLived := issue(t, root, pki.Template{NotBefore: now.Add(-30 * time.Minute), Validity: 10 * time.Minute, KeyUsage: signerUsage, ExtKeyUsage: emailEKU})
	future := issue(t, root, pki.Template{NotBefore: now.Add(time.Hour), Validity: year, KeyUsage: signerUsage, ExtKeyUsage: emailEKU})
	clientOnly := issue(t, root, pki.Template{KeyUsage: signerUsage, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})

	tests := []struct {
		name          string
		cert          *x509.Certificate
		intermediates []*x509.Certificate
		at            time.Time
		usages        []x509.ExtKeyUsage
		err           error
		faulty        *x509.Certificate // the certificate the error must name
		mention       []string
	}{
		{name: "valid", cert: valid, at: now},
		{name: "valid, zero time means now", cert: valid},
		{name: "valid for email", cert: valid, at: now, usages: emailEKU},
		{name: "via intermediate", cert: viaInter, intermediates: []*x509.Certificate{inter.Cert}, at: now},
		{name: "intermediate missing", cert: viaInter, at: now, err: ErrUntrusted, faulty: viaInter, mention: []string{"Test ESHS Sub CA"}},
		{name: "untrusted CA", cert: untrusted, at: now, err: ErrUntrusted, faulty: untrusted, mention: []string{"Unknown CA", "does not chain"}},
		{name: "untrusted CA given as intermediate", cert: untrusted, intermediates: []*x509.Certificate{stranger.Cert}, at: now, err: ErrUntrusted},
		{name: "expired", cert: expired, at: now, err: ErrExpired, faulty: expired, mention: []string{
			"had expired at " + now.UTC().Format(time.RFC3339),
			"valid from " + expired.NotBefore.UTC().Format(time.RFC3339) + " to " + expired.NotAfter.UTC().Format(time.RFC3339)}},
		// At its signing time the expired certificate was valid, but the
		// root was not yet: the root is named.
		{name: "signed before the CA existed", cert: expired, at: now.Add(-5 * year / 2), err: ErrNotYetValid, faulty: root.Cert, mention: []string{"Test ESHS Root"}},
		{name: "expired now, valid at signing time", cert: shortLived, at: now.Add(-25 * time.Minute)},
		{name: "expired now, checked now", cert: shortLived, at: now, err: ErrExpired, faulty: shortLived},
		{name: "signed before validity", cert: shortLived, at: now.Add(-35 * time.Minute), err: ErrNotYetValid, faulty: shortLived},
		{name: "not yet valid", cert: future, at: now, err: ErrNotYetValid, faulty: future, mention: []string{"not yet valid at"}},
		{name: "intermediate expired", cert: viaOld, intermediates: []*x509.Certificate{oldInter.Cert}, at: now, err: ErrExpired, faulty: oldInter.Cert, mention: []string{"Old Sub CA"}},
		{name: "intermediate valid at signing time", cert: viaOld, intermediates: []*x509.Certificate{oldInter.Cert}, at: now.Add(-35 * time.Minute)},
		{name: "wrong extended key usage", cert: clientOnly, at: now, usages: emailEKU, err: ErrKeyUsage, mention: []string{"emailProtection"}},
		{name: "any usage", cert: clientOnly, at: now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chains, err := ts.VerifyCertificate(tt.cert, tt.intermediates, tt.at, tt.usages)
			if tt.err == nil {
				if err != nil {
					t.Fatalf("VerifyCertificate: %v", err)
				}
				if len(chains) == 0 || !chains[0][len(chains[0])-1].Equal(root.Cert) {
					t.Fatalf("chains %v do not end at the root", chains)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("VerifyCertificate error = %v, want %v", err, tt.err)
			}
			var ce *CertError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *CertError", err)
			}
			if tt.faulty != nil && !ce.Cert.Equal(tt.faulty) {
				t.Errorf("error names %s, want %s", describe(ce.Cert), describe(tt.faulty))
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if strings.Contains(err.Error(), "Ahmet") || strings.Contains(err.Error(), testTCKN) {
				t.Errorf("error %q shows personal data", err)
			}
		})
	}
}

func TestCheckSigner(t *testing.T) {
	now := time.Now()
	root := newRoot(t, "Test ESHS Root")
	ts := NewTrustStore(root.Cert)
	me := ID{TCKN, testTCKN}
	tests := []struct {
		name string
		cert *x509.Certificate
		at   time.Time
		want ID
		err  error
	}{
		{"valid", signer(t, root, testTCKN, "TCKN"), now, me, nil},
		{"valid, IDCTR form", signer(t, root, testTCKN, "IDCTR-"), now, me, nil},
		{"no extended key usage", issue(t, root, pki.Template{KeyUsage: x509.KeyUsageContentCommitment}), now, me, nil},
		{"digitalSignature only", issue(t, root, pki.Template{KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: emailEKU}), now, me, nil},
		{"someone else", signer(t, root, otherTCKN, ""), now, me, ErrIdentityMismatch},
		{"untrusted", signer(t, newRoot(t, "Unknown CA"), testTCKN, ""), now, me, ErrUntrusted},
		{"expired", issue(t, root, pki.Template{NotBefore: now.Add(-30 * time.Minute), Validity: 10 * time.Minute, KeyUsage: signerUsage, ExtKeyUsage: emailEKU}), now, me, ErrExpired},
		{"expired now, valid when signed", issue(t, root, pki.Template{NotBefore: now.Add(-30 * time.Minute), Validity: 10 * time.Minute, KeyUsage: signerUsage, ExtKeyUsage: emailEKU}), now.Add(-25 * time.Minute), me, nil},
		{"TLS client certificate", issue(t, root, pki.Template{KeyUsage: signerUsage, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}), now, me, ErrKeyUsage},
		{"encryption key", issue(t, root, pki.Template{KeyUsage: x509.KeyUsageKeyAgreement, ExtKeyUsage: emailEKU}), now, me, ErrKeyUsage},
		{"no serialNumber", issue(t, root, pki.Template{Subject: pkix.Name{CommonName: "Anonymous"}, KeyUsage: signerUsage}), now, me, ErrNoSerialNumber},
		{"company identity, a person's certificate", signer(t, root, testTCKN, ""), now, ID{VKN, "4540536920"}, ErrNoVKN},
		{"e-seal, organizationIdentifier", eseal(t, root, "4540536920", pki.ESealOrgID), now, ID{VKN, "4540536920"}, nil},
		{"e-seal, serialNumber", eseal(t, root, "4540536920", pki.ESealSerial), now, ID{VKN, "4540536920"}, nil},
		{"e-seal of another company", eseal(t, root, "1234567890", pki.ESealOrgID), now, ID{VKN, "4540536920"}, ErrIdentityMismatch},
		{"e-seal for a person", eseal(t, root, "4540536920", pki.ESealOrgID), now, me, ErrNoSerialNumber},
		{"e-seal for a MERSİS account", eseal(t, root, "4540536920", pki.ESealOrgID), now, ID{MERSIS, "0123456789000015"}, ErrNotBindable},
		{"invalid identity", signer(t, root, testTCKN, ""), now, ID{TCKN, "1"}, ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ts.CheckSigner(tt.cert, nil, tt.at, tt.want)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("CheckSigner = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestEmptyTrustStoreTrustsNothing(t *testing.T) {
	root := newRoot(t, "Test ESHS Root")
	cert := signer(t, root, testTCKN, "")
	for _, ts := range []*TrustStore{{}, NewTrustStore()} {
		if _, err := ts.VerifyCertificate(cert, nil, time.Now(), nil); !errors.Is(err, ErrUntrusted) {
			t.Errorf("empty store: %v, want ErrUntrusted", err)
		}
	}
	ts := NewTrustStore(root.Cert, root.Cert)
	if n := len(ts.Certificates()); n != 1 {
		t.Errorf("duplicate added: %d certificates", n)
	}
	// The pool Roots returns is a copy.
	ts.Roots().AddCert(newRoot(t, "Intruder").Cert)
	if n := len(ts.Certificates()); n != 1 {
		t.Errorf("Roots exposed the store: %d certificates", n)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ts.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("Roots pool does not verify: %v", err)
	}
}

func TestTrustStoreConcurrent(t *testing.T) {
	root := newRoot(t, "Test ESHS Root")
	cert := signer(t, root, testTCKN, "")
	ts := NewTrustStore(root.Cert)
	others := make([]*x509.Certificate, 8)
	for i := range others {
		others[i] = newRoot(t, "Other").Cert
	}
	var wg sync.WaitGroup
	for i := range others {
		wg.Go(func() { ts.AddCert(others[i]) })
		wg.Go(func() {
			if err := ts.CheckSigner(cert, nil, time.Now(), ID{TCKN, testTCKN}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(ts.Certificates()); n != 9 {
		t.Errorf("%d certificates, want 9", n)
	}
}

func TestLoadTrustStore(t *testing.T) {
	a, b, c := newRoot(t, "CA A"), newRoot(t, "CA B"), newRoot(t, "CA C")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("roots/a-and-b.pem", pki.CertPEM(a.Cert, b.Cert))
	write("roots/c.CRT", c.Cert.Raw) // DER, as CAs publish them
	write("roots/a-again.cer", pki.CertPEM(a.Cert))
	write("roots/README.txt", []byte("not a certificate"))
	write("roots/nested/ignored.pem", []byte("garbage"))
	single := write("single.pem", pki.CertPEM(c.Cert))
	write("empty/README", []byte("nothing here"))
	badPEM := write("bad/bad.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	badDER := write("bad2/bad.der", []byte{0x30, 0x03, 0x02, 0x01, 0x01})
	noBlock := write("bad3/key.pem", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))

	ts, err := LoadTrustStore(filepath.Join(dir, "roots"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ts.Certificates()); n != 3 {
		t.Fatalf("loaded %d certificates, want 3", n)
	}
	for _, ca := range []*pki.CA{a, b, c} {
		if _, err := ts.VerifyCertificate(signer(t, ca, testTCKN, ""), nil, time.Now(), nil); err != nil {
			t.Errorf("signer of %s: %v", ca.Cert.Subject.CommonName, err)
		}
	}
	ts, err = LoadTrustStore(single)
	if err != nil || len(ts.Certificates()) != 1 {
		t.Fatalf("LoadTrustStore(file) = %v, %v", ts, err)
	}

	errorTests := []struct {
		name  string
		paths []string
		want  error
	}{
		{"nothing given", nil, ErrNoTrustAnchors},
		{"empty directory", []string{filepath.Join(dir, "empty")}, ErrNoTrustAnchors},
		{"missing", []string{filepath.Join(dir, "missing.pem")}, os.ErrNotExist},
		{"bad PEM", []string{badPEM}, nil},
		{"bad DER in a directory", []string{filepath.Dir(badDER)}, nil},
		{"PEM without certificates", []string{noBlock}, nil},
	}
	for _, tt := range errorTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadTrustStore(tt.paths...)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
}

func BenchmarkTCKNFromCertificate(b *testing.B) {
	cert := signer(b, newRoot(b, "Bench CA"), testTCKN, "IDCTR-")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TCKNFromCertificate(cert); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckSigner(b *testing.B) {
	root := newRoot(b, "Bench CA")
	cert := signer(b, root, testTCKN, "")
	ts := NewTrustStore(root.Cert)
	id := ID{TCKN, testTCKN}
	b.ReportAllocs()
	for b.Loop() {
		if err := ts.CheckSigner(cert, nil, time.Now(), id); err != nil {
			b.Fatal(err)
		}
	}
}
