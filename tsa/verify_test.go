package tsa

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/pki"
)

const year = 365 * 24 * time.Hour

// issueCustom issues a certificate from ca with full control over validity
// and extensions, for the certificates pki refuses to make.
func issueCustom(t testing.TB, ca *pki.CA, cn string, notBefore, notAfter time.Time, ekuExt *pkix.Extension, eku []x509.ExtKeyUsage) *pki.Issued {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{Country: []string{"TR"}, CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage:  eku,
	}
	if ekuExt != nil {
		tmpl.ExtraExtensions = []pkix.Extension{*ekuExt}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pki.Issued{Cert: c, Key: key, Chain: []*x509.Certificate{ca.Cert}}
}

func criticalEKU(t testing.TB, oids ...asn1.ObjectIdentifier) *pkix.Extension {
	v, err := asn1.Marshal(oids)
	if err != nil {
		t.Fatal(err)
	}
	return &pkix.Extension{Id: oidExtKeyUsage, Critical: true, Value: v}
}

// oldRoot is a root CA valid for the last ten years, so that tokens can be
// made in the past.
func oldRoot(t testing.TB) *pki.CA {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Old Root"},
		NotBefore: now.Add(-10 * year), NotAfter: now.Add(10 * year),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &pki.CA{Issued: pki.Issued{Cert: c, Key: key}}
}

// stampWith makes a token with a TSA that NewServer may refuse.
func stampWith(t testing.TB, is *pki.Issued, clock func() time.Time, data []byte) *Token {
	t.Helper()
	srv, err := newServer(is, testPolicy, clock)
	if err != nil {
		t.Fatal(err)
	}
	if clock == nil {
		clock = time.Now
	}
	h, digest := sha256Of(data)
	imprint, _ := asn1.Marshal(messageImprint{HashAlgorithm: hashAlgID(h), HashedMessage: digest})
	der, err := srv.sign(imprint, clock().UTC(), big.NewInt(1), nil, true) // no validity check
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, der)
}

func TestVerifyRejectsBadTSACertificates(t *testing.T) {
	ca := newCA(t, "KEP Dev Root")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	now := time.Now()
	data := []byte("evidence")
	ts := []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}

	cases := []struct {
		name    string
		is      *pki.Issued
		want    error
		text    string
		openssl string // what openssl says, "" if it accepts (it should not)
	}{
		{"non-critical EKU", issueCustom(t, ca, "Soft TSA", now.Add(-time.Hour), now.Add(year), nil, ts),
			ErrNotTSACertificate, "non-critical extendedKeyUsage", "unsuitable certificate purpose"},
		{"no EKU", issueCustom(t, ca, "Plain Cert", now.Add(-time.Hour), now.Add(year), nil, nil),
			ErrNotTSACertificate, "has no extendedKeyUsage", "unsuitable certificate purpose"},
		{"EKU with serverAuth too", issueCustom(t, ca, "Mixed TSA", now.Add(-time.Hour), now.Add(year),
			criticalEKU(t, oidKPTimeStamping, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}), nil),
			ErrNotTSACertificate, "requires only id-kp-timeStamping", "unsuitable certificate purpose"},
		{"expired", issueCustom(t, ca, "Expired TSA", now.Add(-2*year), now.Add(-year),
			criticalEKU(t, oidKPTimeStamping), nil),
			ErrUntrustedTSA, `"Expired TSA" was not valid at the token's time`, "certificate has expired"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The server refuses to start with such a certificate ...
			if _, err := NewServer(c.is, testPolicy, nil); err == nil {
				t.Error("NewServer accepts it")
			} else {
				t.Logf("NewServer: %v", err)
			}
			// ... and a verifier refuses the tokens it would make.
			tok := stampWith(t, c.is, nil, data)
			err := tok.VerifyData(data, roots, nil)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("Verify: %v; want %v with %q", err, c.want, c.text)
			}
			t.Logf("Verify: %v", err)

			if testing.Short() {
				return
			}
			needOpenSSL(t)
			w := startWorld(t, ca, c.is, nil)
			dataF := w.write("data", data)
			resp := w.write("resp.tsr", tok.ResponseDER())
			ok, out := opensslVerifyOK(t, w.dir, "-data", dataF, "-in", resp, "-CAfile", w.caPEM, "-untrusted", w.tsaPEM)
			if ok || !strings.Contains(out, c.openssl) {
				t.Errorf("openssl: want failure with %q, got:\n%s", c.openssl, out)
			}
		})
	}
}

// A token made while the TSA certificate was valid stays valid after it
// expires: the chain is checked at the token's time. openssl checks at the
// current time unless given -attime.
func TestVerifyAtTokenTime(t *testing.T) {
	ca := oldRoot(t)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	now := time.Now()
	is := issueCustom(t, ca, "Retired TSA", now.Add(-3*year), now.Add(-year), criticalEKU(t, oidKPTimeStamping), nil)
	then := now.Add(-2 * year)
	srv, err := NewServer(is, testPolicy, func() time.Time { return then })
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("old evidence")
	tok, err := srv.StampDigest(sha256Of(data))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Time.Equal(then.Truncate(time.Millisecond)) {
		t.Errorf("genTime %v, want %v", tok.Time, then)
	}
	if err := tok.VerifyData(data, roots, nil); err != nil {
		t.Fatalf("token from when the certificate was valid: %v", err)
	}

	// The same server, its clock now past the certificate, refuses to stamp.
	srv.clock = time.Now
	_, err = srv.StampDigest(sha256Of(data))
	var refused *RefusedError
	if !errors.As(err, &refused) || !refused.Has(SystemFailure) {
		t.Errorf("stamping with an expired certificate: %v", err)
	}

	needOpenSSL(t)
	w := startWorld(t, ca, is, srv)
	dataF := w.write("data", data)
	resp := w.write("resp.tsr", tok.ResponseDER())
	if ok, out := opensslVerifyOK(t, w.dir, "-data", dataF, "-in", resp, "-CAfile", w.caPEM); ok || !strings.Contains(out, "certificate has expired") {
		t.Errorf("openssl without -attime: want 'certificate has expired', got:\n%s", out)
	}
	if ok, out := opensslVerifyOK(t, w.dir, "-data", dataF, "-in", resp, "-CAfile", w.caPEM, "-attime", fmt.Sprint(tok.Time.Unix())); !ok {
		t.Errorf("openssl -attime genTime:\n%s", out)
	}
}

func TestVerifyUntrustedTSA(t *testing.T) {
	trusted := newWorld(t, pki.ECDSAP256)
	other := newWorld(t, pki.RSA2048) // another root and TSA
	data := []byte("mesaj")
	tok, err := other.srv.StampDigest(sha256Of(data))
	if err != nil {
		t.Fatal(err)
	}
	err = tok.VerifyData(data, trusted.roots, nil)
	if !errors.Is(err, ErrUntrustedTSA) || !strings.Contains(err.Error(), "does not chain to a trusted root") {
		t.Fatalf("Verify: %v", err)
	}
	t.Logf("Verify: %v", err)

	// The client says the same when the TSA it talks to is not trusted.
	c := other.client()
	c.Roots = trusted.roots
	if _, err := c.TimestampData(t.Context(), data); !errors.Is(err, ErrUntrustedTSA) {
		t.Errorf("client: %v", err)
	}

	needOpenSSL(t)
	dataF := trusted.write("data", data)
	resp := trusted.write("other.tsr", tok.ResponseDER())
	if ok, out := opensslVerifyOK(t, trusted.dir, "-data", dataF, "-in", resp, "-CAfile", trusted.caPEM); ok {
		t.Errorf("openssl accepts a token from an untrusted TSA:\n%s", out)
	}
}

// Tokens requested without certReq carry no certificate; the verifier must
// be given the TSA certificate.
func TestTokenWithoutCertificates(t *testing.T) {
	w := newWorld(t, pki.ECDSAP256)
	c := w.client()
	c.Certificates = false
	_, err := c.TimestampData(t.Context(), []byte("x"))
	if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "carries no certificate") {
		t.Fatalf("without the TSA certificate: %v", err)
	}
	c.Intermediates = []*x509.Certificate{w.srv.Certificate()}
	tok, err := c.TimestampData(t.Context(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.Certificates) != 0 {
		t.Errorf("token carries %d certificates", len(tok.Certificates))
	}
}

// Changing any signed byte breaks the signature; changing the TSTInfo breaks
// the message digest.
func TestVerifyDetectsTampering(t *testing.T) {
	w := newWorld(t, pki.ECDSAP256)
	data := []byte("x")
	tok, err := w.srv.StampDigest(sha256Of(data))
	if err != nil {
		t.Fatal(err)
	}
	// Flip one bit of genTime's seconds inside the TSTInfo.
	i := strings.Index(string(tok.Raw), tok.Time.Format("20060102150405"))
	if i < 0 {
		t.Fatal("genTime not found")
	}
	raw := []byte(string(tok.Raw))
	raw[i+13] ^= 1
	bad := mustParse(t, raw)
	if err := bad.VerifyData(data, w.roots, nil); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "messageDigest") {
		t.Errorf("altered genTime: %v", err)
	}
	// A token that claims another TSA certificate with the same key... is
	// caught by the ESS binding; a token whose signature bytes changed fails.
	raw = []byte(string(tok.Raw))
	raw[len(raw)-1] ^= 1
	bad = mustParse(t, raw)
	if err := bad.VerifyData(data, w.roots, nil); !errors.Is(err, ErrBadSignature) {
		t.Errorf("altered signature: %v", err)
	}
}

// A certificate with the TSA's key but not the one named in the signed ESS
// attribute must not be accepted as the signer (RFC 5035 substitution).
func TestVerifyESSBinding(t *testing.T) {
	ca := newCA(t, "Root")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	is, err := ca.IssueTSA("TSA", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	tok := stampWith(t, is, nil, []byte("x"))
	// Same key, same serial and issuer, other content (a later validity).
	twin, err := ca.Issue(pki.Template{Subject: is.Cert.Subject, Key: is.Key, CriticalTimeStamping: true,
		KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	twin.Cert.SerialNumber = is.Cert.SerialNumber // only the lookup cares
	tok.Certificates = []*x509.Certificate{twin.Cert}
	if err := tok.VerifyData([]byte("x"), roots, nil); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "ESS") {
		t.Errorf("substituted certificate: %v", err)
	}
}
