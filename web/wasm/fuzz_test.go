package main

import (
	"errors"
	"testing"
	"time"
)

// The key file is whatever the user picked: decoding it never panics, and
// every failure is a refusal with a code and both texts.
func FuzzDecodeKeyFile(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.p12, p12Password)
	f.Add(cat(fx.keyPEM, fx.cert), "")
	f.Add([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"), "x")
	f.Add([]byte{0x30, 0x80}, "")
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte, password string) {
		s, err := decodeKeyFile(data, password, now)
		if err == nil {
			if s.Key == nil || s.Cert == nil {
				t.Fatal("no error and no signer")
			}
			return
		}
		var r *refusalError
		if !errors.As(err, &r) || r.Code == "" || r.EN == "" || r.TR == "" {
			t.Fatalf("not a refusal: %v", err)
		}
	})
}
