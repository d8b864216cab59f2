package address

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"ahmet.yilmaz@hs01.kep.tr",
		"Ahmet.Kemal.Yilmaz.3@Acme.HS01.KEP.TR",
		"0123456789012345.ik@hs02.kep.tr",
		"john.doe@gmail.com",
		"ahmet.yılmaz@hs01.kep.tr",
		"a@b@hs01.kep.tr",
		"ali@a.b.hs01.kep.tr",
		"12345678901@hs01.kep.tr",
		"ahmet.yilmaz.01@hs01.kep.tr",
		"",
		"@",
		"\xff@hs01.kep.tr",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Err == nil || e.Reason == "" || e.Input != s {
				t.Fatalf("Parse(%q) error %#v is not a complete *Error", s, err)
			}
			return
		}
		out := a.String()
		if !strings.EqualFold(out, s) {
			t.Fatalf("Parse(%q).String() = %q: not the input up to case", s, out)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
				t.Fatalf("Parse(%q).String() = %q is not lower-case ASCII", s, out)
			}
		}
		if len(a.LocalPart) > MaxLocalPart || len(out) > MaxAddress {
			t.Fatalf("Parse(%q) accepted an over-long address", s)
		}
		if !IsKEPDomain(a.Domain) || ProviderDomain(a.Provider) == "" {
			t.Fatalf("Parse(%q) accepted domain %q provider %q", s, a.Domain, a.Provider)
		}
		b, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) does not take back its own output %q: %v", s, out, err)
		}
		if b != a {
			t.Fatalf("round trip of %q: %+v != %+v", s, b, a)
		}
	})
}

// FuzzTransliterate checks that any name yields only [a-z0-9], that
// transliteration is idempotent, and that ForPerson either refuses a name or
// makes an address Parse accepts.
func FuzzTransliterate(f *testing.F) {
	f.Add("Ahmet Kemal", "Yılmaz")
	f.Add("İLKNUR", "IŞIK")
	f.Add("José", "Straße")
	f.Add("Иван", "1907")
	f.Add("i\u0307", "ﬁ")
	f.Fuzz(func(t *testing.T, given, surname string) {
		g := Transliterate(given)
		for i := 0; i < len(g); i++ {
			if c := g[i]; !isLower(c) && !isDigit(c) {
				t.Fatalf("Transliterate(%q) = %q has %q", given, g, c)
			}
		}
		if again := Transliterate(g); again != g {
			t.Fatalf("Transliterate not idempotent on %q: %q then %q", given, g, again)
		}
		a, err := ForPerson(given, surname, "hs01.kep.tr", nil)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ForPerson(%q, %q) error %#v is not an *Error", given, surname, err)
			}
			return
		}
		if want := g + "." + Transliterate(surname); a.LocalPart != want {
			t.Fatalf("ForPerson(%q, %q) = %s, want local part %s", given, surname, a, want)
		}
		if b, err := Parse(a.String()); err != nil || b != a {
			t.Fatalf("ForPerson(%q, %q) = %s does not parse back: %v", given, surname, a, err)
		}
	})
}
