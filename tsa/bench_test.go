package tsa

import (
	"context"
	"testing"

	"github.com/kephs/kep/pki"
)

// BenchmarkStampDigest is the in-process TSA: build the TSTInfo, sign it,
// return the parsed token.
func BenchmarkStampDigest(b *testing.B) {
	for _, kt := range keyTypes {
		b.Run(string(kt), func(b *testing.B) {
			w := newWorld(b, kt)
			h, d := sha256Of([]byte("evidence"))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.srv.StampDigest(h, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTokenVerify is Verify of a token with the TSA certificate inside:
// imprint, CMS signature, ESS binding, EKU, chain at the token's time.
func BenchmarkTokenVerify(b *testing.B) {
	for _, kt := range keyTypes {
		b.Run(string(kt), func(b *testing.B) {
			w := newWorld(b, kt)
			tok, err := w.srv.StampDigest(sha256Of([]byte("evidence")))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := tok.Verify(tok.HashedMessage, w.roots, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseToken is ParseToken alone (it parses the TSA certificate).
func BenchmarkParseToken(b *testing.B) {
	w := newWorld(b, pki.ECDSAP256)
	tok, _ := w.srv.StampDigest(sha256Of([]byte("evidence")))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseToken(tok.Raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientTimestamp is a whole round trip over loopback HTTP: request,
// stamp, response checks and Verify.
func BenchmarkClientTimestamp(b *testing.B) {
	w := newWorld(b, pki.ECDSAP256)
	c := w.client()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.TimestampData(ctx, []byte("evidence")); err != nil {
			b.Fatal(err)
		}
	}
}
