package address

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Address
	}{
		{"ahmet.yilmaz@hs01.kep.tr", Address{"ahmet.yilmaz", "hs01.kep.tr", "hs01", ""}},
		{"Ahmet.Yilmaz@HS01.KEP.TR", Address{"ahmet.yilmaz", "hs01.kep.tr", "hs01", ""}},
		{"ahmet.yilmaz.1@hs01.kep.tr", Address{"ahmet.yilmaz.1", "hs01.kep.tr", "hs01", ""}},
		{"ahmet.yilmaz.12@hs99.kep.tr", Address{"ahmet.yilmaz.12", "hs99.kep.tr", "hs99", ""}},
		{"ahmetkemal.yilmaz@hs03.kep.tr", Address{"ahmetkemal.yilmaz", "hs03.kep.tr", "hs03", ""}},
		{"ahmet.kemal.yilmaz@hs01.kep.tr", Address{"ahmet.kemal.yilmaz", "hs01.kep.tr", "hs01", ""}},
		{"ahmet.kemal.yilmaz.3@hs01.kep.tr", Address{"ahmet.kemal.yilmaz.3", "hs01.kep.tr", "hs01", ""}},
		{"0123456789012345@hs01.kep.tr", Address{"0123456789012345", "hs01.kep.tr", "hs01", ""}},
		{"0123456789012345.ik@hs01.kep.tr", Address{"0123456789012345.ik", "hs01.kep.tr", "hs01", ""}},
		{"0123456789012345.01@hs01.kep.tr", Address{"0123456789012345.01", "hs01.kep.tr", "hs01", ""}},
		{"istanbulciceksirketi@hs02.kep.tr", Address{"istanbulciceksirketi", "hs02.kep.tr", "hs02", ""}},
		{"acme.hukuk@hs02.kep.tr", Address{"acme.hukuk", "hs02.kep.tr", "hs02", ""}},
		{"acme.2@hs02.kep.tr", Address{"acme.2", "hs02.kep.tr", "hs02", ""}},
		{"3m@hs02.kep.tr", Address{"3m", "hs02.kep.tr", "hs02", ""}},
		{"ayse.demir@acme.hs01.kep.tr", Address{"ayse.demir", "acme.hs01.kep.tr", "hs01", "acme"}},
		{"ayse.demir@Acme-Holding.hs01.kep.tr", Address{"ayse.demir", "acme-holding.hs01.kep.tr", "hs01", "acme-holding"}},
		{"a@hs10.kep.tr", Address{"a", "hs10.kep.tr", "hs10", ""}},
		{strings.Repeat("a", 64) + "@hs01.kep.tr", Address{strings.Repeat("a", 64), "hs01.kep.tr", "hs01", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Parse = %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != strings.ToLower(tt.in) {
				t.Errorf("String = %q", s)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in     string
		want   error
		reason string // a fragment of the human sentence
	}{
		{"", ErrEmpty, "empty"},
		{"ahmet.yilmaz", ErrNoAt, "no @"},
		{"ahmet.yilmaz.hs01.kep.tr", ErrNoAt, "no @"},
		{"@hs01.kep.tr", ErrBadLocalPart, "nothing before"},
		{"ahmet@", ErrBadDomain, "nothing after"},
		{"ahmet.yılmaz@hs01.kep.tr", ErrNonASCII, "local part"},
		{"İlker@hs01.kep.tr", ErrNonASCII, "transliterated"},
		{"ahmet@hs01.kep.tr\u00a0", ErrNonASCII, "domain"},
		{"ahmet@hs01.kep.tr\xff", ErrNonASCII, "not ASCII"},
		{strings.Repeat("a", 65) + "@hs01.kep.tr", ErrTooLong, "64"},
		{strings.Repeat("a", 250) + "@hs01.kep.tr", ErrTooLong, "254"},
		{"john.doe@gmail.com", ErrNotKEPDomain, "closed system"},
		{"John.Doe+tag@GMAIL.com", ErrNotKEPDomain, "gmail.com"},
		{"ali@kep.tr.example.com", ErrNotKEPDomain, "closed system"},
		{"ali@kep.tr", ErrBadProvider, "no provider"},
		{"ali@hs1.kep.tr", ErrBadProvider, "hs1"},
		{"ali@hs001.kep.tr", ErrBadProvider, "hs001"},
		{"ali@hs00.kep.tr", ErrBadProvider, "01 to 99"},
		{"ali@hsab.kep.tr", ErrBadProvider, "hsab"},
		{"ali@ptt.kep.tr", ErrBadProvider, "ptt"},
		{"ali@acme.ptt.kep.tr", ErrBadProvider, "ptt"},
		{"ali@hs01.kep.tr.", ErrBadDomain, "empty label"},
		{"ali@.hs01.kep.tr", ErrBadDomain, "empty label"},
		{"ali@hs01..kep.tr", ErrBadDomain, "empty label"},
		{"ali@a.b.hs01.kep.tr", ErrBadDomain, "too many labels"},
		{"ali@-acme.hs01.kep.tr", ErrBadDomain, "hyphen"},
		{"ali@ac_me.hs01.kep.tr", ErrBadDomain, "'_'"},
		{"ali@" + strings.Repeat("a", 64) + ".hs01.kep.tr", ErrTooLong, "63"},
		{".ahmet@hs01.kep.tr", ErrBadLocalPart, "starts with a dot"},
		{"ahmet.@hs01.kep.tr", ErrBadLocalPart, "ends with a dot"},
		{"ahmet..yilmaz@hs01.kep.tr", ErrBadLocalPart, "two dots"},
		{"ahmet_yilmaz@hs01.kep.tr", ErrBadLocalPart, "'_'"},
		{"ahmet-yilmaz@hs01.kep.tr", ErrBadLocalPart, "'-'"},
		{"ahmet+kep@hs01.kep.tr", ErrBadLocalPart, "'+'"},
		{"ahmet yilmaz@hs01.kep.tr", ErrBadLocalPart, "' '"},
		{`"ahmet"@hs01.kep.tr`, ErrBadLocalPart, `'"'`},
		{"ahmet@yilmaz@hs01.kep.tr", ErrBadLocalPart, "'@'"},
		{"<ahmet@hs01.kep.tr>", ErrBadDomain, "'>'"},
		{"12345678901@hs01.kep.tr", ErrBadLocalPart, "TCKN"},
		{"1234567890@hs01.kep.tr", ErrBadLocalPart, "10 digits"},
		{"1907.dernek@hs01.kep.tr", ErrBadLocalPart, "16-digit MERSİS"},
		{"0123456789012345.a.b@hs01.kep.tr", ErrBadLocalPart, "MERSİSNo.X"},
		{"ahmet.yilmaz.0@hs01.kep.tr", ErrBadLocalPart, "positive"},
		{"ahmet.yilmaz.01@hs01.kep.tr", ErrBadLocalPart, "leading zeros"},
		{"ahmet2.yilmaz.1@hs01.kep.tr", ErrBadLocalPart, "ahmet2"},
		{"ahmet.yilmaz.1.2@hs01.kep.tr", ErrBadLocalPart, `"1"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if e.Input != tt.in {
				t.Errorf("Input = %q", e.Input)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not mention %q", err, tt.reason)
			}
		})
	}
}

func TestErrorMessageShortensInput(t *testing.T) {
	in := strings.Repeat("ş", 200) + "@hs01.kep.tr"
	_, err := Parse(in)
	if len(err.Error()) > 400 {
		t.Errorf("error message is %d bytes long", len(err.Error()))
	}
	var e *Error
	if errors.As(err, &e) && e.Input != in {
		t.Error("Input field was shortened")
	}
}

func TestIsKEPDomain(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"hs01.kep.tr", true},
		{"HS01.Kep.Tr", true},
		{"acme.hs05.kep.tr", true},
		{"kep.tr", false},
		{"hs00.kep.tr", false},
		{"gmail.com", false},
		{"hs01.kep.tr.", false},
		{"hs01.kep.tr.evil.com", false},
		{"a.b.hs01.kep.tr", false},
		{"çiçek.hs01.kep.tr", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsKEPDomain(tt.in); got != tt.want {
			t.Errorf("IsKEPDomain(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestProviderDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hs01", "hs01.kep.tr"},
		{"HS42", "hs42.kep.tr"},
		{"hs00", ""},
		{"hs1", ""},
		{"ptt", ""},
		{"", ""},
		{"hs01.kep.tr", ""},
	}
	for _, tt := range tests {
		if got := ProviderDomain(tt.in); got != tt.want {
			t.Errorf("ProviderDomain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTransliterate(t *testing.T) {
	tests := []struct{ in, want string }{
		{"İstanbul Çiçek Şirketi", "istanbulciceksirketi"},
		{"çÇğĞıIİiöÖşŞüÜ", "ccggiiiioossuu"},
		{"IĞDIR", "igdir"},
		{"ŞEYMA IŞIK", "seymaisik"},
		{strings.ToLower("İ"), "i"}, // "i̇": i + U+0307 combining dot above
		{strings.ToLower("İLKER"), "ilker"},
		{"Ahmet Kemal", "ahmetkemal"},
		{"Ayşe-Nur", "aysenur"},
		{"O'Neil", "oneil"},
		{"Hâkim Kâmil Ümit", "hakimkamilumit"},
		{"José Müller", "josemuller"},
		{"Straße", "strasse"},
		{"Æsir Øre Łódź Þór Đorđe", "aesirorelodzthordorde"},
		{"Acme Ltd. Şti.", "acmeltdsti"},
		{"ＡＢＣ１２３", "abc123"},
		{"ﬁrma", "firma"},
		{"3M Türkiye", "3mturkiye"},
		{"Иван", ""},
		{"  \t.-_/ ", ""},
		{"", ""},
		{"\xff\xfeab", "ab"},
	}
	for _, tt := range tests {
		if got := Transliterate(tt.in); got != tt.want {
			t.Errorf("Transliterate(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestForPerson(t *testing.T) {
	taken := map[string]bool{}
	takenFn := func(s string) bool { return taken[s] }
	tests := []struct {
		given, surname, domain string
		taken                  []string
		want                   string
	}{
		{"Ahmet", "Yılmaz", "hs01.kep.tr", nil, "ahmet.yilmaz@hs01.kep.tr"},
		{"Ahmet", "Yılmaz", "HS01.KEP.TR", nil, "ahmet.yilmaz@hs01.kep.tr"},
		{"Ahmet", "Yılmaz", "hs01.kep.tr", []string{"ahmet.yilmaz@hs01.kep.tr"}, "ahmet.yilmaz.1@hs01.kep.tr"},
		{"Ahmet", "Yılmaz", "hs01.kep.tr", []string{"ahmet.yilmaz@hs01.kep.tr", "ahmet.yilmaz.1@hs01.kep.tr"}, "ahmet.yilmaz.2@hs01.kep.tr"},
		// Taken at another provider only: free here.
		{"Ahmet", "Yılmaz", "hs02.kep.tr", []string{"ahmet.yilmaz@hs01.kep.tr"}, "ahmet.yilmaz@hs02.kep.tr"},
		{"Ahmet Kemal", "Yılmaz", "hs01.kep.tr", nil, "ahmetkemal.yilmaz@hs01.kep.tr"},
		{"Ayşe", "Yılmaz Demir", "hs01.kep.tr", nil, "ayse.yilmazdemir@hs01.kep.tr"},
		{"İLKNUR", "IŞIK", "acme.hs01.kep.tr", nil, "ilknur.isik@acme.hs01.kep.tr"},
	}
	for _, tt := range tests {
		clear(taken)
		for _, s := range tt.taken {
			taken[s] = true
		}
		got, err := ForPerson(tt.given, tt.surname, tt.domain, takenFn)
		if err != nil {
			t.Errorf("ForPerson(%q, %q, %q): %v", tt.given, tt.surname, tt.domain, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("ForPerson(%q, %q, %q) = %s, want %s", tt.given, tt.surname, tt.domain, got, tt.want)
		}
	}
	if got, err := ForPerson("Ali", "Veli", "hs01.kep.tr", nil); err != nil || got.String() != "ali.veli@hs01.kep.tr" {
		t.Errorf("ForPerson with nil taken = %v, %v", got, err)
	}
}

func TestForPersonErrors(t *testing.T) {
	always := func(string) bool { return true }
	tests := []struct {
		given, surname, domain string
		taken                  func(string) bool
		want                   error
	}{
		{"", "Yılmaz", "hs01.kep.tr", nil, ErrBadName},
		{"Ahmet", "", "hs01.kep.tr", nil, ErrBadName},
		{"Иван", "Петров", "hs01.kep.tr", nil, ErrBadName},
		{"Ahmet2", "Yılmaz", "hs01.kep.tr", nil, ErrBadName},
		{"Ahmet", "Yılmaz", "gmail.com", nil, ErrNotKEPDomain},
		{"Ahmet", "Yılmaz", "hs1.kep.tr", nil, ErrBadProvider},
		{"Ahmet", "Yılmaz", "çiçek.hs01.kep.tr", nil, ErrNonASCII},
		{"Ahmet", "Yılmaz", "", nil, ErrBadDomain},
		{strings.Repeat("a", 40), strings.Repeat("b", 30), "hs01.kep.tr", nil, ErrTooLong},
		{"Ahmet", "Yılmaz", "hs01.kep.tr", always, ErrExhausted},
	}
	for _, tt := range tests {
		_, err := ForPerson(tt.given, tt.surname, tt.domain, tt.taken)
		if !errors.Is(err, tt.want) {
			t.Errorf("ForPerson(%q, %q, %q) error = %v, want %v", tt.given, tt.surname, tt.domain, err, tt.want)
		}
	}
}

func TestForPersonLengthWithDisambiguator(t *testing.T) {
	// 64 characters fit; adding ".1" does not.
	given, surname := strings.Repeat("a", 31), strings.Repeat("b", 32)
	a, err := ForPerson(given, surname, "hs01.kep.tr", nil)
	if err != nil || len(a.LocalPart) != 64 {
		t.Fatalf("ForPerson = %v, %v", a, err)
	}
	_, err = ForPerson(given, surname, "hs01.kep.tr", func(s string) bool { return s == a.String() })
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("error = %v, want ErrTooLong", err)
	}
}

func TestForLegalPerson(t *testing.T) {
	tests := []struct {
		name, suffix, domain string
		want                 string
		err                  error
	}{
		{"İstanbul Çiçek Şirketi", "", "hs01.kep.tr", "istanbulciceksirketi@hs01.kep.tr", nil},
		{"Acme Ltd. Şti.", "Hukuk", "hs02.kep.tr", "acmeltdsti.hukuk@hs02.kep.tr", nil},
		{"Acme", "2", "acme.hs02.kep.tr", "acme.2@acme.hs02.kep.tr", nil},
		{"3M Türkiye", "", "hs01.kep.tr", "3mturkiye@hs01.kep.tr", nil},
		{"", "", "hs01.kep.tr", "", ErrBadName},
		{"1907", "", "hs01.kep.tr", "", ErrBadName},
		{"Acme", "—", "hs01.kep.tr", "", ErrBadName},
		{"Acme", "", "acme.com", "", ErrNotKEPDomain},
		{strings.Repeat("Uzun Şirket Adı ", 6), "", "hs01.kep.tr", "", ErrTooLong},
	}
	for _, tt := range tests {
		got, err := ForLegalPerson(tt.name, tt.suffix, tt.domain)
		if !errors.Is(err, tt.err) || (err == nil && got.String() != tt.want) {
			t.Errorf("ForLegalPerson(%q, %q, %q) = %v, %v; want %s, %v", tt.name, tt.suffix, tt.domain, got, err, tt.want, tt.err)
		}
	}
}

func TestForMERSIS(t *testing.T) {
	tests := []struct {
		mersis, suffix, domain string
		want                   string
		err                    error
	}{
		{"0123456789012345", "", "hs01.kep.tr", "0123456789012345@hs01.kep.tr", nil},
		{" 0123456789012345 ", "IK", "hs01.kep.tr", "0123456789012345.ik@hs01.kep.tr", nil},
		{"012345678901234", "", "hs01.kep.tr", "", ErrBadName},
		{"01234567890123456", "", "hs01.kep.tr", "", ErrBadName},
		{"0123-4567-8901-23", "", "hs01.kep.tr", "", ErrBadName},
		{"0123456789012345", "", "hs100.kep.tr", "", ErrBadProvider},
	}
	for _, tt := range tests {
		got, err := ForMERSIS(tt.mersis, tt.suffix, tt.domain)
		if !errors.Is(err, tt.err) || (err == nil && got.String() != tt.want) {
			t.Errorf("ForMERSIS(%q, %q, %q) = %v, %v; want %s, %v", tt.mersis, tt.suffix, tt.domain, got, err, tt.want, tt.err)
		}
	}
}

func TestInstitutionalDomain(t *testing.T) {
	tests := []struct {
		org, provider, want string
		err                 error
	}{
		{"Acme Holding A.Ş.", "hs01", "acmeholdingas.hs01.kep.tr", nil},
		{"İstanbul Barosu", "HS03", "istanbulbarosu.hs03.kep.tr", nil},
		{"Acme", "ptt", "", ErrBadProvider},
		{"Acme", "hs00", "", ErrBadProvider},
		{"—", "hs01", "", ErrBadName},
		{strings.Repeat("Çok Uzun Kurum Adı ", 5), "hs01", "", ErrTooLong},
	}
	for _, tt := range tests {
		got, err := InstitutionalDomain(tt.org, tt.provider)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("InstitutionalDomain(%q, %q) = %q, %v; want %q, %v", tt.org, tt.provider, got, err, tt.want, tt.err)
		}
		if err == nil && !IsKEPDomain(got) {
			t.Errorf("InstitutionalDomain(%q, %q) = %q is not a KEP domain", tt.org, tt.provider, got)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	inputs := []string{
		"ahmet.yilmaz.12@hs01.kep.tr",
		"Ahmet.Kemal.Yilmaz@Acme.HS01.KEP.TR",
		"0123456789012345.ik@hs02.kep.tr",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Parse(inputs[i%len(inputs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseForeign(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("john.doe@gmail.com"); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkTransliterate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Transliterate("İstanbul Çiçek Sanayi ve Ticaret Anonim Şirketi")
	}
}
