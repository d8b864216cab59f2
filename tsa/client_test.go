package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/pki"
)

// tsaBehind serves a handler that can corrupt the dev TSA's answers.
func tsaBehind(t *testing.T, w *world, h func(rw http.ResponseWriter, query []byte)) *Client {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		q, _ := io.ReadAll(r.Body)
		h(rw, q)
	}))
	t.Cleanup(hs.Close)
	c := w.client()
	c.URL = hs.URL
	return c
}

func reply(rw http.ResponseWriter, b []byte) {
	rw.Header().Set("Content-Type", ReplyMediaType)
	rw.Write(b)
}

func TestClientErrors(t *testing.T) {
	w := newWorld(t, pki.ECDSAP256)
	ctx := t.Context()
	data := []byte("data")

	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = NewClient("http://"+addr+"/tsa").TimestampData(ctx, data)
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%v", err)
		}
		t.Log(err)
	})
	t.Run("timeout", func(t *testing.T) {
		c := tsaBehind(t, w, func(rw http.ResponseWriter, q []byte) { time.Sleep(300 * time.Millisecond) })
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := c.TimestampData(ctx, data)
		if !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%v", err)
		}
	})
	t.Run("http status", func(t *testing.T) {
		c := tsaBehind(t, w, func(rw http.ResponseWriter, q []byte) {
			http.Error(rw, "upstream HSM offline", http.StatusServiceUnavailable)
		})
		_, err := c.TimestampData(ctx, data)
		var he *HTTPError
		if !errors.As(err, &he) || he.StatusCode != 503 || !strings.Contains(err.Error(), "upstream HSM offline") {
			t.Errorf("%v", err)
		}
		t.Log(err)
	})
	t.Run("html with 200", func(t *testing.T) {
		c := tsaBehind(t, w, func(rw http.ResponseWriter, q []byte) {
			rw.Header().Set("Content-Type", "text/html")
			rw.Write([]byte("<html>Oturum açın</html>"))
		})
		_, err := c.TimestampData(ctx, data)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "text/html") {
			t.Errorf("%v", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		c := w.client()
		c.Policy = asn1.ObjectIdentifier{1, 2, 3, 4}
		_, err := c.TimestampData(ctx, data)
		var re *RefusedError
		if !errors.As(err, &re) || !re.Has(UnacceptedPolicy) || !strings.Contains(err.Error(), "unacceptedPolicy") {
			t.Errorf("%v", err)
		}
		t.Log(err)
	})
	t.Run("nonce mismatch", func(t *testing.T) {
		c := tsaBehind(t, w, func(rw http.ResponseWriter, q []byte) {
			req, _ := ParseRequest(q)
			req.Nonce = new(big.Int).Add(req.Nonce, big.NewInt(1)) // a replayed answer
			tok, _ := w.srv.Stamp(req)
			reply(rw, tok.ResponseDER())
		})
		_, err := c.TimestampData(ctx, data)
		if !errors.Is(err, ErrNonceMismatch) {
			t.Errorf("%v", err)
		}
		t.Log(err)
	})
	t.Run("imprint mismatch", func(t *testing.T) {
		c := tsaBehind(t, w, func(rw http.ResponseWriter, q []byte) {
			req, _ := ParseRequest(q)
			req.HashedMessage = bytes.Repeat([]byte{7}, 32)
			tok, _ := w.srv.Stamp(req)
			reply(rw, tok.ResponseDER())
		})
		_, err := c.TimestampData(ctx, data)
		if !errors.Is(err, ErrImprintMismatch) {
			t.Errorf("%v", err)
		}
		t.Log(err)
	})
	t.Run("bad signature", func(t *testing.T) {
		c := tsaBehind(t, w, func(rw http.ResponseWriter, q []byte) {
			r := w.srv.Respond(q)
			r[len(r)-1] ^= 0x55 // last byte of the signature
			reply(rw, r)
		})
		_, err := c.TimestampData(ctx, data)
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%v", err)
		}
		t.Log(err)
	})
	t.Run("garbage", func(t *testing.T) {
		c := tsaBehind(t, w, func(rw http.ResponseWriter, q []byte) { reply(rw, []byte{0x30, 0x03, 1, 2}) })
		_, err := c.TimestampData(ctx, data)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%v", err)
		}
	})
	t.Run("digest size", func(t *testing.T) {
		if _, err := w.client().Timestamp(ctx, []byte{1, 2, 3}); err == nil || !strings.Contains(err.Error(), "3 bytes") {
			t.Errorf("%v", err)
		}
	})
}

// Basic auth and account headers reach the TSA; a 401 says to check them.
func TestClientCredentials(t *testing.T) {
	w := newWorld(t, pki.RSA2048)
	hs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "kep" || p != "s3cret" || r.Header.Get("X-Kurum-Kodu") != "1234" {
			rw.Header().Set("WWW-Authenticate", `Basic realm="tsa"`)
			http.Error(rw, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.srv.ServeHTTP(rw, r)
	}))
	defer hs.Close()
	c := w.client()
	c.URL = hs.URL
	_, err := c.TimestampData(t.Context(), []byte("x"))
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 401 || !strings.Contains(err.Error(), "check the TSA account") {
		t.Fatalf("%v", err)
	}
	c.Username, c.Password = "kep", "s3cret"
	c.Header = http.Header{"X-Kurum-Kodu": {"1234"}}
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		c.Hash = h
		tok, err := c.TimestampData(t.Context(), []byte("x"))
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		if tok.HashAlg != h || tok.Response == nil || len(tok.Certificates) != 1 {
			t.Errorf("%v: token %v, response %d bytes, %d certificates", h, tok.HashAlg, len(tok.Response), len(tok.Certificates))
		}
	}
}

func TestServerHTTP(t *testing.T) {
	w := newWorld(t, pki.ECDSAP256)
	url := w.http.URL

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}
	resp, err = http.Post(url, "application/octet-stream", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("wrong media type: %s", resp.Status)
	}
	resp, err = http.Post(url, QueryMediaType, bytes.NewReader(make([]byte, maxQueryBytes+1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("huge body: %s", resp.Status)
	}

	query := func(r Request) []byte {
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	_, d256 := sha256Of([]byte("x"))
	v2, _ := asn1.Marshal(timeStampReq{Version: 2, MessageImprint: messageImprint{HashAlgorithm: hashAlgID(crypto.SHA256), HashedMessage: d256}})
	for _, c := range []struct {
		name  string
		query []byte
		want  FailureInfo
	}{
		{"garbage", []byte("GET / HTTP/1.0\r\n\r\n"), BadDataFormat},
		{"empty", nil, BadDataFormat},
		{"trailing data", append(query(Request{HashAlgorithm: crypto.SHA256, HashedMessage: d256}), 0), BadDataFormat},
		{"sha1", query(Request{HashAlgorithm: crypto.SHA1, HashedMessage: make([]byte, 20)}), BadAlgorithm},
		{"short imprint", query(Request{HashAlgorithm: crypto.SHA256, HashedMessage: make([]byte, 20)}), BadDataFormat},
		{"version 2", v2, BadRequest},
		{"policy", query(Request{HashAlgorithm: crypto.SHA256, HashedMessage: d256, TSAPolicyOID: asn1.ObjectIdentifier{1, 2, 3}}), UnacceptedPolicy},
		{"extension", query(Request{HashAlgorithm: crypto.SHA256, HashedMessage: d256,
			Extensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3}, Value: []byte{5, 0}}}}), UnacceptedExtension},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := postQuery(t, url, c.query) // 200 with a TSP answer
			_, err := ParseResponse(r)
			var re *RefusedError
			if !errors.As(err, &re) || re.Status != Rejection || !re.Has(c.want) || len(re.FailInfo) != 1 {
				t.Fatalf("%v, want rejection with %v", err, c.want)
			}
			t.Log(err)
			// OpenSSL reads our rejections too.
			if _, err := exec.LookPath("openssl"); err == nil {
				dir := t.TempDir()
				f := filepath.Join(dir, "r.tsr")
				os.WriteFile(f, r, 0o644)
				text := mustOpenSSL(t, dir, "ts", "-reply", "-in", f, "-text")
				if !strings.Contains(text, "Status: Rejected") || !strings.Contains(strings.ToLower(text), strings.ToLower(c.want.String())) {
					t.Errorf("openssl ts -reply -text:\n%s", text)
				}
			}
		})
	}
}

// Serial numbers increase and never repeat, under concurrent use and with a
// clock that stands still.
func TestSerialsIncrease(t *testing.T) {
	for _, name := range []string{"real clock", "frozen clock"} {
		t.Run(name, func(t *testing.T) {
			ca := newCA(t, "Root")
			is, _ := ca.IssueTSA("TSA", pki.ECDSAP256)
			var clock func() time.Time
			if name == "frozen clock" {
				frozen := time.Now()
				clock = func() time.Time { return frozen }
			}
			srv, err := NewServer(is, testPolicy, clock)
			if err != nil {
				t.Fatal(err)
			}
			const workers, each = 8, 40
			var mu sync.Mutex
			seen := map[string]bool{}
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					var last *big.Int
					for range each {
						tok, err := srv.StampDigest(sha256Of([]byte("x")))
						if err != nil {
							t.Error(err)
							return
						}
						if last != nil && tok.Serial.Cmp(last) <= 0 {
							t.Errorf("serial %v after %v", tok.Serial, last)
						}
						last = tok.Serial
						mu.Lock()
						if seen[tok.Serial.String()] {
							t.Errorf("serial %v repeated", tok.Serial)
						}
						seen[tok.Serial.String()] = true
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(seen) != workers*each {
				t.Errorf("%d serials", len(seen))
			}
		})
	}
}

// genTime is UTC with a "Z" even when the clock is in Turkish time, and keeps
// milliseconds (RFC 3161 §2.4.2).
func TestGenTimeEncoding(t *testing.T) {
	ca := newCA(t, "Root")
	is, _ := ca.IssueTSA("TSA", pki.ECDSAP256)
	trt := time.FixedZone("TRT", 3*3600)
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{time.Now().Add(-time.Minute).In(trt).Truncate(time.Second).Add(120 * time.Millisecond), ".12Z"},
		{time.Now().Add(-time.Minute).In(trt).Truncate(time.Second), "Z"},
		{time.Now().Add(-time.Minute).In(trt).Truncate(time.Second).Add(999999 * time.Microsecond), ".999Z"},
	} {
		srv, err := NewServer(is, testPolicy, func() time.Time { return c.at })
		if err != nil {
			t.Fatal(err)
		}
		tok, err := srv.StampDigest(sha256Of([]byte("x")))
		if err != nil {
			t.Fatal(err)
		}
		want := c.at.UTC().Format("20060102150405") + c.want
		if !bytes.Contains(tok.Raw, []byte(want)) {
			t.Errorf("genTime for %v: want %q in the token", c.at, want)
		}
		if !tok.Time.Equal(c.at.Truncate(time.Millisecond)) || tok.Time.Location() != time.UTC {
			t.Errorf("Time %v, want %v in UTC", tok.Time, c.at)
		}
	}
}
