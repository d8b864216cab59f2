package demo

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kephs/kep/pkcs11/softhsm"
	"github.com/kephs/kep/pki"
)

// ESealInfo is a company's e-seal (mali mühür) in a demo world: a P-384
// certificate from the development CA bound to the company's VKN, its key
// on a SoftHSM2 token in the world's directory when softhsm2 and opensc are
// installed, else in a PEM file (docs/signing.md).
type ESealInfo struct {
	Storage     string     `json:"storage"`     // "softhsm" or "pem"
	Certificate string     `json:"certificate"` // PEM, the CA after it
	PrivateKey  string     `json:"private_key,omitempty"`
	PKCS11      *TokenInfo `json:"pkcs11,omitempty"`
	Why         string     `json:"why_pem,omitempty"` // why not on SoftHSM
	cert        *x509.Certificate
}

// TokenInfo says where a key on a PKCS#11 token is: what `kep send
// --pkcs11-module … --pkcs11-token … --pkcs11-key …` and `kep signer` take,
// with SOFTHSM2_CONF set to Conf.
type TokenInfo struct {
	Module string `json:"module"`
	Conf   string `json:"softhsm2_conf"`
	Token  string `json:"token"`
	Key    string `json:"key"`
	PIN    string `json:"pin"`
}

// issueESeal makes the company's e-seal under dir/eseal.
func issueESeal(esign *pki.CA, dir, vkn, org, email string) (*ESealInfo, error) {
	subj, err := pki.ESealSubject(vkn, org, pki.ESealOrgID)
	if err != nil {
		return nil, err
	}
	is, err := esign.IssueESeal(subj, email, pki.ECDSAP384, nil)
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "eseal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	e := &ESealInfo{Certificate: filepath.Join(dir, "eseal.crt")}
	if err := os.WriteFile(e.Certificate, pki.CertPEM(append([]*x509.Certificate{is.Cert}, is.Chain...)...), 0o644); err != nil {
		return nil, err
	}
	why := softhsm.Available()
	if why == nil {
		// The key is made here and imported, as a CA's key ceremony would
		// put it on the HSM; the token then holds the only copy.
		tok := &TokenInfo{Module: softhsm.Module, Token: "deniz-eseal", Key: "eseal", PIN: "1234"}
		var d *softhsm.Dir
		if d, why = softhsm.Open(filepath.Join(dir, "softhsm")); why == nil {
			tok.Conf = d.Conf
			if why = d.InitToken(tok.Token, "so-"+tok.PIN, tok.PIN); why == nil {
				why = d.ImportKey(tok.Token, tok.PIN, is.Key, is.Cert, tok.Key, []byte{0x5e})
			}
		}
		if why == nil {
			e.Storage, e.PKCS11 = "softhsm", tok
			return e, nil
		}
	}
	e.Storage, e.Why = "pem", fmt.Sprint(why)
	e.PrivateKey = filepath.Join(dir, "eseal.key")
	key, err := pki.KeyPEM(is.Key)
	if err != nil {
		return nil, err
	}
	return e, os.WriteFile(e.PrivateKey, key, 0o600)
}
