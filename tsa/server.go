package tsa

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/pki"
)

// Media types of the Time-Stamp Protocol via HTTP (RFC 3161 §3.4).
const (
	QueryMediaType = "application/timestamp-query"
	ReplyMediaType = "application/timestamp-reply"
)

// maxQueryBytes bounds a request body; a TimeStampReq is under 200 bytes
// unless it carries extensions.
const maxQueryBytes = 64 << 10

// Server is a development time-stamping authority (zaman damgası hizmet
// sağlayıcısı for `kep demo` and the tests; in production the provider uses
// an accredited TSA such as Kamu SM through Client). It serves RFC 3161 over
// HTTP and stamps in-process through Stamp and StampDigest. It is safe for
// concurrent use.
//
// Tokens carry: the request's message imprint and nonce, the policy given to
// NewServer, genTime from the clock in UTC with millisecond precision,
// Accuracy, a serial number, the TSA name, and a CMS signature with SHA-256
// (SHA-384/512 for P-384/P-521 keys) carrying the content-type,
// signing-time, message-digest and ESS signingCertificateV2 attributes.
type Server struct {
	// Accuracy is stated in every token (RFC 3161 §2.4.2). NewServer sets
	// one second; change it before serving.
	Accuracy time.Duration

	signer  *pki.Issued
	policy  asn1.ObjectIdentifier
	clock   func() time.Time
	hash    crypto.Hash // of the CMS signature
	sigAlg  pkix.AlgorithmIdentifier
	certs   [][]byte // sent on certReq: TSA certificate and CAs below the root
	tsaName []byte   // TSTInfo.tsa, [0] EXPLICIT GeneralName directoryName
	essAttr []byte   // the signingCertificateV2 attribute, the same in every token

	mu         sync.Mutex // orders genTime and serial numbers together
	lastSerial uint64
}

// NewServer makes a TSA signing with signer (a certificate from
// pki.CA.IssueTSA or an equivalent one: RFC 3161 §2.3 critical
// extendedKeyUsage timeStamping) under policy (TSTInfo.policy is mandatory,
// RFC 3161 §2.4.2). clock gives genTime; nil means time.Now. ECDSA (P-256,
// P-384, P-521) and RSA keys are supported.
func NewServer(signer *pki.Issued, policy asn1.ObjectIdentifier, clock func() time.Time) (*Server, error) {
	if signer == nil || signer.Cert == nil || signer.Key == nil {
		return nil, errors.New("tsa: NewServer needs a certificate and its key")
	}
	if len(policy) == 0 {
		return nil, errors.New("tsa: NewServer needs a policy OID (TSTInfo.policy is mandatory, RFC 3161 §2.4.2)")
	}
	if err := CheckTSACertificate(signer.Cert); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = time.Now
	}
	if now := clock(); now.Before(signer.Cert.NotBefore) || now.After(signer.Cert.NotAfter) {
		return nil, fmt.Errorf("tsa: TSA certificate %q is not valid now (%s; valid %s to %s)", signer.Cert.Subject.CommonName,
			now.UTC().Format(time.RFC3339), signer.Cert.NotBefore.Format(time.RFC3339), signer.Cert.NotAfter.Format(time.RFC3339))
	}
	return newServer(signer, policy, clock)
}

// newServer skips the certificate checks, so that tests can make the bad
// tokens that Verify must reject.
func newServer(signer *pki.Issued, policy asn1.ObjectIdentifier, clock func() time.Time) (*Server, error) {
	if clock == nil {
		clock = time.Now
	}
	s := &Server{Accuracy: time.Second, signer: signer, policy: slices.Clone(policy), clock: clock}
	if pub, ok := signer.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(signer.Cert.PublicKey) {
		return nil, fmt.Errorf("tsa: the key does not belong to certificate %q", signer.Cert.Subject.CommonName)
	}
	switch pub := signer.Cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			s.hash, s.sigAlg.Algorithm = crypto.SHA256, oidECDSAWithSHA256
		case elliptic.P384():
			s.hash, s.sigAlg.Algorithm = crypto.SHA384, oidECDSAWithSHA384
		case elliptic.P521():
			s.hash, s.sigAlg.Algorithm = crypto.SHA512, oidECDSAWithSHA512
		default:
			return nil, fmt.Errorf("tsa: unsupported ECDSA curve %s", pub.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		// PKCS #1 v1.5; the parameters are NULL (RFC 4055 §5).
		s.hash, s.sigAlg = crypto.SHA256, pkix.AlgorithmIdentifier{Algorithm: oidSHA256WithRSA, Parameters: asn1NULL}
	default:
		return nil, fmt.Errorf("tsa: unsupported TSA key type %T (want ECDSA or RSA)", pub)
	}

	// RFC 3161 §2.4.1 certReq: the TSA's certificate MUST be sent; we add the
	// CAs under the root so that a verifier needs only the root.
	s.certs = [][]byte{signer.Cert.Raw}
	for _, c := range signer.Chain {
		if !bytes.Equal(c.RawIssuer, c.RawSubject) {
			s.certs = append(s.certs, c.Raw)
		}
	}
	// RFC 3161 §2.4.2 tsa [0] GeneralName: directoryName [4] Name.
	s.tsaName = tlv(asn1.ClassContextSpecific, 0, true, tlv(asn1.ClassContextSpecific, 4, true, signer.Cert.RawSubject))

	// RFC 3161 §2.4.2 requires an ESS signing-certificate attribute; RFC 5816
	// allows the v2 of RFC 5035, here with the default hash SHA-256 (so the
	// hashAlgorithm is omitted) and IssuerSerial.
	certHash := crypto.SHA256.New()
	certHash.Write(signer.Cert.Raw)
	issuerSerial := tlv(asn1.ClassUniversal, asn1.TagSequence, true, append(
		tlv(asn1.ClassUniversal, asn1.TagSequence, true, tlv(asn1.ClassContextSpecific, 4, true, signer.Cert.RawIssuer)), // GeneralNames
		mustMarshal(signer.Cert.SerialNumber)...))
	s.essAttr = attributeDER(oidAttrSigningCertV2, mustMarshal(signingCertificateV2{
		Certs: []essCertIDv2{{CertHash: certHash.Sum(nil), IssuerSerial: asn1.RawValue{FullBytes: issuerSerial}}},
	}))
	return s, nil
}

// Certificate returns the TSA certificate, for verifiers of tokens
// requested without certReq.
func (s *Server) Certificate() *x509.Certificate { return s.signer.Cert }

// StampDigest time-stamps a digest made with h, in-process. The token carries
// the TSA certificate and no nonce.
func (s *Server) StampDigest(h crypto.Hash, digest []byte) (*Token, error) {
	return s.Stamp(&Request{HashAlgorithm: h, HashedMessage: digest, Certificates: true})
}

// Stamp answers req in-process as the HTTP server would. A request the TSA
// does not accept yields a *RefusedError with the failInfo it would send.
func (s *Server) Stamp(req *Request) (*Token, error) {
	if len(req.Extensions) > 0 {
		return nil, refusedErr(UnacceptedExtension, "this TSA supports no request extensions")
	}
	if err := cms.Current.CheckDigest(req.HashAlgorithm); err != nil {
		return nil, refusedErr(BadAlgorithm, fmt.Sprintf("hash %v not accepted; this TSA accepts %s", req.HashAlgorithm, cms.NewDigests()))
	}
	alg := hashAlgID(req.HashAlgorithm)
	imprint := mustMarshal(messageImprint{HashAlgorithm: alg, HashedMessage: req.HashedMessage})
	der, rerr := s.stamp(imprint, alg.Algorithm, req.HashedMessage, req.TSAPolicyOID, req.Nonce, req.Certificates)
	if rerr != nil {
		return nil, rerr
	}
	return ParseToken(der)
}

// Respond answers a DER TimeStampReq with a DER TimeStampResp: a token, or a
// rejection whose failInfo says why (RFC 3161 §2.4.2). It never fails.
func (s *Server) Respond(query []byte) []byte {
	var req timeStampReq
	rest, err := asn1.Unmarshal(query, &req)
	if err != nil || len(rest) > 0 {
		return rejection(BadDataFormat, "not a DER TimeStampReq (RFC 3161 §2.4.1): "+errOrTrailing(err, rest))
	}
	if req.Version != 1 {
		return rejection(BadRequest, fmt.Sprintf("TimeStampReq version %d not supported (want 1)", req.Version))
	}
	if len(req.Extensions) > 0 {
		// RFC 3161 §2.4.1: an extension the server does not recognise, critical
		// or not, gets unacceptedExtension.
		return rejection(UnacceptedExtension, fmt.Sprintf("extension %s not supported", req.Extensions[0].Id))
	}
	token, rerr := s.stamp(req.MessageImprint.Raw, req.MessageImprint.HashAlgorithm.Algorithm, req.MessageImprint.HashedMessage, req.ReqPolicy, req.Nonce, req.CertReq)
	if rerr != nil {
		return rejectionOf(rerr)
	}
	return grantedResponse(token)
}

// stamp checks a request and signs a token. imprint is the DER
// MessageImprint, echoed as it came (RFC 3161 §2.4.2).
func (s *Server) stamp(imprint []byte, hashOID asn1.ObjectIdentifier, digest []byte, policy asn1.ObjectIdentifier, nonce *big.Int, certReq bool) ([]byte, *RefusedError) {
	// The imprints a TSA accepts are what the algorithm policy accepts for
	// new time stamps (cms.Policy, docs/algorithms.md).
	h := hashFromOID(hashOID)
	if h == 0 || cms.Current.CheckDigest(h) != nil {
		return nil, refusedErr(BadAlgorithm, fmt.Sprintf("hash algorithm %s not accepted; this TSA accepts %s", hashOID, cms.NewDigests()))
	}
	if len(digest) != h.Size() {
		return nil, refusedErr(BadDataFormat, fmt.Sprintf("%v message imprint is %d bytes, want %d", h, len(digest), h.Size()))
	}
	if len(policy) > 0 && !policy.Equal(s.policy) {
		return nil, refusedErr(UnacceptedPolicy, fmt.Sprintf("policy %s not offered; this TSA issues under %s", policy, s.policy))
	}

	s.mu.Lock()
	now := s.clock().UTC().Truncate(time.Millisecond) // genTime precision
	// Serial numbers (RFC 3161 §2.4.2: unique per TSA, up to 160 bits) are
	// the genTime in nanoseconds since 1970, or one more than the last one:
	// increasing within a process, and across restarts while the clock does
	// not go back.
	serial := max(s.lastSerial+1, uint64(max(now.UnixNano(), 0)))
	s.lastSerial = serial
	s.mu.Unlock()

	if c := s.signer.Cert; now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return nil, refusedErr(SystemFailure, fmt.Sprintf("TSA certificate not valid at %s (valid %s to %s)",
			now.Format(time.RFC3339), c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339)))
	}
	der, err := s.sign(imprint, now, new(big.Int).SetUint64(serial), nonce, certReq)
	if err != nil {
		return nil, refusedErr(SystemFailure, "signing failed: "+err.Error())
	}
	return der, nil
}

// sign builds the TSTInfo (RFC 3161 §2.4.2) and the CMS SignedData around it
// (RFC 5652 §5).
//
// This writer is the development TSA's alone and exists beside the
// provider's one CMS signer (cms/detached.go) because a token differs from
// every signature the provider makes: SignedData version 3 over a TSTInfo
// rather than version 1 over id-data, the hash chosen by the TSA key's size,
// signingTime from the TSA's clock, certificates only on certReq. What it
// writes is read back, like every token, by the one CMS model
// (cms.ParseSignedData), and tests check it with `openssl ts -verify`.
func (s *Server) sign(imprint []byte, now time.Time, serial, nonce *big.Int, certReq bool) ([]byte, error) {
	tst, err := asn1.Marshal(tstInfo{
		Version:        1,
		Policy:         s.policy,
		MessageImprint: messageImprint{Raw: imprint},
		SerialNumber:   serial,
		GenTime:        asn1.RawValue{FullBytes: genTimeDER(now)},
		Accuracy:       accuracyOf(s.Accuracy),
		Nonce:          nonce,
		TSA:            asn1.RawValue{FullBytes: s.tsaName},
	})
	if err != nil {
		return nil, err
	}
	md := s.hash.New()
	md.Write(tst)
	signingTime, err := asn1.Marshal(now.Truncate(time.Second)) // UTCTime until 2050 (RFC 5652 §11.3)
	if err != nil {
		return nil, err
	}
	// RFC 5652 §5.3: content-type and message-digest are required with signed
	// attributes; the signature covers their DER as a SET OF (§5.4).
	attrs := derSetOf([][]byte{
		attributeDER(oidAttrContentType, mustMarshal(oidTSTInfo)),
		attributeDER(oidAttrSigningTime, signingTime),
		attributeDER(oidAttrMessageDigest, mustMarshal(md.Sum(nil))),
		s.essAttr,
	})
	ad := s.hash.New()
	ad.Write(tlv(asn1.ClassUniversal, asn1.TagSet, true, attrs))
	sig, err := s.signer.Key.Sign(rand.Reader, ad.Sum(nil), s.hash)
	if err != nil {
		return nil, err
	}

	digestAlg := pkix.AlgorithmIdentifier{Algorithm: hashOIDs[s.hash]} // parameters absent (RFC 5754 §2)
	sd := signedData{
		Version:          3, // RFC 5652 §5.1: eContentType is not id-data
		DigestAlgorithms: asn1.RawValue{FullBytes: tlv(asn1.ClassUniversal, asn1.TagSet, true, mustMarshal(digestAlg))},
		EncapContentInfo: encapContentInfo{EContentType: oidTSTInfo, EContent: tst},
		SignerInfos: []signerInfo{{
			Version:            1, // sid is issuerAndSerialNumber
			SID:                asn1.RawValue{FullBytes: mustMarshal(issuerAndSerial{Issuer: asn1.RawValue{FullBytes: s.signer.Cert.RawIssuer}, Serial: s.signer.Cert.SerialNumber})},
			DigestAlgorithm:    digestAlg,
			SignedAttrs:        asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: attrs},
			SignatureAlgorithm: s.sigAlg,
			Signature:          sig,
		}},
	}
	if certReq {
		sd.Certificates = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: derSetOf(s.certs)}
	}
	sdDER, err := asn1.Marshal(sd)
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(contentInfo{
		ContentType: oidSignedData,
		Content:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sdDER},
	})
}

// attributeDER encodes an Attribute with one value (RFC 5652 §5.3).
func attributeDER(typ asn1.ObjectIdentifier, value []byte) []byte {
	return mustMarshal(attribute{Type: typ, Values: asn1.RawValue{FullBytes: tlv(asn1.ClassUniversal, asn1.TagSet, true, value)}})
}

func refusedErr(f FailureInfo, text string) *RefusedError {
	return &RefusedError{Status: Rejection, FailInfo: []FailureInfo{f}, StatusText: []string{text}}
}

func rejection(f FailureInfo, text string) []byte {
	return rejectionOf(refusedErr(f, text))
}

// rejectionOf encodes a TimeStampResp with PKIStatus rejection, the failInfo
// bits and the text as PKIFreeText (UTF8String, RFC 3161 §2.4.2).
func rejectionOf(e *RefusedError) []byte {
	si := pkiStatusInfo{Status: int(e.Status)}
	for _, t := range e.StatusText {
		si.StatusString = append(si.StatusString, asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(t)})
	}
	var bits []int
	for _, f := range e.FailInfo {
		bits = append(bits, int(f))
	}
	if len(bits) > 0 {
		si.FailInfo = failInfoBits(bits...)
	}
	return mustMarshal(timeStampResp{Status: si})
}

// ServeHTTP implements the Time-Stamp Protocol via HTTP (RFC 3161 §3.4):
// POST application/timestamp-query, answer application/timestamp-reply.
// HTTP errors are for requests that are not TSP at all (method, media type,
// size); a body that is not a valid TimeStampReq gets a TSP rejection.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "RFC 3161 time-stamping: POST a DER TimeStampReq as "+QueryMediaType, http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != QueryMediaType {
		http.Error(w, fmt.Sprintf("Content-Type %q: want %s (RFC 3161 §3.4); with curl add -H 'Content-Type: %s'",
			r.Header.Get("Content-Type"), QueryMediaType, QueryMediaType), http.StatusUnsupportedMediaType)
		return
	}
	query, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxQueryBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("TimeStampReq over %d bytes", maxQueryBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	reply := s.Respond(query)
	w.Header().Set("Content-Type", ReplyMediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(reply)))
	w.Write(reply)
}
