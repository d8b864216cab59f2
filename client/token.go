package client

import (
	"crypto/x509"
	"fmt"

	"github.com/kephs/kep/pkcs11"
)

// TokenSigner is a Signer whose key is on a PKCS#11 token: a smartcard
// holding the user's qualified e-signature, or a smartcard or HSM holding a
// company's e-seal. The certificate is the one stored beside the key on the
// token, unless cert is given (tokens that hold only the key); chain is
// sent along with it (issuer first), and defaults to the token's other
// certificates. Close the returned key when done signing.
func TokenSigner(cfg pkcs11.Config, cert *x509.Certificate, chain []*x509.Certificate) (*Signer, *pkcs11.Key, error) {
	k, err := pkcs11.Open(cfg)
	if err != nil {
		return nil, nil, err
	}
	if cert == nil {
		cert = k.Cert
		if chain == nil {
			chain = k.Chain
		}
	}
	if cert == nil {
		k.Close()
		return nil, nil, fmt.Errorf("pkcs11: token %q holds no certificate beside the key %q; give the certificate as a file", cfg.Token, cfg.Key)
	}
	if err := k.CheckCertificate(cert); err != nil {
		k.Close()
		return nil, nil, err
	}
	return &Signer{Key: k, Cert: cert, Chain: chain}, k, nil
}
