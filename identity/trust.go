package identity

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kephs/kep/pki"
)

// TrustStore holds the trust anchors (root certificates of the e-signature
// certification authorities, ESHS) that signers' certificates must chain to.
// It is safe for concurrent use; the zero value is an empty store (it never
// falls back to the system roots).
type TrustStore struct {
	mu    sync.RWMutex
	pool  *x509.CertPool // replaced, never modified, once published
	certs []*x509.Certificate

	// verified remembers chains that verified: a chain that verified at one
	// time verifies at any time inside every certificate's validity period,
	// so the costly path building runs once per signer, not per message.
	verified  sync.Map // [32]byte → *verifiedChain
	nverified atomic.Int64

	eseal atomic.Pointer[ESealFields] // nil: defaultESealFields (eseal.go)
}

type verifiedChain struct {
	chains     [][]*x509.Certificate
	from, till time.Time // the intersection of the chain's validity periods
}

const maxVerified = 10000

// NewTrustStore returns a store trusting certs.
func NewTrustStore(certs ...*x509.Certificate) *TrustStore {
	ts := &TrustStore{}
	for _, c := range certs {
		ts.AddCert(c)
	}
	return ts
}

// certExtensions are the file names LoadTrustStore reads in a directory.
var certExtensions = []string{".pem", ".crt", ".cer", ".der"}

// LoadTrustStore reads trust anchors from files and directories. A file may
// hold PEM CERTIFICATE blocks or one DER certificate (as CAs often publish
// .crt and .cer files). A directory is read one level deep, in name order,
// taking files ending in .pem, .crt, .cer or .der (any case) and skipping
// others. Any unreadable or malformed certificate file is an error, and so is
// finding no certificate at all (ErrNoTrustAnchors): a trust store
// configuration that silently trusts nothing, or something unintended, helps
// no one.
func LoadTrustStore(paths ...string) (*TrustStore, error) {
	ts := NewTrustStore()
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("identity: trust store: %w", err)
		}
		if !fi.IsDir() {
			if err := ts.loadFile(p); err != nil {
				return nil, err
			}
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("identity: trust store: %w", err)
		}
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if e.IsDir() || !slices.Contains(certExtensions, ext) {
				continue
			}
			if err := ts.loadFile(filepath.Join(p, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	if len(ts.Certificates()) == 0 {
		return nil, &CertError{Err: ErrNoTrustAnchors,
			Reason: fmt.Sprintf("no certificate found in %s", strings.Join(paths, ", "))}
	}
	return ts, nil
}

func (ts *TrustStore) loadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("identity: trust store: %w", err)
	}
	var certs []*x509.Certificate
	if bytes.Contains(b, []byte("-----BEGIN")) {
		certs, err = pki.ParseCertsPEM(b)
	} else {
		var c *x509.Certificate
		c, err = x509.ParseCertificate(b)
		certs = []*x509.Certificate{c}
	}
	if err != nil {
		return fmt.Errorf("identity: trust store: %s: %w", path, err)
	}
	for _, c := range certs {
		ts.AddCert(c)
	}
	return nil
}

// AddCert adds a trust anchor. Adding a certificate already present does
// nothing.
func (ts *TrustStore) AddCert(c *x509.Certificate) {
	if c == nil {
		return
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, have := range ts.certs {
		if bytes.Equal(have.Raw, c.Raw) {
			return
		}
	}
	var pool *x509.CertPool
	if ts.pool == nil {
		pool = x509.NewCertPool()
	} else {
		pool = ts.pool.Clone()
	}
	pool.AddCert(c)
	ts.pool = pool
	ts.certs = append(slices.Clip(ts.certs), c)
	ts.verified.Clear()
	ts.nverified.Store(0)
}

func verifiedKey(cert *x509.Certificate, intermediates []*x509.Certificate, usages []x509.ExtKeyUsage) [32]byte {
	h := sha256.New()
	h.Write(cert.Raw)
	for _, c := range intermediates {
		h.Write([]byte{0})
		h.Write(c.Raw)
	}
	for _, u := range usages {
		fmt.Fprintf(h, "|%d", u)
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// Certificates returns the trust anchors, in the order they were added.
func (ts *TrustStore) Certificates() []*x509.Certificate {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return slices.Clone(ts.certs)
}

// Roots returns a copy of the trust anchors as a pool, for x509.VerifyOptions
// and tls.Config. It is never nil.
func (ts *TrustStore) Roots() *x509.CertPool { return ts.snapshot().Clone() }

// snapshot returns the current pool, which is never modified afterwards.
func (ts *TrustStore) snapshot() *x509.CertPool {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	if ts.pool == nil {
		return x509.NewCertPool()
	}
	return ts.pool
}

// VerifyCertificate verifies that cert chains to a trust anchor through the
// given intermediates, with every certificate of the chain valid at time at
// (the signing time; the zero time means now), and that the chain allows one
// of usages (extended key usages; none means any). It returns the chains
// found, leaf first.
//
// This is the shell model: every certificate in the chain must be valid at
// at, as crypto/x509 checks with VerifyOptions.CurrentTime. Revocation (CRL,
// OCSP) is not checked here: package revocation does that
// (docs/certificates.md).
//
// The error is a *CertError matching ErrExpired or ErrNotYetValid (naming the
// certificate, its validity period and the time checked), ErrUntrusted (no
// chain to a trust anchor), ErrKeyUsage, or ErrInvalidChain for any other
// failure; the crypto/x509 error is its Cause.
func (ts *TrustStore) VerifyCertificate(cert *x509.Certificate, intermediates []*x509.Certificate, at time.Time, usages []x509.ExtKeyUsage) ([][]*x509.Certificate, error) {
	if cert == nil {
		return nil, &CertError{Err: ErrInvalidChain, Reason: "no certificate to verify"}
	}
	if at.IsZero() {
		at = time.Now()
	}
	// crypto/x509 reports an expired leaf as "expired" whichever end of the
	// validity period was crossed; check the leaf first for a precise answer.
	if err := validityError(cert, at, nil); err != nil {
		return nil, err
	}
	if len(usages) == 0 {
		// An empty KeyUsages means ServerAuth to crypto/x509.
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
	key := verifiedKey(cert, intermediates, usages)
	if v, ok := ts.verified.Load(key); ok {
		vc := v.(*verifiedChain)
		if !at.Before(vc.from) && !at.After(vc.till) {
			return vc.chains, nil
		}
	}
	roots := ts.snapshot()
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     usages,
	})
	if err == nil {
		if ts.nverified.Add(1) > maxVerified {
			ts.verified.Clear()
			ts.nverified.Store(0)
		}
		vc := &verifiedChain{chains: chains, from: cert.NotBefore, till: cert.NotAfter}
		for _, c := range chains[0] {
			if c.NotBefore.After(vc.from) {
				vc.from = c.NotBefore
			}
			if c.NotAfter.Before(vc.till) {
				vc.till = c.NotAfter
			}
		}
		ts.verified.Store(key, vc)
		return chains, nil
	}
	return nil, ts.explain(err, cert, intermediates, at, usages)
}

// explain turns a crypto/x509 verification error into a *CertError.
func (ts *TrustStore) explain(err error, cert *x509.Certificate, intermediates []*x509.Certificate, at time.Time, usages []x509.ExtKeyUsage) error {
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &invalid):
		c := invalid.Cert
		if c == nil {
			c = cert
		}
		switch invalid.Reason {
		case x509.Expired:
			if verr := validityError(c, at, err); verr != nil {
				return verr
			}
		case x509.IncompatibleUsage:
			return &CertError{Err: ErrKeyUsage, Cert: c, Cause: err,
				Reason: fmt.Sprintf("the chain of %s does not allow the extended key usage %s", describe(c), usageNames(usages))}
		}
		return &CertError{Err: ErrInvalidChain, Cert: c, Cause: err,
			Reason: fmt.Sprintf("%s cannot be verified: %v", describe(c), err)}
	case errors.As(err, &unknown):
		// crypto/x509 folds a CA that is outside its validity period into
		// "unknown authority": look for one on a path to a trust anchor.
		if bad := invalidCAOnPath(cert, intermediates, ts.Certificates(), at); bad != nil {
			if verr := validityError(bad, at, err); verr != nil {
				return verr
			}
		}
		return &CertError{Err: ErrUntrusted, Cert: cert, Cause: err,
			Reason: fmt.Sprintf("%s does not chain to a trusted e-signature CA (its issuer %q is neither trusted nor given as an intermediate that leads to a trusted CA)", describe(cert), cert.Issuer.CommonName)}
	}
	return &CertError{Err: ErrInvalidChain, Cert: cert, Cause: err,
		Reason: fmt.Sprintf("%s cannot be verified: %v", describe(cert), err)}
}

// validityError reports whether c is outside its validity period at at.
func validityError(c *x509.Certificate, at time.Time, cause error) *CertError {
	const layout = time.RFC3339
	period := fmt.Sprintf("valid from %s to %s", c.NotBefore.UTC().Format(layout), c.NotAfter.UTC().Format(layout))
	switch {
	case at.Before(c.NotBefore):
		return &CertError{Err: ErrNotYetValid, Cert: c, Cause: cause,
			Reason: fmt.Sprintf("%s is not yet valid at %s: it is %s", describe(c), at.UTC().Format(layout), period)}
	case at.After(c.NotAfter):
		return &CertError{Err: ErrExpired, Cert: c, Cause: cause,
			Reason: fmt.Sprintf("%s had expired at %s: it was %s", describe(c), at.UTC().Format(layout), period)}
	}
	return nil
}

// invalidCAOnPath looks, ignoring validity periods, for a path of signatures
// from cert through intermediates to one of anchors, and returns the CA
// certificate nearest to cert on it that is outside its validity period at
// at. It returns nil when no such path exists, or when some path has every
// CA valid (then validity is not what failed).
func invalidCAOnPath(cert *x509.Certificate, intermediates, anchors []*x509.Certificate, at time.Time) *x509.Certificate {
	isAnchor := make(map[string]bool, len(anchors))
	for _, a := range anchors {
		isAnchor[string(a.Raw)] = true
	}
	all := append(slices.Clone(intermediates), anchors...)
	valid := func(c *x509.Certificate) bool { return !at.Before(c.NotBefore) && !at.After(c.NotAfter) }

	// walk returns whether cur reaches an anchor and, if every such path has
	// an invalid CA, the nearest one on the first path found.
	const maxDepth = 8
	var walk func(cur *x509.Certificate, depth int) (reaches bool, bad *x509.Certificate)
	walk = func(cur *x509.Certificate, depth int) (bool, *x509.Certificate) {
		if depth > maxDepth {
			return false, nil
		}
		reaches := false
		var firstBad *x509.Certificate
		for _, c := range all {
			if bytes.Equal(c.Raw, cur.Raw) || !bytes.Equal(c.RawSubject, cur.RawIssuer) || cur.CheckSignatureFrom(c) != nil {
				continue
			}
			ok, bad := isAnchor[string(c.Raw)], (*x509.Certificate)(nil)
			if !ok {
				ok, bad = walk(c, depth+1)
			}
			if !ok {
				continue
			}
			if !valid(c) {
				bad = c
			}
			if bad == nil {
				return true, nil
			}
			if !reaches {
				reaches, firstBad = true, bad
			}
		}
		return reaches, firstBad
	}
	_, bad := walk(cert, 0)
	return bad
}

func usageNames(usages []x509.ExtKeyUsage) string {
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageAny:             "any",
		x509.ExtKeyUsageServerAuth:      "serverAuth",
		x509.ExtKeyUsageClientAuth:      "clientAuth",
		x509.ExtKeyUsageCodeSigning:     "codeSigning",
		x509.ExtKeyUsageEmailProtection: "emailProtection",
		x509.ExtKeyUsageTimeStamping:    "timeStamping",
		x509.ExtKeyUsageOCSPSigning:     "OCSPSigning",
	}
	var out []string
	for _, u := range usages {
		if n, ok := names[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("usage %d", u))
		}
	}
	return strings.Join(out, " or ")
}

// signerKeyUsage is what a signing certificate's keyUsage must allow, at least
// one of: digitalSignature, or contentCommitment (nonRepudiation), which
// qualified certificates for electronic signatures carry (ETSI EN 319 412-2
// §4.3.2).
const signerKeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment

// CheckSigner checks a message signer's certificate as the access point must
// (docs/kep-rules.md, access-point checks): it chains to a trusted e-signature CA
// with every certificate valid at at (the signing time), its extended key
// usage allows emailProtection or is absent, its keyUsage allows
// digitalSignature or contentCommitment, and it is bound to want (see
// BindCertificate; for a VKN, an e-seal certificate: ESealFields.Bind). A caller needing other extended key usages can call
// VerifyCertificate and BindCertificate itself.
func (ts *TrustStore) CheckSigner(cert *x509.Certificate, intermediates []*x509.Certificate, at time.Time, want ID) error {
	if err := want.Validate(); err != nil {
		return err
	}
	if _, err := ts.VerifyCertificate(cert, intermediates, at, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}); err != nil {
		return err
	}
	if cert.KeyUsage&signerKeyUsage == 0 {
		return &CertError{Err: ErrKeyUsage, Cert: cert,
			Reason: fmt.Sprintf("%s allows neither digitalSignature nor contentCommitment (nonRepudiation) in its key usage, so it cannot sign messages", describe(cert))}
	}
	return ts.bind(cert, want)
}

// CheckSignerAt is CheckSigner at two instants, as the access point needs
// (docs/kep-rules.md, access-point checks: "valid at its signing time and at
// acceptance (provider's clock)"): the certificate and its chain must be
// valid at signedAt, the signing time the signer claims in the CMS
// signingTime attribute (zero: none claimed), and at asOf, the acceptance
// time by the provider's clock. A signing time backdated into the validity
// period therefore cannot make a certificate that has since expired
// acceptable. For a message relayed from another provider, asOf is that
// provider's acceptance time (its evidence 10), so that a relay retried
// hours later is judged as of the moment the sender's provider accepted.
//
// Validity periods are intervals, so valid at both instants means valid
// throughout. The chain is built once; the second check hits the cache.
func (ts *TrustStore) CheckSignerAt(cert *x509.Certificate, intermediates []*x509.Certificate, signedAt, asOf time.Time, want ID) error {
	if asOf.IsZero() {
		asOf = time.Now()
	}
	if !signedAt.IsZero() && !signedAt.Equal(asOf) {
		if err := ts.CheckSigner(cert, intermediates, signedAt, want); err != nil {
			return err
		}
	}
	return ts.CheckSigner(cert, intermediates, asOf, want)
}
