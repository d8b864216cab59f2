package tsa

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/kephs/kep/cms"
)

// Token is a parsed RFC 3161 TimeStampToken: a CMS SignedData (RFC 5652)
// whose content is a TSTInfo (RFC 3161 §2.4.2). Parsing does not decide
// whether it is trustworthy; Verify does.
type Token struct {
	// Raw is the DER TimeStampToken (a ContentInfo): what evidence embeds
	// and what `openssl ts -verify -token_in -in FILE` reads.
	Raw []byte
	// Response is the DER TimeStampResp the TSA sent, when the token came
	// from one (Client, ParseResponse); nil otherwise. See ResponseDER.
	Response []byte

	Time          time.Time     // genTime, in UTC
	Accuracy      time.Duration // 0 when the TSA did not state it
	Serial        *big.Int      // unique per TSA (RFC 3161 §2.4.2)
	Policy        asn1.ObjectIdentifier
	HashAlg       crypto.Hash // hash of the message imprint
	HashedMessage []byte
	Nonce         *big.Int // nil when the request had none
	Ordering      bool
	// Certificates are the certificates carried in the SignedData: the TSA
	// certificate when the request set certReq, sometimes its chain.
	Certificates []*x509.Certificate

	tstInfo []byte // eContent, the DER TSTInfo that was signed
	sd      *cms.SignedData
}

// ParseResponse parses a DER TimeStampResp (a .tsr file, the body of an HTTP
// reply). A response that does not grant a token yields a *RefusedError.
func ParseResponse(der []byte) (*Token, error) {
	var resp timeStampResp
	rest, err := asn1.Unmarshal(der, &resp)
	if err != nil {
		return nil, malformed("not a TimeStampResp: %s", asn1Reason(err))
	}
	if len(rest) > 0 {
		return nil, malformed("%d bytes of trailing data after the TimeStampResp", len(rest))
	}
	// RFC 3161 §2.4.2: a token is present only with granted or grantedWithMods.
	if st := Status(resp.Status.Status); st != Granted && st != GrantedWithMods {
		return nil, refusal(resp.Status)
	}
	if len(resp.TimeStampToken.FullBytes) == 0 {
		return nil, malformed("status granted but no timeStampToken")
	}
	t, err := ParseToken(resp.TimeStampToken.FullBytes)
	if err != nil {
		return nil, err
	}
	t.Response = bytes.Clone(der)
	return t, nil
}

func refusal(si pkiStatusInfo) *RefusedError {
	e := &RefusedError{Status: Status(si.Status)}
	for _, s := range si.StatusString {
		e.StatusText = append(e.StatusText, string(s.Bytes))
	}
	for i := 0; i < si.FailInfo.BitLength; i++ {
		if si.FailInfo.At(i) == 1 {
			e.FailInfo = append(e.FailInfo, FailureInfo(i))
		}
	}
	return e
}

// ParseToken parses a TimeStampToken (RFC 3161 §2.4.2), a CMS SignedData
// read with the project's one CMS model (cms.ParseSignedData). It checks the
// structure only; call Verify to check the signature and the TSA.
func ParseToken(der []byte) (*Token, error) {
	der = bytes.Clone(der) // the Token's fields point into it
	sd, err := cms.ParseSignedData(der)
	if err != nil {
		return nil, malformed("%v", err)
	}
	// RFC 3161 §2.4.2: eContentType is id-ct-TSTInfo, eContent the DER TSTInfo.
	if !sd.ContentType.Equal(oidTSTInfo) {
		return nil, malformed("encapsulated content type %s, want id-ct-TSTInfo %s", sd.ContentType, oidTSTInfo)
	}
	if len(sd.Content) == 0 {
		return nil, malformed("no TSTInfo in the SignedData")
	}
	if len(sd.Signers) != 1 {
		return nil, malformed("%d signerInfos, RFC 3161 §2.4.2 allows only the TSA's", len(sd.Signers))
	}
	if len(sd.Signers[0].SignedAttrs.FullBytes) == 0 {
		// RFC 3161 §2.4.2 requires the ESS signingCertificate attribute, so a
		// token always has signed attributes.
		return nil, malformed("signerInfo without signed attributes (RFC 3161 §2.4.2 requires signingCertificate)")
	}
	t := &Token{Raw: der, tstInfo: sd.Content, sd: sd, Certificates: sd.Certificates}
	if err := t.parseTSTInfo(); err != nil {
		return nil, err
	}
	return t, nil
}

// SignedData is the token's CMS structure, for checks beyond Verify (the
// canonical form a bundle requires, package evidence).
func (t *Token) SignedData() *cms.SignedData { return t.sd }

// errOrTrailing describes why DER did not parse as one whole element.
func errOrTrailing(err error, rest []byte) string {
	if err != nil {
		return asn1Reason(err)
	}
	return fmt.Sprintf("%d bytes of trailing data", len(rest))
}

func (t *Token) parseTSTInfo() error {
	var info tstInfo
	rest, err := asn1.Unmarshal(t.tstInfo, &info)
	if err != nil || len(rest) > 0 {
		return malformed("bad TSTInfo: %s", errOrTrailing(err, rest))
	}
	if info.Version != 1 {
		return malformed("TSTInfo version %d, want 1", info.Version)
	}
	if t.Time, err = parseGenTime(info.GenTime); err != nil {
		return malformed("%s", asn1Reason(err))
	}
	t.HashAlg = hashFromOID(info.MessageImprint.HashAlgorithm.Algorithm)
	if t.HashAlg == 0 {
		return malformed("message imprint uses unknown hash algorithm %s", info.MessageImprint.HashAlgorithm.Algorithm)
	}
	if len(info.MessageImprint.HashedMessage) != t.HashAlg.Size() {
		return malformed("message imprint is %d bytes, %v needs %d", len(info.MessageImprint.HashedMessage), t.HashAlg, t.HashAlg.Size())
	}
	if info.SerialNumber == nil {
		return malformed("TSTInfo without serial number")
	}
	t.HashedMessage = info.MessageImprint.HashedMessage
	t.Policy = info.Policy
	t.Serial = info.SerialNumber
	t.Accuracy = info.Accuracy.duration()
	t.Ordering = info.Ordering
	t.Nonce = info.Nonce
	return nil
}

// ResponseDER returns a DER TimeStampResp holding the token: the TSA's own
// response when the token came from one, otherwise a granted response built
// around it. `openssl ts -verify -in FILE` and `ts -reply -in FILE` want a
// response; `-token_in` accepts Raw.
func (t *Token) ResponseDER() []byte {
	if t.Response != nil {
		return bytes.Clone(t.Response)
	}
	return grantedResponse(t.Raw)
}

func grantedResponse(token []byte) []byte {
	return mustMarshal(timeStampResp{
		Status:         pkiStatusInfo{Status: int(Granted)},
		TimeStampToken: asn1.RawValue{FullBytes: token},
	})
}

// VerifyData is Verify for the data itself, hashed with the token's hash.
func (t *Token) VerifyData(data []byte, roots *x509.CertPool, intermediates []*x509.Certificate) error {
	return t.VerifyDataWith(data, roots, intermediates, cms.Current)
}

// VerifyDataWith is VerifyData under algorithm policy p.
func (t *Token) VerifyDataWith(data []byte, roots *x509.CertPool, intermediates []*x509.Certificate, p cms.Policy) error {
	if err := p.CheckDigest(t.HashAlg); err != nil {
		return fmt.Errorf("%w: message imprint: %v", ErrBadSignature, err)
	}
	h := t.HashAlg.New()
	h.Write(data)
	return t.VerifyWith(h.Sum(nil), roots, intermediates, p)
}

// Verify checks that the token time-stamps digest (computed with t.HashAlg)
// and was made by a trusted TSA, under the algorithm policy for new time
// stamps (cms.Current). It is VerifyWith(…, cms.Current).
func (t *Token) Verify(digest []byte, roots *x509.CertPool, intermediates []*x509.Certificate) error {
	return t.VerifyWith(digest, roots, intermediates, cms.Current)
}

// VerifyWith checks that the token time-stamps digest (computed with
// t.HashAlg) and was made by a trusted TSA, accepting the algorithms policy
// p accepts (cms.Current for a token just obtained, cms.AsOf for old
// evidence):
//
//   - the message imprint equals digest, and its hash is accepted by p;
//   - the CMS signature verifies with the signer's certificate, taken from the
//     token or from intermediates (tokens requested without certReq carry
//     none), and the signed attributes bind the content (content type,
//     message digest) and that very certificate (ESS signingCertificate,
//     RFC 3161 §2.4.2, RFC 5035); digest and key are accepted by p;
//   - the certificate is a TSA certificate (RFC 3161 §2.3: critical
//     extendedKeyUsage with only id-kp-timeStamping);
//   - it chains to roots, with every certificate valid at the token's time
//     (not now: a token stays valid after the TSA certificate expires).
//     A nil roots means the system roots.
//
// Revocation is not checked.
func (t *Token) VerifyWith(digest []byte, roots *x509.CertPool, intermediates []*x509.Certificate, p cms.Policy) error {
	if !bytes.Equal(t.HashedMessage, digest) {
		return fmt.Errorf("%w: the token time-stamps %v %s, not %s", ErrImprintMismatch, t.HashAlg, shortHex(t.HashedMessage), shortHex(digest))
	}
	if err := p.CheckDigest(t.HashAlg); err != nil {
		return fmt.Errorf("%w: message imprint: %v", ErrBadSignature, err)
	}
	cert, err := t.checkSignature(intermediates, p)
	if err != nil {
		return err
	}
	if err := CheckTSACertificate(cert); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, c := range slices.Concat(t.Certificates, intermediates) {
		pool.AddCert(c)
	}
	_, err = cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: pool,
		CurrentTime:   t.Time,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping},
	})
	if err != nil {
		return chainError(cert, t.Time, err)
	}
	return nil
}

// Signer returns the certificate that signed the token, looked up among the
// token's certificates and extra, without checking anything else.
func (t *Token) Signer(extra []*x509.Certificate) *x509.Certificate {
	sid := t.sd.Signers[0].SID
	for _, c := range slices.Concat(t.Certificates, extra) {
		if identifies(sid, c) {
			return c
		}
	}
	return nil
}

// identifies reports whether the SignerIdentifier (RFC 5652 §5.3) names c.
func identifies(sid asn1.RawValue, c *x509.Certificate) bool {
	if sid.Class == asn1.ClassContextSpecific && sid.Tag == 0 {
		return len(c.SubjectKeyId) > 0 && bytes.Equal(sid.Bytes, c.SubjectKeyId)
	}
	var ias issuerAndSerial
	if _, err := asn1.Unmarshal(sid.FullBytes, &ias); err != nil || ias.Serial == nil {
		return false
	}
	return ias.Serial.Cmp(c.SerialNumber) == 0 && bytes.Equal(ias.Issuer.FullBytes, c.RawIssuer)
}

// checkSignature verifies the SignerInfo (RFC 5652 §5.4, §5.6) with the one
// CMS verifier (cms.SignedData.VerifySigner) under p, requires the ESS
// binding to the certificate, and returns the signer's certificate.
func (t *Token) checkSignature(extra []*x509.Certificate, p cms.Policy) (*x509.Certificate, error) {
	if t.Signer(extra) == nil {
		if len(t.Certificates) == 0 {
			return nil, fmt.Errorf("%w: the token carries no certificate (requested without certReq?) and none of the %d supplied matches its signer", ErrBadSignature, len(extra))
		}
		return nil, fmt.Errorf("%w: no certificate in the token or supplied matches its signer", ErrBadSignature)
	}
	si, err := t.sd.VerifySigner(0, t.tstInfo, slices.Concat(t.Certificates, extra), p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	// RFC 3161 §2.4.2 / RFC 5035: the signed ESSCertID pins the certificate,
	// so another certificate with the same key cannot be substituted.
	if !si.CertificateBound {
		return nil, fmt.Errorf("%w: no ESS signingCertificate attribute (RFC 3161 §2.4.2 requires one)", ErrBadSignature)
	}
	return si.Certificate, nil
}

// CheckTSACertificate checks what RFC 3161 §2.3 asks of a TSA certificate:
// the extendedKeyUsage extension is present, critical, and holds only
// id-kp-timeStamping; if keyUsage is present it allows digitalSignature or
// nonRepudiation. (OpenSSL enforces the same and otherwise says
// "unsuitable certificate purpose".)
func CheckTSACertificate(c *x509.Certificate) error {
	name := c.Subject.CommonName
	var found bool
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidExtKeyUsage) {
			continue
		}
		found = true
		if !e.Critical {
			return fmt.Errorf("%w: %q has a non-critical extendedKeyUsage; RFC 3161 §2.3 requires it critical", ErrNotTSACertificate, name)
		}
		var ekus []asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(e.Value, &ekus); err != nil {
			return fmt.Errorf("%w: %q has a malformed extendedKeyUsage: %v", ErrNotTSACertificate, name, err)
		}
		if len(ekus) != 1 || !ekus[0].Equal(oidKPTimeStamping) {
			return fmt.Errorf("%w: %q has extendedKeyUsage %v; RFC 3161 §2.3 requires only id-kp-timeStamping (%s)", ErrNotTSACertificate, name, ekus, oidKPTimeStamping)
		}
	}
	if !found {
		return fmt.Errorf("%w: %q has no extendedKeyUsage; RFC 3161 §2.3 requires a critical id-kp-timeStamping", ErrNotTSACertificate, name)
	}
	if c.KeyUsage != 0 && c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return fmt.Errorf("%w: %q keyUsage allows neither digitalSignature nor nonRepudiation", ErrNotTSACertificate, name)
	}
	return nil
}

func chainError(cert *x509.Certificate, at time.Time, err error) error {
	name := cert.Subject.CommonName
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		c := inv.Cert
		return fmt.Errorf("%w: certificate %q was not valid at the token's time %s (valid %s to %s)", ErrUntrustedTSA,
			c.Subject.CommonName, at.Format(time.RFC3339), c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	case errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage:
		return fmt.Errorf("%w: a CA above %q does not allow time stamping: %v", ErrNotTSACertificate, name, err)
	case errors.As(err, &ua):
		return fmt.Errorf("%w: %q (issued by %q) does not chain to a trusted root", ErrUntrustedTSA, name, cert.Issuer.CommonName)
	}
	return fmt.Errorf("%w: %q: %v", ErrUntrustedTSA, name, err)
}

func shortHex(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		s = s[:16] + "…"
	}
	return strings.ToLower(s)
}
