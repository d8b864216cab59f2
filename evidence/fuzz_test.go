package evidence

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func fuzzSeeds(f *testing.F, signed bool) {
	var s *Signer
	if signed {
		s = getPKI(f).signer(f, "ecdsa-p256")
	}
	for _, c := range Codes {
		e := sample(c)
		data, err := Marshal(e)
		if signed {
			data, err = s.Sign(e)
		}
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>`))
	f.Add([]byte(`<SubmissionAcceptanceRejection xmlns="http://uri.etsi.org/02640/v2#" version="2"></SubmissionAcceptanceRejection>`))
}

// FuzzParse: Parse never panics, fails only with *ParseError, and whatever
// it accepts can be written again and reads back the same.
func FuzzParse(f *testing.F) {
	fuzzSeeds(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) || e != nil {
				t.Fatalf("Parse error %T %v", err, err)
			}
			return
		}
		m, err := Marshal(e)
		if err != nil {
			t.Fatalf("Parse accepted what Marshal refuses: %v", err)
		}
		e2, err := Parse(m)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, m)
		}
		if !reflect.DeepEqual(e2, truncated(e)) {
			t.Fatalf("round trip differs:\n%+v\n%+v", e2, e)
		}
		if m2, _ := Marshal(e2); !bytes.Equal(m, m2) {
			t.Fatal("Marshal not idempotent")
		}
	})
}

// FuzzVerify: Verify never panics and fails only with the documented errors.
func FuzzVerify(f *testing.F) {
	fuzzSeeds(f, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, cert, err := Verify(data)
		if err != nil {
			if e != nil || cert != nil {
				t.Fatal("results with an error")
			}
			for _, known := range []error{ErrMalformed, ErrNoSignature, ErrDigestMismatch, ErrBadSignatureValue, ErrSigningCertMismatch} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("undocumented error %T %v", err, err)
		}
		if _, err := Marshal(e); err != nil {
			t.Fatalf("verified evidence does not validate: %v", err)
		}
	})
}
