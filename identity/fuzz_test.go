package identity

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"TCKN:10000000146", "tckn:10000000147", "VKN:4540536920", "MERSİS:0123456789012345",
		"DETSIS:12345678", "SSN:1", ":", "", "TCKN:", "TCKN:٠١٢٣٤٥٦٧٨٩٠", "TCKN:10000000146:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Err == nil || e.Reason == "" {
				t.Fatalf("ParseID(%q) error %#v is not a complete *Error", s, err)
			}
			if id != (ID{}) {
				t.Fatalf("ParseID(%q) returned %v with an error", s, id)
			}
			return
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("ParseID(%q) = %v does not validate: %v", s, id, err)
		}
		back, err := ParseID(id.String())
		if err != nil || back != id {
			t.Fatalf("ParseID(%q) = %v does not round-trip: %v, %v", s, id, back, err)
		}
		if id.Scheme == TCKN {
			if mustCompleteTCKN(t, id.Value[:9]) != id.Value {
				t.Fatalf("CompleteTCKN disagrees with ValidateTCKN on %s", id.Value)
			}
		}
	})
}

func mustCompleteTCKN(t *testing.T, first9 string) string {
	s, err := CompleteTCKN(first9)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzTCKNFromSerialNumber fuzzes the parser of the certificate subject's
// serialNumber attribute.
func FuzzTCKNFromSerialNumber(f *testing.F) {
	for _, s := range []string{
		"10000000146", "TCKN10000000146", "TCKN-10000000146", "TCKN:10000000146",
		"IDCTR-10000000146", "PNOTR-10000000146", "PASTR-U123", "tckn", "", " IDCTR-10000000147 ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tckn, cerr := tcknFromSerialNumber(v)
		if cerr != nil {
			if !errors.Is(cerr, ErrBadSerialNumber) {
				t.Fatalf("tcknFromSerialNumber(%q) error %v does not match ErrBadSerialNumber", v, cerr)
			}
			if run := longestDigitRun(v); len(run) >= 7 && strings.Contains(cerr.Error(), run) {
				t.Fatalf("error %q shows the number %s unmasked", cerr, run)
			}
			return
		}
		if err := ValidateTCKN(tckn); err != nil {
			t.Fatalf("tcknFromSerialNumber(%q) = %q, invalid: %v", v, tckn, err)
		}
		if !strings.HasSuffix(strings.TrimSpace(v), tckn) {
			t.Fatalf("tcknFromSerialNumber(%q) = %q is not the value's end", v, tckn)
		}
	})
}

func longestDigitRun(s string) string {
	best, start := "", -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start > len(best) {
			best = s[start:i]
		}
		start = -1
	}
	return best
}
