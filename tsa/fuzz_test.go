package tsa

import (
	"crypto"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/kephs/kep/pki"
)

// FuzzParseToken feeds tokens and responses to the parsers and, when they
// parse, to Verify and ResponseDER: nothing may panic.
func FuzzParseToken(f *testing.F) {
	roots := x509.NewCertPool()
	var extra []*x509.Certificate
	for _, kt := range []pki.KeyType{pki.ECDSAP256, pki.RSA2048} {
		w := newWorld(f, kt)
		roots.AddCert(w.ca.Cert)
		extra = append(extra, w.tsa.Cert)
		tok, err := w.srv.StampDigest(sha256Of([]byte("seed")))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok.Raw)
		f.Add(tok.ResponseDER())
		noCert, _ := w.srv.Stamp(&Request{HashAlgorithm: crypto.SHA512, HashedMessage: make([]byte, 64)})
		f.Add(noCert.Raw)
		f.Add(w.srv.Respond([]byte("not a query"))) // a rejection
	}
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80, 0, 0}) // BER indefinite length
	f.Fuzz(func(t *testing.T, der []byte) {
		tok, err := ParseToken(der)
		if err != nil {
			if tok, err = ParseResponse(der); err != nil {
				return
			}
		}
		_ = tok.Verify(tok.HashedMessage, roots, extra)
		if _, err := ParseResponse(tok.ResponseDER()); err != nil {
			t.Errorf("ResponseDER of a parsed token does not parse: %v", err)
		}
	})
}

// FuzzServerRespond: whatever arrives, the TSA answers with a TimeStampResp
// that parses, granted or refused.
func FuzzServerRespond(f *testing.F) {
	w := newWorld(f, pki.ECDSAP256)
	for _, r := range []Request{
		{HashAlgorithm: crypto.SHA256, HashedMessage: make([]byte, 32), Certificates: true},
		{HashAlgorithm: crypto.SHA384, HashedMessage: make([]byte, 48), TSAPolicyOID: testPolicy},
		{HashAlgorithm: crypto.SHA1, HashedMessage: make([]byte, 20)},
	} {
		q, _ := r.Marshal()
		f.Add(q)
	}
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, query []byte) {
		r := w.srv.Respond(query)
		_, err := ParseResponse(r)
		var re *RefusedError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("Respond wrote an unreadable answer: %v", err)
		}
	})
}
