package tsa

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/pki"
)

// Tokens made by OpenSSL's TSA (`openssl ts -reply`) go through the one CMS
// model and the one algorithm policy: SHA-2 tokens verify as new time
// stamps; SHA-1 tokens (imprint, signer digest, ESS v1) are refused as new
// and accepted only as old evidence checked as of a time before SHA-1's
// cut-off.
func TestOpenSSLTokensUnderPolicy(t *testing.T) {
	needOpenSSL(t)
	for _, kt := range keyTypes {
		t.Run(string(kt), func(t *testing.T) {
			w := newWorld(t, kt)
			key, err := pki.KeyPEM(w.tsa.Key)
			if err != nil {
				t.Fatal(err)
			}
			keyF := w.write("tsa.key", key)
			w.write("serial", []byte("01\n"))
			data := w.write("data.txt", []byte("checkpoint\n"))
			cases := []struct {
				name                        string
				imprint, signer, essCertAlg string
				current                     bool // accepted for a new time stamp
				asOf2016, asOf2020          bool
			}{
				{"sha256", "sha256", "sha256", "sha256", true, true, true},
				{"sha384-sha512", "sha384", "sha512", "sha256", true, true, true},
				{"sha1", "sha1", "sha1", "sha1", false, true, false},
				{"sha1-imprint-only", "sha1", "sha256", "sha256", false, true, false},
				{"sha1-ess-only", "sha256", "sha256", "sha1", true, true, true}, // a certificate identifier, not a signature digest
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					cfg := w.write("tsa-"+c.name+".cnf", []byte(`[ tsa ]
default_tsa = tsa1
[ tsa1 ]
serial = `+w.dir+`/serial
signer_cert = `+w.tsaPEM+`
signer_key = `+keyF+`
signer_digest = `+c.signer+`
default_policy = 2.999.3161.1
digests = sha1, sha256, sha384, sha512
ess_cert_id_alg = `+c.essCertAlg+`
ess_cert_id_chain = no
accuracy = secs:1
`))
					q := w.dir + "/" + c.name + ".tsq"
					r := w.dir + "/" + c.name + ".tsr"
					mustOpenSSL(t, w.dir, "ts", "-query", "-data", data, "-"+c.imprint, "-cert", "-out", q)
					mustOpenSSL(t, w.dir, "ts", "-reply", "-config", cfg, "-queryfile", q, "-out", r)
					resp, err := os.ReadFile(r)
					if err != nil {
						t.Fatal(err)
					}
					tok, err := ParseResponse(resp)
					if err != nil {
						t.Fatal(err)
					}
					check := func(p cms.Policy, want bool) {
						t.Helper()
						err := tok.VerifyDataWith([]byte("checkpoint\n"), w.roots, nil, p)
						if (err == nil) != want {
							t.Errorf("%v: %v, want ok=%v", p, err, want)
						}
						if err != nil && (!errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "SHA-1")) {
							t.Errorf("%v: refusal %v does not name SHA-1", p, err)
						}
					}
					check(cms.Current, c.current)
					check(cms.AsOf(time.Date(2016, 6, 1, 0, 0, 0, 0, time.UTC)), c.asOf2016)
					check(cms.AsOf(time.Date(2020, 6, 1, 0, 0, 0, 0, time.UTC)), c.asOf2020)
					if err := tok.VerifyData([]byte("checkpoint\n"), w.roots, nil); (err == nil) != c.current {
						t.Errorf("VerifyData (the policy for new time stamps): %v", err)
					}
				})
			}
		})
	}
}
