package evidence_test

import (
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/revocation"
)

func TestCheckRevocation(t *testing.T) {
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Test ESHS"}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	serial, other := big.NewInt(0x5d0c), big.NewInt(7)
	crl := func(at time.Time) []byte {
		der, err := ca.CRL(at, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	good := crl(now.Add(-time.Minute))
	stale := crl(now.Add(-3 * time.Hour))
	ca.Revoke(other, now.Add(time.Minute), 1) // revoked after the event: still good at it
	laterRevoked := crl(now.Add(2 * time.Minute))
	ca.Revoke(serial, now.Add(-30*time.Second), 1)
	revoked := crl(now)
	ev := func(code evidence.Code, props ...evidence.Property) *evidence.Evidence {
		return &evidence.Evidence{Code: code, EventTime: now, Properties: props}
	}
	cite := func(der []byte, s *big.Int) evidence.Property {
		return evidence.RevocationRefFor(revocation.KindCRL, der, s).Property()
	}
	altered := append([]byte(nil), good...)
	altered[len(altered)-1] ^= 1
	tests := []struct {
		name string
		e    *evidence.Evidence
		data [][]byte
		ok   bool
	}{
		{"nothing cited, nothing carried", ev(evidence.Accepted), nil, true},
		{"good CRL", ev(evidence.Accepted, cite(good, serial)), [][]byte{good}, true},
		{"revoked after the event", ev(evidence.Accepted, cite(laterRevoked, other)), [][]byte{laterRevoked}, true},
		{"revoked before the acceptance", ev(evidence.Accepted, cite(revoked, serial)), [][]byte{revoked}, false},
		{"revoked, in a rejection", ev(evidence.Rejected, cite(revoked, serial)), [][]byte{revoked}, true},
		{"stale at the event", ev(evidence.Accepted, cite(stale, serial)), [][]byte{stale}, false},
		{"cited, not carried", ev(evidence.Accepted, cite(good, serial)), nil, false},
		{"carried, altered", ev(evidence.Accepted, cite(good, serial)), [][]byte{altered}, false},
		{"carried, not cited", ev(evidence.Accepted), [][]byte{good}, false},
		{"malformed citation", ev(evidence.Accepted, evidence.Property{Name: evidence.PropertyRevocation, Value: "crl md5 00 1"}), nil, false},
		{"bad digest", ev(evidence.Accepted, evidence.Property{Name: evidence.PropertyRevocation, Value: "crl " + evidence.DigestSHA256 + " 00 1"}), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := evidence.CheckRevocation(tt.e, tt.data)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckRevocation = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, evidence.ErrRevocation) {
				t.Errorf("error %v does not match ErrRevocation", err)
			}
		})
	}
	// The citation parses back.
	refs, err := evidence.RevocationRefs(ev(evidence.Accepted, cite(good, serial)))
	if err != nil || len(refs) != 1 || refs[0].Serial.Cmp(serial) != 0 || refs[0].Kind != revocation.KindCRL {
		t.Errorf("RevocationRefs = %+v, %v", refs, err)
	}
}
