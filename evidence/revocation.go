package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/kephs/kep/revocation"
	"github.com/kephs/kep/store"
)

// Revocation data in evidence (issue 9): an acceptance evidence (10) cites
// the OCSP response or CRL that showed the signer's certificate not revoked
// when the provider accepted the message, by the digest of its exact bytes,
// in a KEP property. The data itself is stored once per digest (package
// revocation, table revocation_data) however many evidences cite it, and a
// bundle carries it (MemberRevocation), so that a verifier can check,
// offline and years later, that the certificate was good at the evidence's
// event time.
const (
	// PropertyRevocation's value is "KIND ALGORITHM DIGEST SERIAL": KIND
	// ocsp or crl, ALGORITHM an XML-DSig digest URI (DigestSHA256), DIGEST
	// the hexadecimal digest of the data's bytes, SERIAL the signer
	// certificate's serial number in hexadecimal.
	PropertyRevocation = "RevocationData"
	// PropertyRevocationUnavailable records that the revocation status
	// could not be obtained and the provider accepted anyway ("accept and
	// record", a provider option); its value is the reason.
	PropertyRevocationUnavailable = "RevocationUnavailable"
)

// ErrRevocation: the revocation data a bundle carries does not match what
// the evidence cites, or does not show the signer's certificate good.
var ErrRevocation = errors.New("evidence: revocation data")

// RevocationRef is one citation of revocation data.
type RevocationRef struct {
	Kind            string // revocation.KindOCSP or revocation.KindCRL
	DigestAlgorithm string // DigestSHA256
	Digest          []byte
	Serial          *big.Int // the signer certificate's serial number
}

// RevocationRefFor cites data of kind with the given bytes about the
// certificate with serial, by its SHA-256.
func RevocationRefFor(kind string, der []byte, serial *big.Int) RevocationRef {
	sum := sha256.Sum256(der)
	return RevocationRef{Kind: kind, DigestAlgorithm: DigestSHA256, Digest: sum[:], Serial: serial}
}

// Property is the citation as a KEP property.
func (r RevocationRef) Property() Property {
	return Property{Name: PropertyRevocation, Value: fmt.Sprintf("%s %s %x %x", r.Kind, r.DigestAlgorithm, r.Digest, r.Serial)}
}

// RevocationRefs returns the revocation data e cites.
func RevocationRefs(e *Evidence) ([]RevocationRef, error) {
	var out []RevocationRef
	for _, p := range e.Properties {
		if p.Name != PropertyRevocation {
			continue
		}
		f := strings.Fields(p.Value)
		if len(f) != 4 || (f[0] != revocation.KindOCSP && f[0] != revocation.KindCRL) || f[1] != DigestSHA256 {
			return nil, fmt.Errorf("%w: property %s %q is not \"ocsp|crl %s DIGEST SERIAL\"", ErrRevocation, PropertyRevocation, p.Value, DigestSHA256)
		}
		d, err := hex.DecodeString(f[2])
		if err != nil || len(d) != sha256.Size {
			return nil, fmt.Errorf("%w: property %s: bad digest %q", ErrRevocation, PropertyRevocation, f[2])
		}
		serial, ok := new(big.Int).SetString(f[3], 16)
		if !ok {
			return nil, fmt.Errorf("%w: property %s: bad serial number %q", ErrRevocation, PropertyRevocation, f[3])
		}
		out = append(out, RevocationRef{Kind: f[0], DigestAlgorithm: f[1], Digest: d, Serial: serial})
	}
	return out, nil
}

// CheckRevocation checks the revocation data a bundle carries against the
// evidence: every citation has its data (matched by digest), and for an
// acceptance the data shows the signer's certificate not revoked at the
// evidence's event time. (The data's signature by the e-signature CA is not
// checked here: the bundle does not carry the signer's chain. Its digest is
// covered by the provider's signature over the evidence.)
func CheckRevocation(e *Evidence, data [][]byte) error {
	refs, err := RevocationRefs(e)
	if err != nil {
		return err
	}
	used := make([]bool, len(data))
	for _, r := range refs {
		var der []byte
		for i, d := range data {
			sum := sha256.Sum256(d)
			if bytes.Equal(sum[:], r.Digest) {
				der, used[i] = d, true
				break
			}
		}
		if der == nil {
			return fmt.Errorf("%w: the evidence cites %s data %x, which the bundle does not carry", ErrRevocation, r.Kind, r.Digest)
		}
		res, err := revocation.StatusFromData(&revocation.Data{Kind: r.Kind, DER: der}, r.Serial, nil, e.EventTime)
		if err != nil {
			return fmt.Errorf("%w: %s data %x: %v", ErrRevocation, r.Kind, r.Digest, err)
		}
		if e.Code == Accepted && res.Status != revocation.Good {
			return fmt.Errorf("%w: the %s data shows certificate serial %x revoked on %s, before the acceptance at %s",
				ErrRevocation, r.Kind, r.Serial, res.RevokedAt.UTC().Format(time.RFC3339), e.EventTime.UTC().Format(time.RFC3339))
		}
	}
	for i, u := range used {
		if !u {
			return fmt.Errorf("%w: the bundle carries revocation data %d that the evidence does not cite", ErrRevocation, i+1)
		}
	}
	return nil
}

// MemberRevocation names the bundle members carrying revocation data:
// MemberRevocation + N + ".der", N = 1, 2, … in the order the evidence
// cites them, each the exact bytes whose digest the evidence states.
const MemberRevocation = "META-INF/revocation-"

// CheckRevocationData is the name of the bundle check of revocation data.
const CheckRevocationData = "revocation"

func revocationMembers(data [][]byte) []bundleMember {
	var out []bundleMember
	for i, d := range data {
		out = append(out, bundleMember{fmt.Sprintf("%s%d.der", MemberRevocation, i+1), d})
	}
	return out
}

func isRevocationMember(name string) bool {
	n, ok := strings.CutPrefix(name, MemberRevocation)
	if !ok {
		return false
	}
	n, ok = strings.CutSuffix(n, ".der")
	return ok && n != "" && strings.Trim(n, "0123456789") == "" && n[0] != '0'
}

// revocationFromMembers collects the revocation members, which must be
// numbered 1, 2, … without a gap.
func revocationFromMembers(got map[string][]byte) ([][]byte, error) {
	n := 0
	for name := range got {
		if isRevocationMember(name) {
			n++
		}
	}
	out := make([][]byte, 0, n)
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s%d.der", MemberRevocation, i)
		d, ok := got[name]
		if !ok {
			return nil, fmt.Errorf("%w: revocation data must be numbered 1, 2, …; %q is missing", ErrBundle, name)
		}
		out = append(out, d)
	}
	return out, nil
}

// checkRevocationMembers adds the revocation check to a bundle's report
// when the evidence cites revocation data or the bundle carries some.
func checkRevocationMembers(r *Report, e *Evidence, data [][]byte) {
	refs, err := RevocationRefs(e)
	if err == nil && len(refs) == 0 && len(data) == 0 {
		return
	}
	if err == nil {
		err = CheckRevocation(e, data)
	}
	detail := ""
	if len(refs) > 0 {
		detail = fmt.Sprintf("the %s data the evidence cites shows certificate serial %x not revoked at %s", refs[0].Kind, refs[0].Serial, e.EventTime.UTC().Format(time.RFC3339))
	}
	r.add(CheckRevocationData, err, detail)
}

// revocationData reads from the store the revocation data a signed
// evidence document cites, in its order.
func revocationData(ctx context.Context, q store.Querier, doc []byte) ([][]byte, error) {
	if !bytes.Contains(doc, []byte(PropertyRevocation)) {
		return nil, nil
	}
	e, err := Parse(doc)
	if err != nil {
		return nil, err
	}
	refs, err := RevocationRefs(e)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, r := range refs {
		d, err := revocation.Get(ctx, q, hex.EncodeToString(r.Digest))
		if err != nil {
			return nil, err
		}
		out = append(out, d.DER)
	}
	return out, nil
}
