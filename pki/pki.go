// Package pki is in charge of keys and certificates as files: loading and
// writing PEM and PKCS#12, and issuing the development certificates that
// `kep init`, `kep demo` and the tests use — an e-signature CA with signer
// certificates bound to a TCKN, a time-stamping authority certificate and the
// provider's own certificates (evidence signing, envelope signing, TLS).
//
// Nothing here decides whether a certificate is trusted; that is the job of
// package identity (trust store, certificate ↔ identity binding).
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// KeyType selects the algorithm of a generated key.
type KeyType string

const (
	ECDSAP256 KeyType = "ecdsa-p256"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	// ECDSAP384 is what Kamu SM issues e-seal (mali mühür) keys on since 2025.
	ECDSAP384 KeyType = "ecdsa-p384"
)

// GenerateKey makes a fresh private key of type t.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case "", ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fmt.Errorf("pki: unknown key type %q (want %s, %s, %s or %s)", t, ECDSAP256, ECDSAP384, RSA2048, RSA3072)
}

// Issued is a certificate with its private key and the chain above it
// (issuer first, root last; empty for a self-signed root).
type Issued struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// CA is a certificate authority able to issue certificates.
type CA struct {
	Issued
	// CRLURL and OCSPURL, when set, are written into the leaf certificates
	// the CA issues: the CRL distribution point (RFC 5280 §4.2.1.13) and the
	// OCSP responder in the authority information access extension
	// (§4.2.2.1), as ETSI EN 319 412-2 §4.3.11 requires of qualified
	// certificates. DevRevocationServer sets them.
	CRLURL, OCSPURL string

	rev *revocations // the CA's revoked certificates (revocation.go)
}

// Object identifiers used in the certificates we issue.
var (
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidEKUTimeStamping  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
	oidSerialNumberAttr = asn1.ObjectIdentifier{2, 5, 4, 5}
)

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func subjectKeyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha1.Sum(der)
	return sum[:]
}

// NewRootCA creates a self-signed CA valid from now-1h for the given duration.
func NewRootCA(name pkix.Name, keyType KeyType, validity time.Duration) (*CA, error) {
	key, err := GenerateKey(keyType)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               name,
		NotBefore:             now,
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          subjectKeyID(key.Public()),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create root CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Issued: Issued{Cert: cert, Key: key}}, nil
}

// Template describes a leaf certificate to issue.
type Template struct {
	Subject  pkix.Name
	KeyType  KeyType
	Validity time.Duration // default one year
	// NotBefore overrides the start of validity (default now-1h); tests use it
	// to make expired or not-yet-valid certificates.
	NotBefore   time.Time
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
	// CriticalTimeStamping marks the certificate for time stamping only, with
	// the extendedKeyUsage extension critical as RFC 3161 §2.3 requires.
	CriticalTimeStamping bool
	DNSNames             []string
	IPAddresses          []net.IP
	EmailAddresses       []string
	// Key, when set, is used instead of generating one. Only its public half
	// is used: it may be a key on a token (package pkcs11).
	Key crypto.Signer
	// ExtraExtensions are added as they are (e.g. qcStatements).
	ExtraExtensions []pkix.Extension
}

// Issue signs a certificate described by t.
func (ca *CA) Issue(t Template) (*Issued, error) {
	key := t.Key
	if key == nil {
		var err error
		if key, err = GenerateKey(t.KeyType); err != nil {
			return nil, err
		}
	}
	nb := t.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	nb = nb.UTC().Truncate(time.Second)
	validity := t.Validity
	if validity == 0 {
		validity = 365 * 24 * time.Hour
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               t.Subject,
		NotBefore:             nb,
		NotAfter:              nb.Add(validity),
		KeyUsage:              t.KeyUsage,
		ExtKeyUsage:           t.ExtKeyUsage,
		BasicConstraintsValid: true,
		DNSNames:              t.DNSNames,
		IPAddresses:           t.IPAddresses,
		EmailAddresses:        t.EmailAddresses,
		SubjectKeyId:          subjectKeyID(key.Public()),
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
		ExtraExtensions:       t.ExtraExtensions,
	}
	if ca.CRLURL != "" {
		tmpl.CRLDistributionPoints = []string{ca.CRLURL}
	}
	if ca.OCSPURL != "" {
		tmpl.OCSPServer = []string{ca.OCSPURL}
	}
	if t.CriticalTimeStamping {
		val, err := asn1.Marshal([]asn1.ObjectIdentifier{oidEKUTimeStamping})
		if err != nil {
			return nil, err
		}
		tmpl.ExtKeyUsage = nil
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidExtKeyUsage, Critical: true, Value: val})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue %q: %w", t.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	chain := append([]*x509.Certificate{ca.Cert}, ca.Chain...)
	return &Issued{Cert: cert, Key: key, Chain: chain}, nil
}

// SignerSubject is the subject of a Turkish qualified e-signature certificate
// (nitelikli elektronik sertifika): the serialNumber attribute carries the
// holder's TCKN. Form chooses how: "" (bare digits) or "TCKN" prefix
// ("TCKN12345678901"), the forms seen in the wild.
func SignerSubject(tckn, givenName, surname, prefix string) pkix.Name {
	return pkix.Name{
		Country:      []string{"TR"},
		CommonName:   givenName + " " + surname,
		SerialNumber: prefix + tckn,
		ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: asn1.ObjectIdentifier{2, 5, 4, 42}, Value: givenName},
			{Type: asn1.ObjectIdentifier{2, 5, 4, 4}, Value: surname},
		},
	}
}

// IssueSigner issues an e-signature (S/MIME) certificate for a person.
func (ca *CA) IssueSigner(subject pkix.Name, email string, keyType KeyType) (*Issued, error) {
	var emails []string
	if email != "" {
		emails = []string{email}
	}
	return ca.Issue(Template{
		Subject:        subject,
		KeyType:        keyType,
		Validity:       2 * 365 * 24 * time.Hour,
		KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: emails,
	})
}

// IssueTSA issues a time-stamping authority certificate (critical EKU).
func (ca *CA) IssueTSA(commonName string, keyType KeyType) (*Issued, error) {
	return ca.Issue(Template{
		Subject:              pkix.Name{Country: []string{"TR"}, Organization: []string{"KEP Development"}, CommonName: commonName},
		KeyType:              keyType,
		Validity:             10 * 365 * 24 * time.Hour,
		KeyUsage:             x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		CriticalTimeStamping: true,
	})
}

// IssueProvider issues a provider certificate used for evidence signing,
// envelope signing and as a TLS server and client certificate.
func (ca *CA) IssueProvider(commonName string, dnsNames []string, keyType KeyType) (*Issued, error) {
	return ca.Issue(Template{
		Subject:     pkix.Name{Country: []string{"TR"}, Organization: []string{commonName}, CommonName: commonName},
		KeyType:     keyType,
		Validity:    5 * 365 * 24 * time.Hour,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dnsNames,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		EmailAddresses: func() []string {
			if len(dnsNames) == 0 {
				return nil
			}
			return []string{"postmaster@" + dnsNames[0]}
		}(),
	})
}

// CertPEM encodes certificates as PEM blocks.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a private key as an unencrypted PKCS#8 PEM block.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// PKCS12 encodes the key, certificate and chain as a PKCS#12 file protected by
// password, in the modern encoding (AES-256, PBKDF2) that OpenSSL 3 reads.
func (is *Issued) PKCS12(password string) ([]byte, error) {
	return pkcs12.Modern.Encode(is.Key, is.Cert, is.Chain, password)
}

// WriteFiles writes base.crt (certificate then chain), base.key (PKCS#8) and,
// when p12Password is not empty, base.p12. It returns the paths written.
func (is *Issued) WriteFiles(base, p12Password string) (crt, key, p12 string, err error) {
	if err = os.MkdirAll(filepath.Dir(base), 0o700); err != nil {
		return
	}
	crt, key = base+".crt", base+".key"
	if err = os.WriteFile(crt, CertPEM(append([]*x509.Certificate{is.Cert}, is.Chain...)...), 0o644); err != nil {
		return
	}
	kp, err := KeyPEM(is.Key)
	if err != nil {
		return
	}
	if err = os.WriteFile(key, kp, 0o600); err != nil {
		return
	}
	if p12Password != "" {
		p12 = base + ".p12"
		var b []byte
		if b, err = is.PKCS12(p12Password); err != nil {
			return
		}
		err = os.WriteFile(p12, b, 0o600)
	}
	return
}

// ParseCertsPEM reads every CERTIFICATE block in data.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: bad certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("pki: no CERTIFICATE block found")
	}
	return certs, nil
}

// LoadCertsPEM reads every certificate in a PEM file.
func LoadCertsPEM(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := ParseCertsPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

// ParseKeyPEM reads a private key in PKCS#8, PKCS#1 (RSA) or SEC 1 (EC) PEM.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("pki: no private key block found")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("pki: encrypted PEM keys are not supported; use PKCS#12 with a password")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pki: bad %s: %w", b.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("pki: key type %T cannot sign", k)
		}
		return s, nil
	}
}

// LoadKeyPEM reads a private key file.
func LoadKeyPEM(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadPKCS12 reads a PKCS#12 file: key, leaf certificate and chain.
func LoadPKCS12(path, password string) (*Issued, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, cert, chain, err := pkcs12.DecodeChain(b, password)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", path, key)
	}
	return &Issued{Cert: cert, Key: s, Chain: chain}, nil
}

// LoadIssued reads a certificate file (leaf first, then chain) and its key.
func LoadIssued(certPath, keyPath string) (*Issued, error) {
	certs, err := LoadCertsPEM(certPath)
	if err != nil {
		return nil, err
	}
	key, err := LoadKeyPEM(keyPath)
	if err != nil {
		return nil, err
	}
	return &Issued{Cert: certs[0], Key: key, Chain: certs[1:]}, nil
}

// LoadCA reads a CA certificate and key.
func LoadCA(certPath, keyPath string) (*CA, error) {
	is, err := LoadIssued(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	if !is.Cert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", certPath)
	}
	return &CA{Issued: *is}, nil
}

// SerialNumberAttr is the OID of the X.520 serialNumber attribute.
var SerialNumberAttr = oidSerialNumberAttr
