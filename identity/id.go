// Package identity is in charge of who is who: the Turkish identity numbers a
// KEP account is bound to (TCKN for a person, VKN or MERSİS number for a
// company, DETSİS number for a public body), the binding between a qualified
// e-signature certificate (nitelikli elektronik sertifika) and the TCKN of its
// holder, and the trust store of e-signature certification authorities that
// signers' certificates are verified against, as of the signing time.
//
// Identity numbers are personal data. Error messages show them masked
// (10000000146 → 100******46) because errors end up in logs and evidence
// reasons; the full values stay in the errors' fields for code that needs them.
package identity

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// Scheme names the register an identity number comes from.
type Scheme string

const (
	// TCKN is the T.C. Kimlik Numarası of a natural person (MERNİS, kept by
	// the Nüfus ve Vatandaşlık İşleri Genel Müdürlüğü).
	TCKN Scheme = "TCKN"
	// VKN is the Vergi Kimlik Numarası, the 10-digit tax number of a legal
	// person (Gelir İdaresi Başkanlığı). Natural persons use their TCKN as
	// tax number since 1 July 2006.
	VKN Scheme = "VKN"
	// MERSIS is the number of a company or trader in the Merkezi Sicil Kayıt
	// Sistemi (trade registry, Ticaret Bakanlığı and TOBB).
	MERSIS Scheme = "MERSIS"
	// DETSIS is the number of a public body in the Devlet Teşkilatı Merkezi
	// Kayıt Sistemi.
	DETSIS Scheme = "DETSIS"
)

// Number lengths.
const (
	TCKNDigits   = 11
	VKNDigits    = 10
	MERSISDigits = 16
	// DETSISDigits is the length of a DETSİS number. Uncertain: 8 digits is
	// the form remembered from public e-Yazışma material, not checked against
	// a specification; no checksum is known.
	DETSISDigits = 8
)

// Sentinel errors. Validation errors are an *Error wrapping one of them;
// match with errors.Is. The check-digit errors also match ErrChecksum.
var (
	ErrLength        = errors.New("identity: wrong number of digits")
	ErrNonDigit      = errors.New("identity: not all digits")
	ErrLeadingZero   = errors.New("identity: TCKN starts with 0")
	ErrChecksum      = errors.New("identity: check digit wrong")
	ErrTCKNDigit10   = fmt.Errorf("identity: TCKN 10th digit: %w", ErrChecksum)
	ErrTCKNDigit11   = fmt.Errorf("identity: TCKN 11th digit: %w", ErrChecksum)
	ErrVKNDigit10    = fmt.Errorf("identity: VKN 10th digit: %w", ErrChecksum)
	ErrUnknownScheme = errors.New("identity: unknown identity scheme")
	ErrSyntax        = errors.New("identity: not SCHEME:NUMBER")
)

// Error reports why a value is not a valid identity number.
type Error struct {
	Scheme Scheme // may be empty when the scheme itself is unknown
	Value  string // the value as given (not masked)
	Err    error  // one of the sentinel errors above
	Reason string // a sentence naming what is wrong
}

func (e *Error) Error() string {
	var subject []string
	if e.Scheme != "" {
		subject = append(subject, string(e.Scheme))
	}
	if e.Value != "" {
		subject = append(subject, Mask(e.Value))
	}
	if len(subject) == 0 {
		return "identity: " + e.Reason
	}
	return "identity: " + strings.Join(subject, " ") + ": " + e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

func newError(s Scheme, value string, err error, format string, args ...any) *Error {
	return &Error{Scheme: s, Value: value, Err: err, Reason: fmt.Sprintf(format, args...)}
}

// Mask hides the middle of an identity number for messages and logs: the first
// three and last two characters stay (10000000146 → 100******46). Values of
// six characters or fewer are hidden entirely.
func Mask(v string) string {
	n := utf8.RuneCountInString(v)
	if n <= 6 {
		return strings.Repeat("*", n)
	}
	r := []rune(v)
	return string(r[:3]) + strings.Repeat("*", n-5) + string(r[n-2:])
}

// digits checks that v is exactly n ASCII digits; want ends each reason
// ("a TCKN is 11 digits").
func digits(s Scheme, v string, n int, want string) *Error {
	for i, r := range v {
		if r < '0' || r > '9' {
			return newError(s, v, ErrNonDigit, "character %d, %q, is not a digit; %s", utf8.RuneCountInString(v[:i])+1, r, want)
		}
	}
	switch {
	case v == "":
		return newError(s, v, ErrLength, "the number is empty; %s", want)
	case len(v) != n:
		return newError(s, v, ErrLength, "the number has %d digits; %s", len(v), want)
	}
	return nil
}

// tcknCheckDigits computes the 10th and 11th digits of a TCKN from the first
// nine. This is the MERNİS check-digit rule as public validators (and
// python-stdnum's tr.tckimlik) implement it; no official text was read:
//
//	d10 = ((d1+d3+d5+d7+d9)·7 − (d2+d4+d6+d8)) mod 10
//	d11 = (d1+…+d10) mod 10
func tcknCheckDigits(first9 string) (d10, d11 int) {
	var odd, even int
	for i := 0; i < 9; i++ {
		d := int(first9[i] - '0')
		if i%2 == 0 { // positions 1, 3, 5, 7, 9
			odd += d
		} else {
			even += d
		}
	}
	d10 = ((odd*7-even)%10 + 10) % 10
	d11 = (odd + even + d10) % 10
	return d10, d11
}

// ValidateTCKN checks a T.C. Kimlik Numarası: 11 digits, the first not 0, and
// both check digits right. The error matches ErrLength, ErrNonDigit,
// ErrLeadingZero, ErrTCKNDigit10 or ErrTCKNDigit11.
func ValidateTCKN(s string) error {
	if err := digits(TCKN, s, TCKNDigits, "a TCKN is 11 digits"); err != nil {
		return err
	}
	if s[0] == '0' {
		return newError(TCKN, s, ErrLeadingZero, "the first digit is 0, and no TCKN starts with 0")
	}
	d10, _ := tcknCheckDigits(s[:9])
	if got := int(s[9] - '0'); got != d10 {
		return newError(TCKN, s, ErrTCKNDigit10, "the 10th digit does not match the check computed from the first nine: the number is mistyped")
	}
	_, d11 := tcknCheckDigits(s[:9])
	if got := int(s[10] - '0'); got != d11 {
		return newError(TCKN, s, ErrTCKNDigit11, "the 11th digit does not match the check computed from the first ten: the number is mistyped")
	}
	return nil
}

// CompleteTCKN appends the two check digits to nine digits (the first not 0).
func CompleteTCKN(first9 string) (string, error) {
	if err := digits(TCKN, first9, 9, "want the first 9 digits of a TCKN"); err != nil {
		return "", err
	}
	if first9[0] == '0' {
		return "", newError(TCKN, first9, ErrLeadingZero, "the first digit is 0, and no TCKN starts with 0")
	}
	d10, d11 := tcknCheckDigits(first9)
	return fmt.Sprintf("%s%d%d", first9, d10, d11), nil
}

// GenerateTCKN returns a random, well-formed TCKN for tests and the demo,
// drawing from r (nil: the package's default source). A generated number may
// belong to a real person: never use one outside tests and demo data.
func GenerateTCKN(r *rand.Rand) string {
	var b [9]byte
	b[0] = byte('1' + intN(r, 9))
	for i := 1; i < 9; i++ {
		b[i] = byte('0' + intN(r, 10))
	}
	s, _ := CompleteTCKN(string(b[:]))
	return s
}

func intN(r *rand.Rand, n int) int {
	if r == nil {
		return rand.IntN(n)
	}
	return r.IntN(n)
}

// vknCheckDigit computes the 10th digit of a VKN from the first nine. This is
// the Gelir İdaresi rule as public validators (and python-stdnum's tr.vkn)
// implement it; no official text was read. For the digit dᵢ at position
// i = 1..9,
//
//	t = (dᵢ + 10 − i) mod 10
//	v = t·2^(10−i) mod 9, or 9 when t ≠ 0 and that is 0
//
// and the check digit is (10 − Σv mod 10) mod 10.
func vknCheckDigit(first9 string) int {
	sum := 0
	for i := 0; i < 9; i++ {
		t := (int(first9[i]-'0') + 9 - i) % 10
		v := (t << (9 - i)) % 9
		if t != 0 && v == 0 {
			v = 9
		}
		sum += v
	}
	return (10 - sum%10) % 10
}

// ValidateVKN checks a Vergi Kimlik Numarası: 10 digits with the right check
// digit. The error matches ErrLength, ErrNonDigit or ErrVKNDigit10.
func ValidateVKN(s string) error {
	if err := digits(VKN, s, VKNDigits, "a VKN is 10 digits"); err != nil {
		return err
	}
	if got := int(s[9] - '0'); got != vknCheckDigit(s[:9]) {
		return newError(VKN, s, ErrVKNDigit10, "the 10th digit does not match the check computed from the first nine: the number is mistyped")
	}
	return nil
}

// CompleteVKN appends the check digit to nine digits.
func CompleteVKN(first9 string) (string, error) {
	if err := digits(VKN, first9, 9, "want the first 9 digits of a VKN"); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%d", first9, vknCheckDigit(first9)), nil
}

// GenerateVKN returns a random, well-formed VKN for tests and the demo,
// drawing from r (nil: the package's default source). A generated number may
// belong to a real taxpayer: never use one outside tests and demo data.
func GenerateVKN(r *rand.Rand) string {
	var b [9]byte
	for i := range b {
		b[i] = byte('0' + intN(r, 10))
	}
	s, _ := CompleteVKN(string(b[:]))
	return s
}

// ValidateMERSIS checks the form of a MERSİS number: 16 digits. A leading 0 is
// normal and accepted. No check-digit algorithm for MERSİS numbers is
// published, so only the form is checked; whether the number exists is a
// question for the registry. (Numbers are said to embed the company's VKN
// after the leading 0; that is not a published rule and is not relied on.)
func ValidateMERSIS(s string) error {
	if err := digits(MERSIS, s, MERSISDigits, "a MERSİS number is 16 digits"); err != nil {
		return err
	}
	return nil
}

// ValidateDETSIS checks the form of a DETSİS number: DETSISDigits digits
// (uncertain; see DETSISDigits). No checksum is known.
func ValidateDETSIS(s string) error {
	if err := digits(DETSIS, s, DETSISDigits, fmt.Sprintf("a DETSİS number is %d digits", DETSISDigits)); err != nil {
		return err
	}
	return nil
}

// ID is an identity: a number and the register it comes from.
type ID struct {
	Scheme Scheme
	Value  string
}

// ParseID parses "SCHEME:NUMBER" (such as "TCKN:10000000146") and validates
// the number. The scheme is case-insensitive, and the Turkish spellings
// MERSİS and DETSİS are accepted; the result carries the canonical scheme.
func ParseID(s string) (ID, error) {
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return ID{}, newError("", s, ErrSyntax, "want SCHEME:NUMBER, such as TCKN:10000000146 (schemes: TCKN, VKN, MERSIS, DETSIS)")
	}
	scheme, err := ParseScheme(name)
	if err != nil {
		return ID{}, err
	}
	id := ID{Scheme: scheme, Value: value}
	if err := id.Validate(); err != nil {
		return ID{}, err
	}
	return id, nil
}

// ParseScheme returns the canonical scheme for a name such as "tckn" or
// "MERSİS".
func ParseScheme(name string) (Scheme, error) {
	n := strings.ReplaceAll(strings.ToUpper(name), "İ", "I")
	switch s := Scheme(n); s {
	case TCKN, VKN, MERSIS, DETSIS:
		return s, nil
	}
	shown := name
	if strings.ContainsAny(name, "0123456789") {
		shown = Mask(name) // perhaps a number typed where the scheme goes
	}
	return "", &Error{Err: ErrUnknownScheme,
		Reason: fmt.Sprintf("%q is not an identity scheme: want TCKN, VKN, MERSIS or DETSIS", shown)}
}

// String returns "SCHEME:NUMBER", the form ParseID reads.
func (id ID) String() string {
	if id.Scheme == "" && id.Value == "" {
		return ""
	}
	return string(id.Scheme) + ":" + id.Value
}

// Masked returns the identity with its number masked (see Mask), for logs.
func (id ID) Masked() string { return string(id.Scheme) + ":" + Mask(id.Value) }

// Validate checks the number against its scheme's rules.
func (id ID) Validate() error {
	switch id.Scheme {
	case TCKN:
		return ValidateTCKN(id.Value)
	case VKN:
		return ValidateVKN(id.Value)
	case MERSIS:
		return ValidateMERSIS(id.Value)
	case DETSIS:
		return ValidateDETSIS(id.Value)
	}
	return &Error{Scheme: id.Scheme, Value: id.Value, Err: ErrUnknownScheme,
		Reason: fmt.Sprintf("%q is not an identity scheme: want TCKN, VKN, MERSIS or DETSIS", string(id.Scheme))}
}

// MarshalText implements encoding.TextMarshaler with the String form.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseID.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
