package pki

// The development CA's revocation services: a CRL (RFC 5280 §5) and an OCSP
// responder (RFC 6960), served over HTTP on loopback, so that `kep demo` and
// the tests can revoke a signer's certificate and see the access point
// refuse it. A real e-signature CA (ESHS) runs its own; nothing here is used
// against one.

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// revocations is the list of certificates a CA has revoked.
type revocations struct {
	mu      sync.Mutex
	entries map[string]revoked // serial (decimal) → revocation
	number  int64              // the last CRL number issued
}

type revoked struct {
	serial *big.Int
	at     time.Time
	reason int
}

func (ca *CA) revs() *revocations {
	if ca.rev == nil {
		ca.rev = &revocations{entries: map[string]revoked{}}
	}
	return ca.rev
}

// Revoke marks the certificate with serial as revoked from at, for reason
// (an RFC 5280 §5.3.1 CRLReason: 0 unspecified, 1 keyCompromise, …). The CA
// is not safe for concurrent Revoke and Issue before its first Revoke or
// DevRevocationServer; after that it is.
func (ca *CA) Revoke(serial *big.Int, at time.Time, reason int) {
	r := ca.revs()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries[serial.String()] = revoked{serial: new(big.Int).Set(serial), at: at.UTC().Truncate(time.Second), reason: reason}
}

// Revoked reports whether the CA has revoked serial, and from when.
func (ca *CA) Revoked(serial *big.Int) (at time.Time, reason int, ok bool) {
	r := ca.revs()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[serial.String()]
	return e.at, e.reason, ok
}

// CRL issues a fresh DER-encoded CRL of the CA's revocations, valid from
// now to now+validity (its nextUpdate).
func (ca *CA) CRL(now time.Time, validity time.Duration) ([]byte, error) {
	r := ca.revs()
	r.mu.Lock()
	r.number++
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(r.number),
		ThisUpdate: now.UTC().Truncate(time.Second),
		NextUpdate: now.Add(validity).UTC().Truncate(time.Second),
	}
	for _, e := range r.entries {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: e.serial, RevocationTime: e.at, ReasonCode: e.reason})
	}
	r.mu.Unlock()
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue CRL: %w", err)
	}
	return der, nil
}

// OCSPResponse answers a DER-encoded OCSP request (RFC 6960 §4.1) for a
// certificate of this CA, signed by the CA itself (§4.2.2.2, the CA as its
// own responder), valid from now to now+validity. A request about another
// CA's certificate gets the "unauthorized" error response (§2.3).
func (ca *CA) OCSPResponse(request []byte, now time.Time, validity time.Duration) ([]byte, error) {
	req, err := ocsp.ParseRequest(request)
	if err != nil {
		return ocsp.MalformedRequestErrorResponse, nil
	}
	if !ca.issues(req) {
		return ocsp.UnauthorizedErrorResponse, nil
	}
	tmpl := ocsp.Response{
		Status:       ocsp.Good,
		SerialNumber: req.SerialNumber,
		ThisUpdate:   now.UTC().Truncate(time.Second),
		NextUpdate:   now.Add(validity).UTC().Truncate(time.Second),
		IssuerHash:   req.HashAlgorithm,
	}
	if at, reason, ok := ca.Revoked(req.SerialNumber); ok && !at.After(now) {
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, at, reason
	}
	return ocsp.CreateResponse(ca.Cert, ca.Cert, tmpl, ca.Key)
}

// issues reports whether req names this CA as the issuer (RFC 6960 §4.1.1
// CertID: hashes of the issuer's name and public key).
func (ca *CA) issues(req *ocsp.Request) bool {
	if !req.HashAlgorithm.Available() {
		return false
	}
	h := req.HashAlgorithm.New()
	h.Write(ca.Cert.RawSubject)
	name := h.Sum(nil)
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(ca.Cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return false
	}
	h = req.HashAlgorithm.New()
	h.Write(spki.PublicKey.Bytes)
	key := h.Sum(nil)
	return string(name) == string(req.IssuerNameHash) && string(key) == string(req.IssuerKeyHash)
}

// RevocationHandler serves the CA's CRL at /crl (GET) and its OCSP responder
// at /ocsp (POST with an application/ocsp-request body, or GET with the
// base64 request in the path, RFC 6960 Appendix A.1). Responses are valid
// for validity; now is the clock.
func (ca *CA) RevocationHandler(now func() time.Time, validity time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /crl", func(w http.ResponseWriter, r *http.Request) {
		der, err := ca.CRL(now(), validity)
		if err != nil {
			http.Error(w, "the CRL could not be issued", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(der)
	})
	answer := func(w http.ResponseWriter, req []byte) {
		der, err := ca.OCSPResponse(req, now(), validity)
		if err != nil {
			der = ocsp.InternalErrorErrorResponse
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(der)
	}
	mux.HandleFunc("POST /ocsp", func(w http.ResponseWriter, r *http.Request) {
		req, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "the request could not be read", http.StatusBadRequest)
			return
		}
		answer(w, req)
	})
	mux.HandleFunc("GET /ocsp/{req...}", func(w http.ResponseWriter, r *http.Request) {
		req, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.PathValue("req"), "/"))
		if err != nil {
			answer(w, nil)
			return
		}
		answer(w, req)
	})
	return mux
}

// RevocationServer serves a development CA's CRL and OCSP responder.
type RevocationServer struct {
	CA       *CA
	CRLURL   string // http://127.0.0.1:PORT/crl
	OCSPURL  string // http://127.0.0.1:PORT/ocsp
	srv      *http.Server
	listener net.Listener
}

// DefaultRevocationValidity is how long the development CA's CRLs and OCSP
// responses are valid (their nextUpdate): short, so that a revocation shows
// within a minute through any cache.
const DefaultRevocationValidity = time.Minute

// DevRevocationServer starts the CRL distribution point and OCSP responder
// of a development CA on addr ("127.0.0.1:0" picks a free loopback port),
// with now as its clock (nil: time.Now) and responses valid for
// DefaultRevocationValidity, and sets ca.CRLURL and ca.OCSPURL so that the
// certificates the CA issues from then on name them. Close stops it.
func DevRevocationServer(ca *CA, addr string, now func() time.Time) (*RevocationServer, error) {
	if now == nil {
		now = time.Now
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pki: revocation server: %w", err)
	}
	ca.revs()
	base := "http://" + l.Addr().String()
	s := &RevocationServer{CA: ca, CRLURL: base + "/crl", OCSPURL: base + "/ocsp", listener: l,
		srv: &http.Server{Handler: ca.RevocationHandler(now, DefaultRevocationValidity), ReadHeaderTimeout: 10 * time.Second}}
	ca.CRLURL, ca.OCSPURL = s.CRLURL, s.OCSPURL
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener was closed under it; Close reports nothing more useful
		}
	}()
	return s, nil
}

// Close stops the server.
func (s *RevocationServer) Close() error { return s.srv.Close() }
