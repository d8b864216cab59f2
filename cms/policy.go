package cms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"strings"
	"time"
)

// Policy is the one algorithm policy of the provider: which digest and
// signature algorithms a CMS signature (a user's S/MIME signature, an RFC
// 3161 time-stamp token, the provider's own envelope) may use. It has two
// faces (docs/algorithms.md):
//
//   - Current, for anything made now: a message a user submits, a time stamp
//     the provider has just obtained, the provider's own signatures. Only the
//     algorithms marked "new" in the table below.
//   - AsOf(t), for old evidence checked as of its time t (the 20-year
//     verification, architecture.md "Evidence longevity"): an algorithm
//     retired since is still accepted when t is before its cut-off, that is
//     when something trustworthy (a later time stamp, made while the
//     algorithm was still sound) proves the signature existed before the
//     algorithm became weak (the idea of RFC 4998 §5.2, ETSI TS 119 312 §8).
//
// The table (ETSI TS 119 312 v1.4 and SOG-IS Agreed Cryptographic Mechanisms
// v1.3 informed the cut-offs; RFC 8551 §2.1–2.2 lists the S/MIME MUSTs):
//
//	algorithm            new  old evidence accepted when checked as of
//	SHA-256/384/512      yes  always
//	SHA-224              no   before 2031-01-01 (112-bit security ends)
//	SHA-1                no   before 2017-01-01 (CA/B Forum and ETSI retired
//	                          it for signatures; SHAttered 2017, SHAmbles 2020)
//	MD5, others          no   never
//	RSA ≥ 2048 bits      yes  always (PKCS#1 v1.5 and RSASSA-PSS, RFC 8017)
//	RSA 1024–2047 bits   no   before 2014-01-01 (NIST SP 800-131A)
//	ECDSA P-256, P-384   yes  always (RFC 5753, RFC 5758)
//	ECDSA P-521          yes  always
//	Ed25519              yes  always (RFC 8419)
//
// A certificate's hash in an ESS signing-certificate attribute (RFC 2634
// ESSCertID, always SHA-1) identifies a certificate the signature already
// covers; it is not a signature digest and is accepted under every policy.
type Policy struct {
	asOf time.Time // zero: Current
}

// Current is the policy for new signatures and new time stamps.
var Current = Policy{}

// AsOf returns the policy for old evidence checked as of t: what Current
// accepts, plus the retired algorithms whose cut-off is after t.
func AsOf(t time.Time) Policy {
	if t.IsZero() {
		return Current
	}
	return Policy{asOf: t}
}

// String names the policy for messages.
func (p Policy) String() string {
	if p.asOf.IsZero() {
		return "the policy for new signatures"
	}
	return "the policy for evidence as of " + p.asOf.UTC().Format(time.DateOnly)
}

// Rule is one row of the algorithm table.
type Rule struct {
	Name string
	// New: accepted in new signatures and time stamps (Current).
	New bool
	// OldBefore: a retired algorithm is accepted in evidence checked as of a
	// time before this cut-off (AsOf). Zero for a retired algorithm means
	// never; it is ignored when New is set.
	OldBefore time.Time
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// digestRules is the digest half of the table; a hash not listed is refused.
var digestRules = map[crypto.Hash]Rule{
	crypto.SHA256: {Name: "SHA-256", New: true},
	crypto.SHA384: {Name: "SHA-384", New: true},
	crypto.SHA512: {Name: "SHA-512", New: true},
	crypto.SHA224: {Name: "SHA-224", OldBefore: date(2031, 1, 1)},
	crypto.SHA1:   {Name: "SHA-1", OldBefore: date(2017, 1, 1)},
}

// Key rules: the public-key half of the table.
var (
	ruleRSA       = Rule{Name: "RSA of 2048 bits or more", New: true}
	ruleRSAWeak   = Rule{Name: "RSA of 1024 to 2047 bits", OldBefore: date(2014, 1, 1)}
	ruleECDSAP256 = Rule{Name: "ECDSA P-256", New: true}
	ruleECDSAP384 = Rule{Name: "ECDSA P-384", New: true}
	ruleECDSAP521 = Rule{Name: "ECDSA P-521", New: true}
	ruleEd25519   = Rule{Name: "Ed25519", New: true}
)

func (p Policy) accepts(r Rule) bool {
	return r.New || (!p.asOf.IsZero() && !r.OldBefore.IsZero() && p.asOf.Before(r.OldBefore))
}

// refusal explains why r is not accepted, in words a sender can act on.
func (p Policy) refusal(r Rule) error {
	if r.OldBefore.IsZero() {
		return wrap(ErrUnsupportedAlgorithm, "%s is not accepted", r.Name)
	}
	if p.asOf.IsZero() {
		return wrap(ErrUnsupportedAlgorithm, "%s is no longer accepted for new signatures; sign with SHA-256 or stronger and RSA ≥ 2048 bits or ECDSA P-256/P-384", r.Name)
	}
	return wrap(ErrUnsupportedAlgorithm, "%s is accepted only in evidence re-time-stamped before %s, and this one is checked as of %s",
		r.Name, r.OldBefore.Format(time.DateOnly), p.asOf.UTC().Format(time.DateOnly))
}

// CheckDigest accepts h as a signature or time-stamp digest under p.
// Errors wrap ErrUnsupportedAlgorithm.
func (p Policy) CheckDigest(h crypto.Hash) error {
	r, ok := digestRules[h]
	if !ok {
		return wrap(ErrUnsupportedAlgorithm, "digest algorithm %v is not accepted", h)
	}
	if !p.accepts(r) {
		return p.refusal(r)
	}
	return nil
}

// CheckKey accepts pub as a signer's public key under p. Errors wrap
// ErrUnsupportedAlgorithm.
func (p Policy) CheckKey(pub crypto.PublicKey) error {
	var r Rule
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); {
		case bits >= 2048:
			r = ruleRSA
		case bits >= 1024:
			r = ruleRSAWeak
		default:
			return wrap(ErrUnsupportedAlgorithm, "RSA key of %d bits is not accepted", bits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			r = ruleECDSAP256
		case elliptic.P384():
			r = ruleECDSAP384
		case elliptic.P521():
			r = ruleECDSAP521
		default:
			return wrap(ErrUnsupportedAlgorithm, "ECDSA curve %s is not accepted", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		r = ruleEd25519
	default:
		return wrap(ErrUnsupportedAlgorithm, "public key type %T is not accepted", pub)
	}
	if !p.accepts(r) {
		return p.refusal(r)
	}
	return nil
}

// NewDigests lists the digests Current accepts, strongest last, for
// messages such as a TSA's refusal.
func NewDigests() string {
	var names []string
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		if digestRules[h].New {
			names = append(names, digestRules[h].Name)
		}
	}
	return strings.Join(names, ", ")
}

// DigestName is the name of h in the table, or its Go name.
func DigestName(h crypto.Hash) string {
	if r, ok := digestRules[h]; ok {
		return r.Name
	}
	return fmt.Sprint(h)
}
