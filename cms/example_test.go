package cms_test

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/pki"
)

// A user signs a message; the provider verifies the signature, then checks
// the chain itself (package identity does this, and binds the TCKN).
func ExampleBuildSigned() {
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Example NES CA"}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		panic(err)
	}
	user, err := ca.IssueSigner(pki.SignerSubject("10000000146", "Ayşe", "Yılmaz", "TCKN"), "ayse.yilmaz@hs01.kep.tr", pki.ECDSAP256)
	if err != nil {
		panic(err)
	}
	header := []byte("From: ayse.yilmaz@hs01.kep.tr\r\nTo: mehmet.kaya@hs02.kep.tr\r\nSubject: Ihtarname\r\nX-TR-REM-iletiTip: standart\r\n")
	entity := []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nKira bedeli ödenmemiştir.\r\n")

	msg, err := cms.BuildSigned(header, entity, user.Key, user.Cert, user.Chain)
	if err != nil {
		panic(err)
	}

	s, err := cms.Verify(msg)
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Signer.Subject.CommonName, s.Signer.Subject.SerialNumber)
	fmt.Println("content as signed:", bytes.Equal(s.Content, entity))

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	_, err = s.Signer.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: s.Intermediates(),
		CurrentTime:   s.SigningTime,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	fmt.Println("chain ok:", err == nil)

	_, err = cms.Verify(bytes.Replace(msg, []byte("Kira"), []byte("Kara"), 1))
	fmt.Println("tampered:", errors.Is(err, cms.ErrBadSignature))
	// Output:
	// Ayşe Yılmaz TCKN10000000146
	// content as signed: true
	// chain ok: true
	// tampered: true
}
