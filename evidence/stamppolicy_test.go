package evidence

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
	"time"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/tsa"
)

// Each time stamp of a bundle is checked as of the time of the one that
// follows it, the last under today's policy (docs/algorithms.md).
func TestStampPolicies(t *testing.T) {
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "TSA Root"}, pki.ECDSAP256, 30*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.IssueTSA("TSA", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	clock := now
	srv, err := tsa.NewServer(is, asn1.ObjectIdentifier{2, 999, 1}, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("checkpoint"))
	var stamps [][]byte
	var times []time.Time
	for i := range 3 {
		clock = now.Add(time.Duration(i) * time.Hour)
		tok, err := srv.StampDigest(crypto.SHA256, d[:])
		if err != nil {
			t.Fatal(err)
		}
		stamps, times = append(stamps, tok.ResponseDER()), append(times, tok.Time)
	}
	cases := []struct {
		name   string
		stamps [][]byte
		want   []cms.Policy
	}{
		{"one stamp", stamps[:1], []cms.Policy{cms.Current}},
		{"three stamps", stamps, []cms.Policy{cms.AsOf(times[1]), cms.AsOf(times[2]), cms.Current}},
		{"unreadable successor", [][]byte{stamps[0], []byte("junk"), stamps[2]}, []cms.Policy{cms.Current, cms.AsOf(times[2]), cms.Current}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := stampPolicies(c.stamps)
			for i := range c.want {
				if got[i] != c.want[i] {
					t.Errorf("stamp %d: %v, want %v", i, got[i], c.want[i])
				}
			}
		})
	}
}
