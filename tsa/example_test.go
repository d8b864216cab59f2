package tsa_test

import (
	"context"
	"crypto"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/tsa"
)

// A development TSA on a socket, a client asking it for a token, and the
// token checked against the data later.
func Example() {
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "KEP Dev Root"}, pki.ECDSAP256, 10*365*24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	tsaCert, err := ca.IssueTSA("KEP Dev TSA", pki.ECDSAP256)
	if err != nil {
		log.Fatal(err)
	}
	policy := asn1.ObjectIdentifier{2, 999, 3161, 1}
	srv, err := tsa.NewServer(tsaCert, policy, nil)
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	c := tsa.NewClient(hs.URL)
	c.Roots = roots

	data := []byte("Submission evidence, message 42")
	tok, err := c.TimestampData(context.Background(), data)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("policy:", tok.Policy, "hash:", tok.HashAlg, "TSA:", tok.Signer(nil).Subject.CommonName)

	// Later, from the stored token (tok.Raw) and the data.
	stored, err := tsa.ParseToken(tok.Raw)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verifies:", stored.VerifyData(data, roots, nil) == nil)
	err = stored.VerifyData([]byte("Submission evidence, message 43"), roots, nil)
	fmt.Println("other data:", errors.Is(err, tsa.ErrImprintMismatch))
	// Output:
	// policy: 2.999.3161.1 hash: SHA-256 TSA: KEP Dev TSA
	// verifies: true
	// other data: true
}

// The provider's own development TSA, without HTTP.
func ExampleServer_StampDigest() {
	ca, _ := pki.NewRootCA(pkix.Name{CommonName: "KEP Dev Root"}, pki.ECDSAP256, 10*365*24*time.Hour)
	tsaCert, _ := ca.IssueTSA("KEP Dev TSA", pki.RSA2048)
	srv, err := tsa.NewServer(tsaCert, asn1.ObjectIdentifier{2, 999, 3161, 1}, nil)
	if err != nil {
		log.Fatal(err)
	}
	sum := sha512.Sum384([]byte("evidence"))
	first, err := srv.StampDigest(crypto.SHA384, sum[:])
	if err != nil {
		log.Fatal(err)
	}
	second, _ := srv.StampDigest(crypto.SHA384, sum[:])
	fmt.Println("serials increase:", second.Serial.Cmp(first.Serial) > 0)
	fmt.Println("TSA certificate included:", len(first.Certificates) == 1)
	fmt.Println("response for openssl:", len(first.ResponseDER()) > len(first.Raw))
	// Output:
	// serials increase: true
	// TSA certificate included: true
	// response for openssl: true
}
