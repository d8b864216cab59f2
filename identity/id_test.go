package identity

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestValidateTCKN(t *testing.T) {
	tests := []struct {
		in     string
		want   error
		reason string
	}{
		{"10000000146", nil, ""},
		{"12345678950", nil, ""},
		{"", ErrLength, "empty"},
		{"1000000014", ErrLength, "10 digits"},
		{"100000001466", ErrLength, "12 digits"},
		{"1000000014a", ErrNonDigit, "character 11"},
		{"TCKN10000000146", ErrNonDigit, "character 1"},
		{"1000000014٦", ErrNonDigit, "character 11"},
		{" 10000000146", ErrNonDigit, "character 1"},
		{"01234567890", ErrLeadingZero, "first digit is 0"},
		{"10000000156", ErrTCKNDigit10, "10th digit"},
		{"10000000147", ErrTCKNDigit11, "11th digit"},
	}
	for _, tt := range tests {
		err := ValidateTCKN(tt.in)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("ValidateTCKN(%q) = %v, want %v", tt.in, err, tt.want)
			continue
		}
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("ValidateTCKN(%q) = %q, want mention of %q", tt.in, err, tt.reason)
		}
		if len(tt.in) > 8 && strings.Contains(err.Error(), tt.in) {
			t.Errorf("ValidateTCKN(%q) error shows the number unmasked: %q", tt.in, err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Scheme != TCKN || e.Value != tt.in {
			t.Errorf("ValidateTCKN(%q) error %#v", tt.in, err)
		}
	}
	for _, err := range []error{ValidateTCKN("10000000156"), ValidateTCKN("10000000147")} {
		if !errors.Is(err, ErrChecksum) {
			t.Errorf("%v does not match ErrChecksum", err)
		}
	}
}

func TestTCKNCheckDigitsExhaustive(t *testing.T) {
	// For any valid number, changing the 10th or the 11th digit alone breaks it.
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		s := GenerateTCKN(r)
		if err := ValidateTCKN(s); err != nil {
			t.Fatalf("GenerateTCKN = %s: %v", s, err)
		}
		if s[0] == '0' {
			t.Fatalf("GenerateTCKN = %s starts with 0", s)
		}
		for pos, want := range map[int]error{9: ErrTCKNDigit10, 10: ErrTCKNDigit11} {
			b := []byte(s)
			b[pos] = '0' + (b[pos]-'0'+1)%10
			if err := ValidateTCKN(string(b)); !errors.Is(err, want) {
				t.Fatalf("ValidateTCKN(%s) = %v, want %v", b, err, want)
			}
		}
	}
}

func TestCompleteTCKN(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"100000001", "10000000146", nil},
		{"123456789", "12345678950", nil},
		{"012345678", "", ErrLeadingZero},
		{"12345678", "", ErrLength},
		{"12345678x", "", ErrNonDigit},
	}
	for _, tt := range tests {
		got, err := CompleteTCKN(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("CompleteTCKN(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestValidateVKN(t *testing.T) {
	// Valid numbers from the test suites of python-stdnum and other public
	// validators.
	for _, s := range []string{"4540536920", "9029589240", "3721052062", "7920586482", "7439837246", "3253690336", "1234567890", "9876543217"} {
		if err := ValidateVKN(s); err != nil {
			t.Errorf("ValidateVKN(%q) = %v", s, err)
		}
	}
	tests := []struct {
		in   string
		want error
	}{
		{"4540536921", ErrVKNDigit10},
		{"454053692", ErrLength},
		{"45405369200", ErrLength},
		{"454053692O", ErrNonDigit},
		{"", ErrLength},
	}
	for _, tt := range tests {
		if err := ValidateVKN(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("ValidateVKN(%q) = %v, want %v", tt.in, err, tt.want)
		}
	}
	if !errors.Is(ValidateVKN("4540536921"), ErrChecksum) {
		t.Error("VKN check digit error does not match ErrChecksum")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		s := GenerateVKN(r)
		if err := ValidateVKN(s); err != nil {
			t.Fatalf("GenerateVKN = %s: %v", s, err)
		}
		b := []byte(s)
		b[9] = '0' + (b[9]-'0'+1)%10
		if ValidateVKN(string(b)) == nil {
			t.Fatalf("ValidateVKN(%s) accepted a wrong check digit", b)
		}
	}
	if got, err := CompleteVKN("454053692"); got != "4540536920" || err != nil {
		t.Errorf("CompleteVKN = %q, %v", got, err)
	}
	if _, err := CompleteVKN("45405369"); !errors.Is(err, ErrLength) {
		t.Errorf("CompleteVKN short = %v", err)
	}
}

func TestValidateMERSISAndDETSIS(t *testing.T) {
	tests := []struct {
		id   ID
		want error
	}{
		{ID{MERSIS, "0123456789012345"}, nil},
		{ID{MERSIS, "9999999999999999"}, nil},
		{ID{MERSIS, "012345678901234"}, ErrLength},
		{ID{MERSIS, "0123-4567-8901-2345"}, ErrNonDigit},
		{ID{DETSIS, "12345678"}, nil},
		{ID{DETSIS, "01234567"}, nil},
		{ID{DETSIS, "1234567"}, ErrLength},
		{ID{DETSIS, "1234567a"}, ErrNonDigit},
	}
	for _, tt := range tests {
		if err := tt.id.Validate(); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%v.Validate() = %v, want %v", tt.id, err, tt.want)
		}
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in   string
		want ID
		err  error
	}{
		{"TCKN:10000000146", ID{TCKN, "10000000146"}, nil},
		{"tckn:10000000146", ID{TCKN, "10000000146"}, nil},
		{"VKN:4540536920", ID{VKN, "4540536920"}, nil},
		{"MERSIS:0123456789012345", ID{MERSIS, "0123456789012345"}, nil},
		{"MERSİS:0123456789012345", ID{MERSIS, "0123456789012345"}, nil},
		{"mersis:0123456789012345", ID{MERSIS, "0123456789012345"}, nil},
		{"DETSİS:12345678", ID{DETSIS, "12345678"}, nil},
		{"detsis:12345678", ID{DETSIS, "12345678"}, nil},
		{"10000000146", ID{}, ErrSyntax},
		{"", ID{}, ErrSyntax},
		{"SSN:123456789", ID{}, ErrUnknownScheme},
		{":10000000146", ID{}, ErrUnknownScheme},
		{"TCKN:10000000147", ID{}, ErrTCKNDigit11},
		{"TCKN: 10000000146", ID{}, ErrNonDigit},
		{"TCKN:", ID{}, ErrLength},
		{"VKN:4540536921", ID{}, ErrVKNDigit10},
		{"TCKN:10000000146:x", ID{}, ErrNonDigit},
	}
	for _, tt := range tests {
		got, err := ParseID(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("ParseID(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.err)
			continue
		}
		if err == nil {
			if back, err := ParseID(got.String()); err != nil || back != got {
				t.Errorf("ParseID(%q).String() = %q does not parse back", tt.in, got)
			}
		}
	}
}

func TestParseIDMasksNumbers(t *testing.T) {
	for _, in := range []string{"12345678950", "12345678950:TCKN", "TCKN:12345678951", "TCKN:1234567895x"} {
		_, err := ParseID(in)
		if err == nil || strings.Contains(err.Error(), "12345678") {
			t.Errorf("ParseID(%q) error %v shows the number", in, err)
		}
	}
}

func TestIDTextAndMask(t *testing.T) {
	id := ID{TCKN, "10000000146"}
	if got := id.Masked(); got != "TCKN:100******46" {
		t.Errorf("Masked = %q", got)
	}
	b, err := json.Marshal(struct{ Owner ID }{id})
	if err != nil || string(b) != `{"Owner":"TCKN:10000000146"}` {
		t.Fatalf("json = %s, %v", b, err)
	}
	var back struct{ Owner ID }
	if err := json.Unmarshal(b, &back); err != nil || back.Owner != id {
		t.Fatalf("json back = %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"Owner":"TCKN:10000000147"}`), &back); !errors.Is(err, ErrTCKNDigit11) {
		t.Fatalf("json of invalid TCKN: %v", err)
	}
	for in, want := range map[string]string{"": "", "123456": "******", "1234567": "123**67", "ŞŞŞŞŞŞŞŞ": "ŞŞŞ***ŞŞ"} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
	if (ID{}).String() != "" {
		t.Error("zero ID String is not empty")
	}
}

func BenchmarkParseID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseID("TCKN:10000000146"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateTCKN(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateTCKN("10000000146"); err != nil {
			b.Fatal(err)
		}
	}
}
