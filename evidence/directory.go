package evidence

// Verifying a bundle against the authority's provider directory
// (docs/relay.md, "The provider directory"): the anchor a provider uses for
// evidence another provider returns, and `kep verify` for a bundle from
// any provider. The directory lists each provider's evidence-signing
// certificates and log keys with their windows; trust comes from it, not
// from a CA.

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kephs/kep/directory"
)

// CheckDirectory names the check that the evidence's signer and the log key
// are listed in the directory for the issuing provider, at the evidence's
// time.
const CheckDirectory = "directory"

// IssuerIn returns the provider of d that lists the bundle's signer as an
// evidence certificate at the evidence's time, or nil.
func IssuerIn(d *directory.Directory, data []byte) *directory.Provider {
	b, err := ParseBundle(data)
	if err != nil {
		return nil
	}
	e, err := Parse(b.Evidence)
	if err != nil {
		return nil
	}
	for i := range d.Providers {
		p := &d.Providers[i]
		if listedCert(p.SigningCertificates(directory.UseEvidence, e.EventTime), b.Certificates[0]) {
			return p
		}
	}
	return nil
}

// VerifyWithDirectory verifies a bundle issued by provider p, its anchors
// taken from the directory: the signer must be a certificate the directory
// lists for p's evidence at the evidence's event time, and the checkpoint
// signed by a log key it lists for p then; the time stamp must chain to
// tsaRoots; every other link is checked as VerifyBundle does (the signer's
// chain up to the last certificate the bundle carries). The report is valid
// only when all hold.
func VerifyWithDirectory(p *directory.Provider, data []byte, tsaRoots *x509.CertPool, original []byte) *Report {
	return (*VerifyCache)(nil).VerifyWithDirectory(p, data, tsaRoots, original)
}

// VerifyWithDirectory is the function VerifyWithDirectory, with
// checkpoints and time stamps checked once per c (nil: every time).
func (c *VerifyCache) VerifyWithDirectory(p *directory.Provider, data []byte, tsaRoots *x509.CertPool, original []byte) *Report {
	b, err := ParseBundle(data)
	if err != nil {
		r := &Report{}
		r.add(CheckContainer, err, "")
		return r
	}
	// Every log key p ever had opens the bundle; the window at the
	// evidence's own time is checked below, once the evidence is read (so
	// that it is parsed once).
	var keys []string
	for _, k := range p.LogKeys {
		keys = append(keys, k.Key)
	}
	roots := x509.NewCertPool()
	roots.AddCert(b.Certificates[len(b.Certificates)-1])
	r := VerifyBundle(data, Anchors{ProviderCAs: roots, TSACAs: tsaRoots, LogKeys: keys, Cache: c}, original)
	if r.Evidence == nil {
		return r
	}
	at := r.Evidence.EventTime
	err = nil
	switch {
	case !listedCert(p.SigningCertificates(directory.UseEvidence, at), b.Certificates[0]):
		err = fmt.Errorf("the evidence is signed by %q, a certificate the directory does not list for %s's evidence at %s",
			subjectOf(b.Certificates[0]), p.ID, at.UTC().Format(time.RFC3339))
	case !slices.Contains(p.LogVerifiers(at), b.LogKey):
		err = fmt.Errorf("the bundle's log key %q is not one the directory lists for %s at %s", b.LogKey, p.ID, at.UTC().Format(time.RFC3339))
	}
	r.add(CheckDirectory, err, fmt.Sprintf("signer and log key listed for %s at %s", p.ID, at.UTC().Format(time.RFC3339)))
	r.Valid = true
	for _, c := range r.Checks {
		r.Valid = r.Valid && c.OK
	}
	return r
}

// VerifyTrusted verifies a bundle as a provider's verification page and
// API do: against the provider's own anchors, or, when the directory d
// lists another provider than self as the bundle's issuer, against that
// provider's entries in the directory (VerifyWithDirectory; TSA roots from
// own). via is that provider, or nil when own anchors were used. d may be
// nil (no federation).
func VerifyTrusted(data []byte, own Anchors, self string, d *directory.Directory, original []byte) (r *Report, via *directory.Provider) {
	if d != nil {
		if p := IssuerIn(d, data); p != nil && p.ID != self {
			return VerifyWithDirectory(p, data, own.TSACAs, original), p
		}
	}
	return VerifyBundle(data, own, original), nil
}

// Failed summarises the failed checks of a report on one line, or nil
// when it is valid.
func (r *Report) Failed() error {
	if r.Valid {
		return nil
	}
	var failed []string
	for _, c := range r.Checks {
		if !c.OK {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	if len(failed) == 0 {
		return errors.New("not valid")
	}
	return errors.New(strings.Join(failed, "; "))
}

func listedCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, l := range certs {
		if l.Equal(c) {
			return true
		}
	}
	return false
}
