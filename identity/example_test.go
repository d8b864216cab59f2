package identity_test

import (
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"

	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
)

func ExampleValidateTCKN() {
	fmt.Println(identity.ValidateTCKN("10000000146"))
	err := identity.ValidateTCKN("10000000147")
	fmt.Println(errors.Is(err, identity.ErrTCKNDigit11), errors.Is(err, identity.ErrChecksum))
	fmt.Println(err)
	// Output:
	// <nil>
	// true true
	// identity: TCKN 100******47: the 11th digit does not match the check computed from the first ten: the number is mistyped
}

func ExampleParseID() {
	id, err := identity.ParseID("MERSİS:0123456789012345")
	if err != nil {
		panic(err)
	}
	fmt.Println(id, id.Scheme == identity.MERSIS)
	// Output: MERSIS:0123456789012345 true
}

func ExampleTCKNFromCertificate() {
	ca, _ := pki.NewRootCA(pkix.Name{CommonName: "Example ESHS"}, pki.ECDSAP256, 24*time.Hour)
	is, _ := ca.IssueSigner(pki.SignerSubject("10000000146", "Ayşe", "Demir", "IDCTR-"), "", pki.ECDSAP256)
	fmt.Println(is.Cert.Subject.SerialNumber)
	fmt.Println(identity.TCKNFromCertificate(is.Cert))
	// Output:
	// IDCTR-10000000146
	// 10000000146 <nil>
}

func ExampleTrustStore_CheckSigner() {
	ca, _ := pki.NewRootCA(pkix.Name{CommonName: "Example ESHS"}, pki.ECDSAP256, 24*time.Hour)
	is, _ := ca.IssueSigner(pki.SignerSubject("10000000146", "Ayşe", "Demir", "TCKN"), "", pki.ECDSAP256)
	signingTime := time.Now()

	ts := identity.NewTrustStore(ca.Cert)
	fmt.Println(ts.CheckSigner(is.Cert, is.Chain, signingTime, identity.ID{Scheme: identity.TCKN, Value: "10000000146"}))

	err := ts.CheckSigner(is.Cert, is.Chain, signingTime, identity.ID{Scheme: identity.TCKN, Value: "12345678950"})
	fmt.Println(errors.Is(err, identity.ErrIdentityMismatch))
	fmt.Println(err)

	other, _ := pki.NewRootCA(pkix.Name{CommonName: "Other ESHS"}, pki.ECDSAP256, 24*time.Hour)
	err = identity.NewTrustStore(other.Cert).CheckSigner(is.Cert, nil, signingTime, identity.ID{Scheme: identity.TCKN, Value: "10000000146"})
	fmt.Println(errors.Is(err, identity.ErrUntrusted))
	// Output:
	// <nil>
	// true
	// identity: the certificate is bound to TCKN:100******46, not to TCKN:123******50
	// true
}
