package pki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

func TestCRLAndOCSP(t *testing.T) {
	ca, err := NewRootCA(pkix.Name{CommonName: "Test ESHS"}, ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewRootCA(pkix.Name{CommonName: "Other ESHS"}, ECDSAP256, time.Hour)
	ca.CRLURL, ca.OCSPURL = "http://127.0.0.1:9/crl", "http://127.0.0.1:9/ocsp"
	good, _ := ca.IssueSigner(SignerSubject("10000000146", "Ayşe", "Yılmaz", ""), "", ECDSAP256)
	bad, _ := ca.IssueSigner(SignerSubject("10000000078", "Ali", "Çelik", ""), "", ECDSAP256)
	foreign, _ := other.IssueSigner(SignerSubject("10000000078", "Ali", "Çelik", ""), "", ECDSAP256)
	if good.Cert.OCSPServer[0] != ca.OCSPURL || good.Cert.CRLDistributionPoints[0] != ca.CRLURL {
		t.Fatalf("issued certificate names %v %v", good.Cert.OCSPServer, good.Cert.CRLDistributionPoints)
	}
	now := time.Now()
	ca.Revoke(bad.Cert.SerialNumber, now.Add(-time.Minute), 1)

	der, err := ca.CRL(now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil || crl.CheckSignatureFrom(ca.Cert) != nil {
		t.Fatalf("CRL: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(bad.Cert.SerialNumber) != 0 || crl.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Errorf("CRL lists %+v", crl.RevokedCertificateEntries)
	}
	again, _ := ca.CRL(now, time.Minute)
	if c2, _ := x509.ParseRevocationList(again); c2.Number.Cmp(crl.Number) <= 0 {
		t.Errorf("CRL number did not increase: %v then %v", crl.Number, c2.Number)
	}

	for _, tt := range []struct {
		name   string
		cert   *Issued
		issuer *x509.Certificate
		status int
		raw    []byte // an error response instead
	}{
		{"good", good, ca.Cert, ocsp.Good, nil},
		{"revoked", bad, ca.Cert, ocsp.Revoked, nil},
		{"another CA's certificate", foreign, other.Cert, 0, ocsp.UnauthorizedErrorResponse},
	} {
		req, err := ocsp.CreateRequest(tt.cert.Cert, tt.issuer, nil)
		if err != nil {
			t.Fatal(err)
		}
		der, err := ca.OCSPResponse(req, now, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if tt.raw != nil {
			if !bytes.Equal(der, tt.raw) {
				t.Errorf("%s: got %x, want %x", tt.name, der, tt.raw)
			}
			continue
		}
		resp, err := ocsp.ParseResponseForCert(der, tt.cert.Cert, ca.Cert)
		if err != nil || resp.Status != tt.status || !resp.NextUpdate.After(now) {
			t.Errorf("%s: %+v, %v", tt.name, resp, err)
		}
	}
	if der, _ := ca.OCSPResponse([]byte("junk"), now, time.Minute); !bytes.Equal(der, ocsp.MalformedRequestErrorResponse) {
		t.Errorf("junk request: %x", der)
	}
}
