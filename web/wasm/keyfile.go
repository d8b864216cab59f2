package main

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/pki"
)

// decodeKeyFile reads the key file a user picked: PKCS#12 (.p12, .pfx, as
// `kep demo` and e-signature providers hand out) or PEM holding the private
// key (PKCS#8, PKCS#1, SEC 1, or PKCS#8 encrypted with PBES2, RFC 8018 §6.2)
// beside the certificate and its chain. The certificate is the one whose
// public key is the key's, wherever it stands in the file; the others are
// the chain. It refuses a certificate that is not valid at now.
func decodeKeyFile(data []byte, password string, now time.Time) (*client.Signer, error) {
	var key crypto.Signer
	var certs []*x509.Certificate
	var err error
	if bytes.Contains(data, []byte("-----BEGIN ")) {
		key, certs, err = decodePEM(data, password)
	} else {
		key, certs, err = decodePKCS12(data, password)
	}
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(certs, func(c *x509.Certificate) bool { return samePublicKey(key.Public(), c.PublicKey) })
	if i < 0 {
		return nil, refusal(codeKeyMismatch,
			"The key file's private key does not belong to any certificate in it. Pick the file that holds your key together with your own certificate.",
			"Dosyadaki özel anahtar, dosyadaki hiçbir sertifikaya ait değil. Anahtarınızı kendi sertifikanızla birlikte içeren dosyayı seçin.")
	}
	cert := certs[i]
	chain := slices.Delete(slices.Clone(certs), i, i+1)
	name := cert.Subject.CommonName
	switch {
	case now.After(cert.NotAfter):
		return nil, refusal(codeExpired,
			fmt.Sprintf("The certificate of %s expired on %s. Renew it with your e-signature provider; a message cannot be signed with it.", name, cert.NotAfter.UTC().Format("2006-01-02")),
			fmt.Sprintf("%s adına sertifikanın süresi %s tarihinde doldu. E-imza sağlayıcınızdan yenileyin; bu sertifikayla ileti imzalanamaz.", name, cert.NotAfter.UTC().Format("02.01.2006")))
	case now.Before(cert.NotBefore):
		return nil, refusal(codeNotYetValid,
			fmt.Sprintf("The certificate of %s is valid only from %s. Check this computer's date and time.", name, cert.NotBefore.UTC().Format("2006-01-02 15:04 MST")),
			fmt.Sprintf("%s adına sertifika ancak %s tarihinden itibaren geçerli. Bu bilgisayarın tarih ve saatini denetleyin.", name, cert.NotBefore.UTC().Format("02.01.2006 15:04 MST")))
	}
	return &client.Signer{Key: key, Cert: cert, Chain: chain}, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func wrongPassword(kind string) error {
	return refusal(codeWrongPassword,
		fmt.Sprintf("The password does not open this %s file. Type the password you were given with the file (letters are case-sensitive).", kind),
		fmt.Sprintf("Parola bu %s dosyasını açmıyor. Dosyayla birlikte verilen parolayı yazın (büyük/küçük harf fark eder).", kind))
}

func unreadable(detail string) error {
	return refusal(codeUnreadable,
		"The file is neither a PKCS#12 (.p12, .pfx) nor a PEM key file ("+detail+"). Pick the file your e-signature provider gave you.",
		"Dosya bir PKCS#12 (.p12, .pfx) ya da PEM anahtar dosyası değil ("+detail+"). E-imza sağlayıcınızın verdiği dosyayı seçin.")
}

func decodePKCS12(data []byte, password string) (crypto.Signer, []*x509.Certificate, error) {
	k, cert, chain, err := pkcs12.DecodeChain(data, password)
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword):
		return nil, nil, wrongPassword("PKCS#12")
	case err != nil && strings.Contains(err.Error(), "private key missing"):
		return nil, nil, noKey()
	case err != nil && strings.Contains(err.Error(), "certificate missing"):
		return nil, nil, noCertificate()
	case err != nil:
		return nil, nil, unreadable(err.Error())
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, unreadable(fmt.Sprintf("a %T key cannot sign", k))
	}
	return key, append([]*x509.Certificate{cert}, chain...), nil
}

func noKey() error {
	return refusal(codeNoKey,
		"The file holds no private key, only certificates. Pick the file that holds your private key (a .p12 or .pfx file, or a PEM file with a PRIVATE KEY block).",
		"Dosyada özel anahtar yok, yalnızca sertifika var. Özel anahtarınızı içeren dosyayı seçin (.p12 ya da .pfx dosyası, ya da PRIVATE KEY bölümü olan bir PEM dosyası).")
}

func noCertificate() error {
	return refusal(codeNoCertificate,
		"The file holds a private key but no certificate. Add your certificate (and its chain) to the PEM file, or pick your .p12 or .pfx file.",
		"Dosyada özel anahtar var ama sertifika yok. Sertifikanızı (ve zincirini) PEM dosyasına ekleyin ya da .p12 veya .pfx dosyanızı seçin.")
}

// decodePEM reads the key with package pki, except an encrypted PKCS#8 key,
// which pki leaves to PKCS#12 and which is decrypted here.
func decodePEM(data []byte, password string) (crypto.Signer, []*x509.Certificate, error) {
	var key crypto.Signer
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" {
			k, err := decryptPKCS8(b.Bytes, password)
			if err != nil {
				return nil, nil, err
			}
			key = k
			break
		}
		if _, encrypted := b.Headers["DEK-Info"]; encrypted {
			return nil, nil, refusal(codeUnreadable,
				"The key is encrypted in OpenSSL's legacy PEM format, which is not supported. Convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`, or use your .p12 file.",
				"Anahtar OpenSSL'in eski PEM biçiminde şifrelenmiş; bu biçim desteklenmiyor. `openssl pkcs8 -topk8 -v2 aes-256-cbc` ile dönüştürün ya da .p12 dosyanızı kullanın.")
		}
	}
	if key == nil {
		k, err := pki.ParseKeyPEM(data)
		if err != nil {
			if strings.Contains(err.Error(), "no private key block") {
				return nil, nil, noKey()
			}
			return nil, nil, unreadable(err.Error())
		}
		key = k
	}
	certs, err := pki.ParseCertsPEM(data)
	if err != nil {
		return nil, nil, noCertificate()
	}
	return key, certs, nil
}

// Object identifiers of PBES2 (RFC 8018 §A.2–§A.4, §B.1.2, §B.2.5) and of the
// AES-CBC modes (NIST CSOR).
var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// encryptedPrivateKeyInfo is RFC 5958 §3.
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

// pbes2Params is RFC 8018 §A.4.
type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

// pbkdf2Params is RFC 8018 §A.2 (the salt as an octet string, the only
// choice it specifies).
type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// decryptPKCS8 decrypts an ENCRYPTED PRIVATE KEY block as OpenSSL 3 writes
// it (`openssl pkcs8 -topk8 -v2 aes-256-cbc`, `openssl genpkey -aes256`):
// PBES2 with PBKDF2 and AES-CBC.
func decryptPKCS8(der []byte, password string) (crypto.Signer, error) {
	unsupported := func(what string) error {
		return refusal(codeUnreadable,
			"The key is encrypted with "+what+", which is not supported. Convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`, or use your .p12 file.",
			"Anahtar desteklenmeyen bir yöntemle ("+what+") şifrelenmiş. `openssl pkcs8 -topk8 -v2 aes-256-cbc` ile dönüştürün ya da .p12 dosyanızı kullanın.")
	}
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, unreadable("bad ENCRYPTED PRIVATE KEY: " + err.Error())
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, unsupported("algorithm " + info.Algorithm.Algorithm.String())
	}
	var p pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &p); err != nil {
		return nil, unreadable("bad PBES2 parameters: " + err.Error())
	}
	if !p.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, unsupported("key derivation " + p.KeyDerivationFunc.Algorithm.String())
	}
	var kdf pbkdf2Params
	if _, err := asn1.Unmarshal(p.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil {
		return nil, unreadable("bad PBKDF2 parameters: " + err.Error())
	}
	var prf func() hash.Hash
	switch a := kdf.PRF.Algorithm; {
	case len(a) == 0 || a.Equal(oidHMACWithSHA1): // the default, RFC 8018 §A.2
		prf = sha1.New
	case a.Equal(oidHMACWithSHA256):
		prf = sha256.New
	case a.Equal(oidHMACWithSHA512):
		prf = sha512.New
	default:
		return nil, unsupported("PBKDF2 PRF " + a.String())
	}
	var keyLen int
	switch a := p.EncryptionScheme.Algorithm; {
	case a.Equal(oidAES128CBC):
		keyLen = 16
	case a.Equal(oidAES192CBC):
		keyLen = 24
	case a.Equal(oidAES256CBC):
		keyLen = 32
	default:
		return nil, unsupported("cipher " + a.String())
	}
	var iv []byte
	if _, err := asn1.Unmarshal(p.EncryptionScheme.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, unreadable("bad AES-CBC IV")
	}
	if kdf.IterationCount < 1 || kdf.IterationCount > 10_000_000 {
		return nil, unreadable(fmt.Sprintf("PBKDF2 iteration count %d", kdf.IterationCount))
	}
	ct := info.EncryptedData
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, unreadable("encrypted key is not whole AES blocks")
	}
	k, err := pbkdf2.Key(prf, password, kdf.Salt, kdf.IterationCount, keyLen)
	if err != nil {
		return nil, unsupported(err.Error())
	}
	block, _ := aes.NewCipher(k)
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	// A wrong password shows as bad padding or as a plaintext that is not
	// PKCS#8; both say the same to the user.
	n := int(pt[len(pt)-1])
	if n == 0 || n > aes.BlockSize || !bytes.Equal(pt[len(pt)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, wrongPassword("PEM")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(pt[:len(pt)-n])
	clear(pt)
	if err != nil {
		return nil, wrongPassword("PEM")
	}
	s, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, unreadable(fmt.Sprintf("a %T key cannot sign", parsed))
	}
	return s, nil
}
