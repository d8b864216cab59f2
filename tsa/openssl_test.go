package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pki"
)

var keyTypes = []pki.KeyType{pki.ECDSAP256, pki.RSA2048}

// Our client against our server on a socket; the token then goes through
// `openssl ts -verify`, as a response and as a bare token.
func TestClientTokenVerifiesInOpenSSL(t *testing.T) {
	needOpenSSL(t)
	for _, kt := range keyTypes {
		t.Run(string(kt), func(t *testing.T) {
			w := newWorld(t, kt)
			data := []byte("Sayın Ayşe Yılmaz, tebligat ektedir.\r\n")
			tok, err := w.client().TimestampData(context.Background(), data)
			if err != nil {
				t.Fatal(err)
			}
			if err := tok.VerifyData(data, w.roots, nil); err != nil {
				t.Fatalf("Go verify: %v", err)
			}
			dataF := w.write("data.eml", data)
			resp := w.write("resp.tsr", tok.ResponseDER())
			raw := w.write("token.der", tok.Raw)

			for name, args := range map[string][]string{
				"response":         {"-data", dataF, "-in", resp, "-CAfile", w.caPEM, "-untrusted", w.tsaPEM},
				"response-no-untr": {"-data", dataF, "-in", resp, "-CAfile", w.caPEM},
				"token_in":         {"-data", dataF, "-in", raw, "-token_in", "-CAfile", w.caPEM, "-untrusted", w.tsaPEM},
				"digest":           {"-digest", hexOf(tok.HashedMessage), "-in", resp, "-CAfile", w.caPEM},
				"wrapped-from-raw": {"-data", dataF, "-in", w.write("wrapped.tsr", mustParse(t, tok.Raw).ResponseDER()), "-CAfile", w.caPEM},
			} {
				if ok, out := opensslVerifyOK(t, w.dir, args...); !ok {
					t.Errorf("%s: openssl rejects our token:\n%s", name, out)
				}
			}

			text := mustOpenSSL(t, w.dir, "ts", "-reply", "-in", resp, "-text")
			for _, want := range []string{"Status: Granted.", "Policy OID: 2.999.3161.1", "Hash Algorithm: sha256",
				"Accuracy: 0x01 seconds", "TSA: DirName:/C=TR/O=KEP Development/CN=KEP Dev TSA", "Nonce: 0x"} {
				if !strings.Contains(text, want) {
					t.Errorf("openssl ts -reply -text lacks %q:\n%s", want, text)
				}
			}

			// Tampered data: both sides must say no.
			tampered := w.write("tampered.eml", append(bytes.Clone(data), '!'))
			if ok, out := opensslVerifyOK(t, w.dir, "-data", tampered, "-in", resp, "-CAfile", w.caPEM); ok {
				t.Errorf("openssl accepts tampered data:\n%s", out)
			} else if !strings.Contains(out, "message imprint mismatch") {
				t.Logf("openssl on tampered data:\n%s", out)
			}
			if err := tok.VerifyData(append(bytes.Clone(data), '!'), w.roots, nil); !errors.Is(err, ErrImprintMismatch) {
				t.Errorf("Go on tampered data: %v, want ErrImprintMismatch", err)
			}
		})
	}
}

func mustParse(t testing.TB, der []byte) *Token {
	t.Helper()
	tok, err := ParseToken(der)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// OpenSSL's queries, posted to our server over HTTP (Go's client and curl),
// and the replies checked by OpenSSL against the query.
func TestOpenSSLQueryAgainstServer(t *testing.T) {
	needOpenSSL(t)
	for _, kt := range keyTypes {
		t.Run(string(kt), func(t *testing.T) {
			w := newWorld(t, kt)
			dataF := w.write("data", []byte("delil paketi"))
			for _, q := range []struct {
				name string
				args []string
			}{
				{"sha256-cert", []string{"-sha256", "-cert"}},
				{"sha384-cert", []string{"-sha384", "-cert"}},
				{"sha512-cert", []string{"-sha512", "-cert"}},
				{"sha256-nocert", []string{"-sha256"}},
				{"sha256-no_nonce", []string{"-sha256", "-cert", "-no_nonce"}},
				{"sha256-policy", []string{"-sha256", "-cert", "-tspolicy", testPolicy.String()}},
			} {
				t.Run(q.name, func(t *testing.T) {
					tsq := filepath.Join(w.dir, q.name+".tsq")
					mustOpenSSL(t, w.dir, append([]string{"ts", "-query", "-data", dataF, "-out", tsq}, q.args...)...)
					query, _ := os.ReadFile(tsq)
					reply := postQuery(t, w.http.URL, query)
					tsr := w.write(q.name+".tsr", reply)

					text := mustOpenSSL(t, w.dir, "ts", "-reply", "-in", tsr, "-text")
					if !strings.Contains(text, "Status: Granted.") {
						t.Fatalf("not granted:\n%s", text)
					}
					if ok, out := opensslVerifyOK(t, w.dir, "-queryfile", tsq, "-in", tsr, "-CAfile", w.caPEM, "-untrusted", w.tsaPEM); !ok {
						t.Errorf("openssl ts -verify -queryfile rejects:\n%s", out)
					}
					if ok, out := opensslVerifyOK(t, w.dir, "-data", dataF, "-in", tsr, "-CAfile", w.caPEM, "-untrusted", w.tsaPEM); !ok {
						t.Errorf("openssl ts -verify -data rejects:\n%s", out)
					}
					// And the same reply through our parser.
					tok, err := ParseResponse(reply)
					if err != nil {
						t.Fatal(err)
					}
					if err := tok.VerifyData([]byte("delil paketi"), w.roots, []*x509.Certificate{w.tsa.Cert}); err != nil {
						t.Errorf("Go verify of the reply to an openssl query: %v", err)
					}
				})
			}

			// curl, when present, as the other HTTP client.
			if testtool.Has(t, testtool.Curl) {
				tsq := filepath.Join(w.dir, "curl.tsq")
				mustOpenSSL(t, w.dir, "ts", "-query", "-data", dataF, "-sha256", "-cert", "-out", tsq)
				tsr := filepath.Join(w.dir, "curl.tsr")
				out, err := exec.Command("curl", "-sS", "--fail", "-H", "Content-Type: application/timestamp-query",
					"--data-binary", "@"+tsq, "-o", tsr, w.http.URL).CombinedOutput()
				if err != nil {
					t.Fatalf("curl: %v\n%s", err, out)
				}
				if ok, out := opensslVerifyOK(t, w.dir, "-queryfile", tsq, "-in", tsr, "-CAfile", w.caPEM); !ok {
					t.Errorf("reply fetched with curl rejected:\n%s", out)
				}
				// Without the header curl sends application/x-www-form-urlencoded.
				out, _ = exec.Command("curl", "-sS", "-w", "%{http_code}", "--data-binary", "@"+tsq, "-o", "/dev/null", w.http.URL).CombinedOutput()
				if string(out) != "415" {
					t.Errorf("curl without Content-Type got %q, want 415", out)
				}
			}

			// A policy the TSA does not offer: a rejection openssl can read.
			tsq := filepath.Join(w.dir, "badpolicy.tsq")
			mustOpenSSL(t, w.dir, "ts", "-query", "-data", dataF, "-sha256", "-tspolicy", "1.2.3.4", "-out", tsq)
			query, _ := os.ReadFile(tsq)
			tsr := w.write("badpolicy.tsr", postQuery(t, w.http.URL, query))
			text := mustOpenSSL(t, w.dir, "ts", "-reply", "-in", tsr, "-text")
			for _, want := range []string{"Status: Rejected.", "the requested TSA policy is not supported by the TSA", "policy 1.2.3.4 not offered"} {
				if !strings.Contains(text, want) {
					t.Errorf("rejection text lacks %q:\n%s", want, text)
				}
			}
		})
	}
}

func postQuery(t testing.TB, url string, query []byte) []byte {
	t.Helper()
	resp, err := http.Post(url, QueryMediaType, bytes.NewReader(query))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ReplyMediaType {
		t.Fatalf("POST: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	return body
}

// The token an openssl-made query gets covers what openssl hashed.
func TestServerEchoesOpenSSLImprint(t *testing.T) {
	needOpenSSL(t)
	w := newWorld(t, pki.ECDSAP256)
	dataF := w.write("data", []byte("x"))
	tsq := filepath.Join(w.dir, "q.tsq")
	mustOpenSSL(t, w.dir, "ts", "-query", "-data", dataF, "-sha512", "-out", tsq)
	query, _ := os.ReadFile(tsq)
	tok, err := ParseResponse(w.srv.Respond(query))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512([]byte("x"))
	if tok.HashAlg != crypto.SHA512 || !bytes.Equal(tok.HashedMessage, sum[:]) || tok.Nonce == nil {
		t.Errorf("token %v %x nonce %v", tok.HashAlg, tok.HashedMessage, tok.Nonce)
	}
	if !bytes.Contains(query, tokImprint(t, tok)) {
		t.Error("the token's MessageImprint is not byte-for-byte the query's")
	}
}

func tokImprint(t testing.TB, tok *Token) []byte {
	t.Helper()
	var info tstInfo
	if _, err := asn1.Unmarshal(tok.tstInfo, &info); err != nil {
		t.Fatal(err)
	}
	return info.MessageImprint.Raw
}
