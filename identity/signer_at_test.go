package identity

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/kephs/kep/pki"
)

// TestCheckSignerAt: issue 9 point 2. A certificate must be valid both at the
// signing time its holder claims and at acceptance by the provider's clock;
// a backdated signingTime cannot revive an expired certificate.
func TestCheckSignerAt(t *testing.T) {
	now := time.Now()
	root := newRoot(t, "Test ESHS Root")
	ts := NewTrustStore(root.Cert)
	me := ID{TCKN, testTCKN}
	// Valid from now-60m to now-30m: expired 30 minutes ago.
	expired := issue(t, root, pki.Template{NotBefore: now.Add(-time.Hour), Validity: 30 * time.Minute, KeyUsage: signerUsage, ExtKeyUsage: emailEKU})
	// Valid from now+10m: not yet valid.
	future := issue(t, root, pki.Template{NotBefore: now.Add(10 * time.Minute), Validity: time.Hour, KeyUsage: signerUsage, ExtKeyUsage: emailEKU})
	good := signer(t, root, testTCKN, "TCKN")
	tests := []struct {
		name           string
		cert           *x509.Certificate
		signedAt, asOf time.Time
		err            error
	}{
		{"valid at both", good, now.Add(-time.Minute), now, nil},
		{"no signing time claimed", good, time.Time{}, now, nil},
		{"expired 30 minutes ago, signing time backdated into validity", expired, now.Add(-45 * time.Minute), now, ErrExpired},
		{"expired, no signing time", expired, time.Time{}, now, ErrExpired},
		{"relayed: judged as of the sending provider's acceptance", expired, now.Add(-46 * time.Minute), now.Add(-45 * time.Minute), nil},
		{"signing time before validity", future, now, now.Add(20 * time.Minute), ErrNotYetValid},
		{"someone else's certificate", signer(t, root, otherTCKN, ""), now, now, ErrIdentityMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ts.CheckSignerAt(tt.cert, nil, tt.signedAt, tt.asOf, me)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("CheckSignerAt = %v, want %v", err, tt.err)
			}
		})
	}
}
