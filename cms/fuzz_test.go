package cms

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/kephs/kep/internal/testtool"
)

// FuzzVerify checks that Verify never panics, that every failure wraps one
// of the package's errors, and that a success is complete. Seeds are real
// messages: our own and, when openssl is installed, openssl's.
func FuzzVerify(f *testing.F) {
	fx := getFixture(f)
	header := []byte("From: ayse.yilmaz@hs01.kep.tr\r\nSubject: x\r\n")
	entity := []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nMerhaba dünya\r\n")
	for _, s := range []*signer{fx.rsa, fx.ec} {
		m, err := BuildSigned(header, entity, s.Key, s.Cert, s.Chain)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m)
		f.Add(bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n")))
		o, err := SignOpaque(header, entity, s.Key, s.Cert, s.Chain)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(o)
	}
	if testtool.Has(f, testtool.OpenSSL) {
		for _, flags := range [][]string{nil, {"-nodetach"}, {"-nodetach", "-stream"}, {"-noattr"}, {"-cades", "-keyid"}} {
			f.Add(opensslSign(f, fx, fx.ec, entity, "cms", flags...))
		}
		f.Add(opensslSign(f, fx, fx.rsa, entity, "smime"))
	}
	for _, s := range []string{
		"",
		"\r\n",
		"Subject: plain\n\nhello\n",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nhi\n--b--\n",
		"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\n\n--b\n\nhi\n--b\nContent-Type: application/pkcs7-signature\n\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\n--b--\n",
		"Content-Type: application/pkcs7-mime; smime-type=signed-data\n\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\n",
	} {
		f.Add([]byte(s))
	}
	sentinels := []error{ErrNotSigned, ErrEncrypted, ErrBadSignature, ErrNoSignerCert, ErrMalformed, ErrUnsupportedAlgorithm}
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, err := Verify(msg)
		if err != nil {
			for _, e := range sentinels {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		if s.Signer == nil || len(s.Signers) == 0 || s.Signer != s.Signers[0].Certificate || s.Content == nil || s.Header == nil {
			t.Fatalf("incomplete result: %+v", s)
		}
	})
}

// FuzzNormalizeBER checks that the BER normaliser never panics and that its
// output needs no further normalising.
func FuzzNormalizeBER(f *testing.F) {
	f.Add([]byte{0x30, 0x80, 0x24, 0x80, 0x04, 0x01, 'a', 0x00, 0x00, 0x00, 0x00})
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x05})
	f.Add([]byte{0xbf, 0x81, 0x00, 0x80, 0x05, 0x00, 0x00, 0x00})
	fx := getFixture(f)
	if sig, err := SignDetached([]byte("x"), fx.ec.Key, fx.ec.Cert, nil); err == nil {
		f.Add(sig)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := normalizeBER(in)
		if err != nil {
			return
		}
		again, err := normalizeBER(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %x -> %x -> %x, %v", in, out, again, err)
		}
	})
}

// FuzzParseSignedData drives the one CMS model (used for S/MIME signatures
// and, through package tsa, for time-stamp tokens) directly: it never
// panics, every failure wraps a sentinel, and VerifySigner and CheckDER
// answer for every parsed structure, under both faces of the policy.
func FuzzParseSignedData(f *testing.F) {
	fx := getFixture(f)
	for _, s := range []*signer{fx.rsa, fx.ec, fx.provider} {
		der, err := SignDetached([]byte("x"), s.Key, s.Cert, s.Chain)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
		sd, _ := newDetachedSigner(s.Key, s.Cert, s.Chain)
		if der, err = sd.signData([]byte("x"), time.Now(), true); err == nil {
			f.Add(der)
		}
	}
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x30, 0x80, 0, 0, 0, 0, 0, 0})
	sentinels := []error{ErrNotSigned, ErrEncrypted, ErrBadSignature, ErrNoSignerCert, ErrMalformed, ErrUnsupportedAlgorithm}
	wraps := func(err error) bool {
		for _, e := range sentinels {
			if errors.Is(err, e) {
				return true
			}
		}
		return false
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		sd, err := ParseSignedData(in)
		if err != nil {
			if !wraps(err) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if len(sd.Signers) == 0 || sd.Raw == nil {
			t.Fatalf("incomplete result: %+v", sd)
		}
		if err := sd.CheckDER(); err != nil && !wraps(err) {
			t.Fatalf("CheckDER error without a sentinel: %v", err)
		}
		for i := range sd.Signers {
			for _, p := range []Policy{Current, AsOf(time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC))} {
				if _, err := sd.VerifySigner(i, []byte("x"), nil, p); err != nil && !wraps(err) {
					t.Fatalf("VerifySigner error without a sentinel: %v", err)
				}
			}
		}
	})
}
