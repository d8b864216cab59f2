//go:build (linux || darwin || freebsd) && (amd64 || arm64)

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Open loads cfg.Module, finds the token labelled cfg.Token, logs in with
// cfg.PIN and finds the private key cfg.Key, with its certificate when the
// token holds one. Close the key when done.
func Open(cfg Config) (*Key, error) {
	if cfg.Module == "" || cfg.Token == "" || cfg.Key == "" {
		return nil, errors.New("pkcs11: give the module, the token label and the key label or id")
	}
	m, err := load(cfg.Module)
	if err != nil {
		return nil, err
	}
	slot, labels, err := m.findToken(cfg.Token)
	if err != nil {
		return nil, err
	}
	if slot < 0 {
		return nil, fmt.Errorf("%w: no token labelled %q in %s (tokens: %s)", ErrNoToken, cfg.Token, cfg.Module, strings.Join(labels, ", "))
	}
	var session uint
	if err := m.call("C_OpenSession", m.openSessionOn(uint(slot), &session)); err != nil {
		return nil, err
	}
	k := &Key{mod: m, session: session}
	fail := func(err error) (*Key, error) {
		m.closeSession(session)
		return nil, err
	}
	if rv := m.login(session, ckuUser, cfg.PIN); rv != ckrOK && rv != ckrUserAlreadyLoggedIn {
		return fail(fmt.Errorf("%w: token %q: %s; check the PIN (a token locks after a few wrong PINs)", ErrLogin, cfg.Token, rvName(rv)))
	}
	keys, err := m.find(session, ckoPrivateKey, cfg.Key)
	if err != nil {
		return fail(err)
	}
	if len(keys) != 1 {
		names, _ := m.labels(session, ckoPrivateKey)
		what := "no"
		if len(keys) > 1 {
			what = fmt.Sprint(len(keys))
		}
		return fail(fmt.Errorf("%w: %s private keys labelled %q or with that id on token %q (keys: %s)", ErrNoKey, what, cfg.Key, cfg.Token, strings.Join(names, ", ")))
	}
	k.handle = keys[0]
	attrs, err := m.attributes(session, k.handle, ckaLabel, ckaID, ckaAlwaysAuthenticate)
	if err != nil {
		return fail(err)
	}
	k.Label, k.ID = string(attrs[0]), attrs[1]
	if len(attrs[2]) == 1 && attrs[2][0] != 0 {
		k.contextPIN = cfg.PIN
	}

	// The certificate with the key's id, and any others (the chain).
	certs, err := m.findAll(session, ckoCertificate)
	if err != nil {
		return fail(err)
	}
	for _, h := range certs {
		a, err := m.attributes(session, h, ckaValue, ckaID)
		if err != nil {
			return fail(err)
		}
		c, err := x509.ParseCertificate(a[0])
		if err != nil {
			continue
		}
		if len(k.ID) > 0 && string(a[1]) == string(k.ID) && k.Cert == nil {
			k.Cert = c
		} else {
			k.Chain = append(k.Chain, c)
		}
	}
	if k.Cert != nil {
		k.pub = k.Cert.PublicKey
	} else if k.pub, err = m.publicKey(session, k.ID); err != nil {
		return fail(err)
	}
	return k, nil
}

// publicKey reads the public key object with the given id.
func (m *module) publicKey(session uint, id []byte) (crypto.PublicKey, error) {
	hs, err := m.find(session, ckoPublicKey, "id:"+hex.EncodeToString(id))
	if err != nil {
		return nil, err
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("%w: the token holds neither a certificate nor a public key with the key's id %x; give the certificate with --cert", ErrNoKey, id)
	}
	a, err := m.attributes(session, hs[0], ckaKeyType)
	if err != nil {
		return nil, err
	}
	switch ulong(a[0]) {
	case ckkRSA:
		a, err := m.attributes(session, hs[0], ckaModulus, ckaPublicExponent)
		if err != nil {
			return nil, err
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(a[0]), E: int(new(big.Int).SetBytes(a[1]).Int64())}, nil
	case ckkEC:
		a, err := m.attributes(session, hs[0], ckaECParams, ckaECPoint)
		if err != nil {
			return nil, err
		}
		var oid asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(a[0], &oid); err != nil {
			return nil, fmt.Errorf("%w: EC parameters: %v", ErrFailed, err)
		}
		var curve elliptic.Curve
		switch {
		case oid.Equal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}):
			curve = elliptic.P256()
		case oid.Equal(asn1.ObjectIdentifier{1, 3, 132, 0, 34}):
			curve = elliptic.P384()
		case oid.Equal(asn1.ObjectIdentifier{1, 3, 132, 0, 35}):
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("pkcs11: EC curve %v is not supported", oid)
		}
		var point []byte
		if _, err := asn1.Unmarshal(a[1], &point); err != nil {
			point = a[1] // some modules give the bare point
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("%w: EC point: %v", ErrFailed, err)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("pkcs11: key type %d is not supported (RSA or EC only)", ulong(a[0]))
}
