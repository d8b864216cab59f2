// Package pkcs11 is in charge of signing with a key that never leaves its
// token: a smartcard holding a person's qualified e-signature (NES), or an
// HSM or smartcard holding a company's e-seal (mali mühür). It loads the
// token vendor's PKCS#11 module (a shared library, e.g. SoftHSM2's
// /usr/lib/softhsm/libsofthsm2.so or OpenSC's opensc-pkcs11.so) at run time
// without cgo, through github.com/ebitengine/purego, finds the key by label
// or id, and exposes it as a crypto.Signer over C_Sign, so that package cms
// and package client sign with it as with a key in a file.
//
// Mechanisms (PKCS#11 v2.40 base specification §2.1.6, §2.1.10, §2.3.6):
// RSA PKCS#1 v1.5 is CKM_RSA_PKCS over a DigestInfo built here (RFC 8017
// §9.2), RSA-PSS is CKM_RSA_PKCS_PSS over the digest, and ECDSA is CKM_ECDSA
// over the digest, whose raw r‖s answer is re-encoded as the ASN.1
// Ecdsa-Sig-Value that CMS carries (RFC 5753 §7.2).
//
// The PIN is given by the caller (from the environment or a prompt: see
// cmd/kep); it is never logged.
package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
)

// Config says where the key is.
type Config struct {
	// Module is the path of the token's PKCS#11 module.
	Module string
	// Token is the token label (CKA token info label), as
	// `pkcs11-tool --list-slots` shows it.
	Token string
	// Key is the key's CKA_LABEL, or its CKA_ID in hex (optionally "id:"
	// before it).
	Key string
	// PIN is the user PIN of the token.
	PIN string
}

// Errors. Each error returned wraps one of these and says what to do.
var (
	ErrModule   = errors.New("pkcs11: the module cannot be loaded")
	ErrNoToken  = errors.New("pkcs11: no such token")
	ErrLogin    = errors.New("pkcs11: login refused")
	ErrNoKey    = errors.New("pkcs11: no such key")
	ErrMismatch = errors.New("pkcs11: the key does not belong to the certificate")
	ErrFailed   = errors.New("pkcs11: the token refused the operation")
)

// Key is a private key on a token, usable as a crypto.Signer. Its methods
// are safe for concurrent use: C_Sign calls on its session are serialised.
type Key struct {
	// Cert is the certificate stored on the token beside the key (same
	// CKA_ID), nil when the token holds none.
	Cert *x509.Certificate
	// Chain is every other certificate on the token, for callers that want
	// to send the issuing CA along.
	Chain []*x509.Certificate
	// Label and ID name the key on the token.
	Label string
	ID    []byte

	mu      sync.Mutex
	mod     *module
	session uint
	handle  uint
	pub     crypto.PublicKey
	closed  bool
	// contextPIN is kept only for a key with CKA_ALWAYS_AUTHENTICATE, which
	// needs the PIN before each signature.
	contextPIN string
}

// Public returns the key's public half.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Close ends the key's session on the token.
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	// No C_Logout: the login belongs to the token, shared by every session
	// of this process on it (PKCS#11 v2.40 §5.6), and ends when the last
	// session closes.
	return k.mod.call("C_CloseSession", k.mod.closeSession(k.session))
}

// Sign signs digest, which is the hash of the message under opts.HashFunc()
// (crypto.Signer). An *rsa.PSSOptions selects RSA-PSS with its salt length
// (PSSSaltLengthAuto and EqualsHash both mean the hash length, as most tokens
// require); any other options with an RSA key select PKCS#1 v1.5.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	if h != 0 && len(digest) != h.Size() {
		return nil, fmt.Errorf("pkcs11: the digest is %d bytes, %v needs %d", len(digest), h, h.Size())
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			mech, mgf, ok := pssHash(h)
			if !ok {
				return nil, fmt.Errorf("pkcs11: RSA-PSS with %v is not supported", h)
			}
			salt := pss.SaltLength
			if salt == rsa.PSSSaltLengthAuto || salt == rsa.PSSSaltLengthEqualsHash {
				salt = h.Size()
			}
			params := pssParams{hashAlg: mech, mgf: mgf, sLen: uint(salt)}
			return k.sign(ckmRSAPKCSPSS, paramsBytes(&params), digest)
		}
		prefix, ok := digestInfoPrefix[h]
		if !ok {
			return nil, fmt.Errorf("pkcs11: RSA PKCS#1 v1.5 with %v is not supported", h)
		}
		return k.sign(ckmRSAPKCS, nil, append(append([]byte(nil), prefix...), digest...))
	case *ecdsa.PublicKey:
		raw, err := k.sign(ckmECDSA, nil, digest)
		if err != nil {
			return nil, err
		}
		n := (pub.Curve.Params().BitSize + 7) / 8
		if len(raw) != 2*n {
			return nil, fmt.Errorf("%w: ECDSA signature of %d bytes, want %d (r‖s)", ErrFailed, len(raw), 2*n)
		}
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:n]), new(big.Int).SetBytes(raw[n:])})
	}
	return nil, fmt.Errorf("pkcs11: key type %T is not supported", k.pub)
}

func (k *Key) sign(mech uint, param []byte, data []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, errors.New("pkcs11: the key's session is closed")
	}
	return k.mod.sign(k.session, k.handle, mech, param, data, k.contextPIN)
}

// digestInfoPrefix is the DER of DigestInfo up to the digest (RFC 8017 §9.2
// note 1).
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

func pssHash(h crypto.Hash) (mech, mgf uint, ok bool) {
	switch h {
	case crypto.SHA256:
		return ckmSHA256, ckgMGF1SHA256, true
	case crypto.SHA384:
		return ckmSHA384, ckgMGF1SHA384, true
	case crypto.SHA512:
		return ckmSHA512, ckgMGF1SHA512, true
	}
	return 0, 0, false
}

// ulong decodes a CK_ULONG attribute value (host byte order, which is
// little-endian on every platform this package builds for).
func ulong(b []byte) uint {
	var v uint
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint(b[i])
	}
	return v
}

// keyTemplate is the search template for cfg.Key: a label, or an id in hex.
func keyTemplate(key string) (label string, id []byte, byID bool) {
	if s, ok := strings.CutPrefix(key, "id:"); ok {
		b, err := hex.DecodeString(s)
		return key, b, err == nil
	}
	return key, nil, false
}

// CheckCertificate reports whether cert holds k's public key.
func (k *Key) CheckCertificate(cert *x509.Certificate) error {
	pub, ok := k.pub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("%w: the key %q on the token is not the key of the certificate for %q", ErrMismatch, k.Label, cert.Subject.CommonName)
	}
	return nil
}
