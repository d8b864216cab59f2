// Package revocation is in charge of checking whether a signer's certificate
// was revoked: fetching OCSP responses (RFC 6960) and CRLs (RFC 5280 §5) from
// the addresses the certificate names, verifying them against the issuing
// CA, caching them until their nextUpdate, and keeping the response that
// decided as evidence (Data), stored once by its digest, so that a verifier
// years later can see that the certificate was good when the provider
// accepted the message (docs/kep-rules.md, access-point checks; issue 9).
//
// Only the signer's own certificate is checked; the revocation of an
// intermediate CA (an ARL) is not.
package revocation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/kephs/kep/store"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Errors of Check; match with errors.Is. Each comes as an *Error with a
// sentence a person can act on.
var (
	// ErrRevoked: the certificate was revoked at or before the time checked.
	ErrRevoked = errors.New("revocation: certificate revoked")
	// ErrUnavailable: no source gave a usable answer (unreachable, a bad or
	// stale response, or "unknown"). The sender did nothing wrong.
	ErrUnavailable = errors.New("revocation: status unavailable")
	// ErrNoSource: the certificate names neither an OCSP responder nor a
	// CRL distribution point.
	ErrNoSource = errors.New("revocation: certificate names no revocation source")
)

// Error is a failed revocation check.
type Error struct {
	Err    error  // ErrRevoked, ErrUnavailable or ErrNoSource
	Reason string // a sentence naming what happened
}

func (e *Error) Error() string { return "revocation: " + e.Reason }
func (e *Error) Unwrap() error { return e.Err }

// Kinds of revocation data.
const (
	KindOCSP = "ocsp" // DER OCSPResponse (RFC 6960 §4.2.1)
	KindCRL  = "crl"  // DER CertificateList (RFC 5280 §5.1)
)

// Data is one piece of revocation data as fetched: the exact bytes, which
// the evidence cites by their SHA-256.
type Data struct {
	Kind       string
	DER        []byte
	Source     string // the URL
	ThisUpdate time.Time
	NextUpdate time.Time // zero when the issuer named none

	// parsed remembers the data parsed and its signature checked against
	// one issuer, so that a cached response costs no parse and no
	// signature check per message (they were a twentieth of the CPU of a
	// message).
	// A pointer, so that Data stays a plain value to copy; the memo is
	// used only for the very bytes it was made from.
	parsed *atomic.Pointer[parsedData]
}

// newData returns Data with room for its parse memo.
func newData(d Data) *Data {
	d.parsed = new(atomic.Pointer[parsedData])
	return &d
}

type parsedData struct {
	der    string // the bytes parsed
	serial string // the certificate an OCSP response was checked for
	issuer string // the issuer's raw certificate ("" when unchecked)
	ocsp   *ocsp.Response
	crl    *x509.RevocationList
}

func (d *Data) parsedFor(serial *big.Int, issuer *x509.Certificate) *parsedData {
	if d.parsed == nil {
		return nil
	}
	p := d.parsed.Load()
	if p == nil || issuer == nil || p.issuer != string(issuer.Raw) || p.der != string(d.DER) {
		return nil
	}
	if d.Kind == KindOCSP && p.serial != serial.String() {
		return nil
	}
	return p
}

// Digest is the SHA-256 of the data's bytes.
func (d *Data) Digest() [32]byte { return sha256.Sum256(d.DER) }

// DigestHex is Digest in lower-case hexadecimal, the key it is stored under.
func (d *Data) DigestHex() string { s := d.Digest(); return hex.EncodeToString(s[:]) }

// Status is a certificate's revocation status.
type Status string

const (
	Good    Status = "good"
	Revoked Status = "revoked"
)

// Result is the outcome of a check and the data that decided it.
type Result struct {
	Status    Status
	RevokedAt time.Time // for Revoked
	Reason    int       // RFC 5280 CRLReason, for Revoked
	Data      *Data
}

// Checker checks certificates' revocation status. It is safe for
// concurrent use. The zero value is not usable; use New.
type Checker struct {
	client *http.Client
	now    func() time.Time
	write  func(ctx context.Context, fn func(ctx context.Context, tx *store.Tx) error) error

	mu     sync.Mutex
	cache  map[string]*cached    // URL (+ serial for OCSP) → data
	stored map[[32]byte]struct{} // digests Keep has stored
}

type cached struct {
	data  *Data
	until time.Time
}

// Options configure a Checker.
type Options struct {
	// HTTP is the client used to fetch (default: 10 s timeout). The sources
	// are plain HTTP (RFC 5280 §4.2.1.13, RFC 6960 Appendix A): the data is
	// signed, so transport security adds nothing.
	HTTP *http.Client
	// Now is the clock that decides whether cached data is still fresh
	// (default time.Now).
	Now func() time.Time
	// Write, when set, runs Keep's write (the node passes its log's group
	// commit, so that storing a new response never races the log's writer
	// for SQLite's lock); nil writes to the Querier Keep is given. The
	// write is idempotent.
	Write func(ctx context.Context, fn func(ctx context.Context, tx *store.Tx) error) error
}

// New returns a Checker.
func New(o Options) *Checker {
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Checker{client: o.HTTP, now: o.Now, write: o.Write, cache: map[string]*cached{}, stored: map[[32]byte]struct{}{}}
}

// maxResponse is the largest OCSP response or CRL read.
const maxResponse = 16 << 20

// minCache is how long data without a nextUpdate is reused: RFC 6960 §4.2.2.1
// says such a responder always has newer information, so not for long.
const minCache = time.Minute

// skew is the clock difference tolerated between the provider and a CA.
const skew = 5 * time.Minute

// Check returns cert's revocation status at asOf (the acceptance time),
// asking the OCSP responders the certificate names first, then its CRL
// distribution points, and using cached data while it is fresh (until its
// nextUpdate). issuer is the certificate that signed cert; responses must be
// signed by it or by a responder it delegated to (RFC 6960 §4.2.2.2).
//
// It returns a Result with the deciding Data for Good and Revoked; the error
// is nil for Good, an *Error matching ErrRevoked for Revoked, and one
// matching ErrUnavailable or ErrNoSource (with a nil Result) otherwise.
func (c *Checker) Check(ctx context.Context, cert, issuer *x509.Certificate, asOf time.Time) (*Result, error) {
	if len(cert.OCSPServer) == 0 && len(cert.CRLDistributionPoints) == 0 {
		return nil, &Error{Err: ErrNoSource, Reason: fmt.Sprintf("certificate serial %x names neither an OCSP responder nor a CRL distribution point, so whether it was revoked cannot be checked", cert.SerialNumber)}
	}
	var problems []string
	for _, u := range cert.OCSPServer {
		res, err := c.checkOCSP(ctx, u, cert, issuer, asOf)
		if err == nil {
			return res.verdict(cert)
		}
		problems = append(problems, err.Error())
	}
	for _, u := range cert.CRLDistributionPoints {
		res, err := c.checkCRL(ctx, u, cert, issuer, asOf)
		if err == nil {
			return res.verdict(cert)
		}
		problems = append(problems, err.Error())
	}
	return nil, &Error{Err: ErrUnavailable, Reason: fmt.Sprintf("the revocation status of certificate serial %x could not be obtained: %s", cert.SerialNumber, strings.Join(problems, "; "))}
}

func (r *Result) verdict(cert *x509.Certificate) (*Result, error) {
	if r.Status == Revoked {
		return r, &Error{Err: ErrRevoked, Reason: fmt.Sprintf("certificate serial %x issued by %q was revoked on %s (%s)",
			cert.SerialNumber, cert.Issuer.CommonName, r.RevokedAt.UTC().Format(time.RFC3339), ReasonName(r.Reason))}
	}
	return r, nil
}

// ReasonName names an RFC 5280 §5.3.1 CRLReason.
func ReasonName(code int) string {
	names := []string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
		"cessationOfOperation", "certificateHold", "", "removeFromCRL", "privilegeWithdrawn", "aACompromise"}
	if code >= 0 && code < len(names) && names[code] != "" {
		return names[code]
	}
	return fmt.Sprintf("reason %d", code)
}

// fetch returns cached data for key while fresh at now, or calls get and
// caches what it returns.
func (c *Checker) fetch(key string, get func() (*Data, error)) (*Data, error) {
	now := c.now()
	c.mu.Lock()
	e := c.cache[key]
	c.mu.Unlock()
	if e != nil && now.Before(e.until) {
		return e.data, nil
	}
	d, err := get()
	if err != nil {
		return nil, err
	}
	until := d.NextUpdate
	if until.IsZero() {
		until = now.Add(minCache)
	}
	c.mu.Lock()
	if len(c.cache) > 100000 {
		clear(c.cache)
	}
	c.cache[key] = &cached{data: d, until: until}
	c.mu.Unlock()
	return d, nil
}

func (c *Checker) get(ctx context.Context, req *http.Request) ([]byte, error) {
	resp, err := c.client.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", req.URL.Redacted(), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxResponse {
		return nil, fmt.Errorf("%s sent more than %d MB", req.URL.Redacted(), maxResponse>>20)
	}
	return b, nil
}

func (c *Checker) checkOCSP(ctx context.Context, url string, cert, issuer *x509.Certificate, asOf time.Time) (*Result, error) {
	d, err := c.fetch(KindOCSP+" "+url+" "+cert.SerialNumber.String(), func() (*Data, error) {
		reqDER, err := ocsp.CreateRequest(cert, issuer, nil)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(reqDER))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/ocsp-request")
		der, err := c.get(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("OCSP %s: %w", url, err)
		}
		resp, err := ParseOCSP(der, cert, issuer)
		if err != nil {
			return nil, fmt.Errorf("OCSP %s: %w", url, err)
		}
		return newData(Data{Kind: KindOCSP, DER: der, Source: url, ThisUpdate: resp.ThisUpdate, NextUpdate: resp.NextUpdate}), nil
	})
	if err != nil {
		return nil, err
	}
	return StatusFromData(d, cert.SerialNumber, issuer, asOf)
}

func (c *Checker) checkCRL(ctx context.Context, url string, cert, issuer *x509.Certificate, asOf time.Time) (*Result, error) {
	d, err := c.fetch(KindCRL+" "+url, func() (*Data, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		der, err := c.get(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("CRL %s: %w", url, err)
		}
		crl, err := ParseCRL(der, issuer)
		if err != nil {
			return nil, fmt.Errorf("CRL %s: %w", url, err)
		}
		return newData(Data{Kind: KindCRL, DER: der, Source: url, ThisUpdate: crl.ThisUpdate, NextUpdate: crl.NextUpdate}), nil
	})
	if err != nil {
		return nil, err
	}
	return StatusFromData(d, cert.SerialNumber, issuer, asOf)
}

// ParseOCSP parses a DER OCSP response about cert and, when issuer is not
// nil, checks that issuer signed it, or a responder certificate that issuer
// issued for OCSP signing (RFC 6960 §4.2.2.2).
func ParseOCSP(der []byte, cert, issuer *x509.Certificate) (*ocsp.Response, error) {
	resp, err := ocsp.ParseResponseForCert(der, cert, issuer)
	if err != nil {
		return nil, fmt.Errorf("bad OCSP response: %w", err)
	}
	if issuer != nil && resp.Certificate != nil && !resp.Certificate.Equal(issuer) {
		ok := false
		for _, u := range resp.Certificate.ExtKeyUsage {
			ok = ok || u == x509.ExtKeyUsageOCSPSigning
		}
		if !ok {
			return nil, errors.New("bad OCSP response: the responder's certificate is not for OCSP signing")
		}
	}
	return resp, nil
}

// ParseCRL parses a DER CRL and, when issuer is not nil, checks that issuer
// signed it.
func ParseCRL(der []byte, issuer *x509.Certificate) (*x509.RevocationList, error) {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("bad CRL: %w", err)
	}
	if issuer != nil {
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("bad CRL: not signed by %q: %w", issuer.Subject.CommonName, err)
		}
	}
	return crl, nil
}

// StatusFromData reads the status of the certificate with serial at asOf
// from revocation data: Good when the data does not list it as revoked at or
// before asOf, Revoked when it does. The data must not have been stale at
// asOf (its nextUpdate, when it has one, not before asOf); data produced
// after asOf still speaks for asOf, since a revocation is never back-dated
// out of existence. When issuer is not nil the data's signature is checked
// against it. The offline verifier calls this with the data carried in an
// evidence bundle and the evidence's event time.
func StatusFromData(d *Data, serial *big.Int, issuer *x509.Certificate, asOf time.Time) (*Result, error) {
	var thisUpdate, nextUpdate time.Time
	res := &Result{Status: Good, Data: d}
	switch d.Kind {
	case KindOCSP:
		var resp *ocsp.Response
		if p := d.parsedFor(serial, issuer); p != nil {
			resp = p.ocsp
		} else {
			var err error
			if resp, err = ParseOCSP(d.DER, &x509.Certificate{SerialNumber: serial}, issuer); err != nil {
				return nil, err
			}
			if issuer != nil && d.parsed != nil {
				d.parsed.Store(&parsedData{der: string(d.DER), serial: serial.String(), issuer: string(issuer.Raw), ocsp: resp})
			}
		}
		thisUpdate, nextUpdate = resp.ThisUpdate, resp.NextUpdate
		switch resp.Status {
		case ocsp.Good:
		case ocsp.Revoked:
			if !resp.RevokedAt.After(asOf) {
				res.Status, res.RevokedAt, res.Reason = Revoked, resp.RevokedAt, resp.RevocationReason
			}
		default:
			return nil, fmt.Errorf("the OCSP responder does not know certificate serial %x", serial)
		}
	case KindCRL:
		var crl *x509.RevocationList
		if p := d.parsedFor(serial, issuer); p != nil {
			crl = p.crl
		} else {
			var err error
			if crl, err = ParseCRL(d.DER, issuer); err != nil {
				return nil, err
			}
			if issuer != nil && d.parsed != nil {
				d.parsed.Store(&parsedData{der: string(d.DER), issuer: string(issuer.Raw), crl: crl})
			}
		}
		thisUpdate, nextUpdate = crl.ThisUpdate, crl.NextUpdate
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(serial) == 0 && !e.RevocationTime.After(asOf) {
				res.Status, res.RevokedAt, res.Reason = Revoked, e.RevocationTime, e.ReasonCode
			}
		}
	default:
		return nil, fmt.Errorf("unknown kind of revocation data %q", d.Kind)
	}
	if !nextUpdate.IsZero() && asOf.After(nextUpdate.Add(skew)) {
		return nil, fmt.Errorf("the %s data was stale at %s (next update %s)", d.Kind, asOf.UTC().Format(time.RFC3339), nextUpdate.UTC().Format(time.RFC3339))
	}
	if d.ThisUpdate.IsZero() {
		d.ThisUpdate, d.NextUpdate = thisUpdate, nextUpdate
	}
	return res, nil
}
