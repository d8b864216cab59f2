// Package address is in charge of KEP addresses: the grammar the Tebliğ on
// the KEP Rehberi and KEP addresses (2012, amended 2013) allows, parsing and
// normalising addresses, telling KEP domains from foreign ones (KEP is a
// closed system: a KEP account sends only to and receives only from KEP
// addresses), transliterating Turkish names into the ASCII of a local part,
// and generating the address of a new account (ad.soyad, ad.soyad.1, …).
//
// # Grammar accepted by Parse
//
// An address is local@domain, compared case-insensitively and always returned
// in lower case. Only ASCII is accepted: Turkish letters must have been
// transliterated (see Transliterate) before an address exists.
//
// The domain is a provider domain hsNN.kep.tr (NN two digits, 01–99; PTT is
// hs01) or an institutional subdomain name.hsNN.kep.tr, where name is the
// transliterated TüzelKişiAdı of the organisation that applied for its staff
// or members. The name label is a DNS label (RFC 1035 §2.3.1: letters, digits,
// inner hyphens, at most 63 characters); the addresses this package generates
// never contain a hyphen, but another provider's might.
//
// The local part is lower-case letters and digits in labels separated by single
// dots (no leading, trailing or doubled dot). Its labels must fit one of the
// Tebliğ's forms:
//
//	MERSİSNo, MERSİSNo.X           legal person by MERSİS number (16 digits)
//	tuzelkisiadi, tuzelkisiadi.X   legal person by name (X alphanumeric)
//	ad.soyad, ad.soyad.N           natural person (N = 1, 2, …: the disambiguator)
//
// Because X is any alphanumeric label, every two-label local part whose first
// label is not a bare number is acceptable (ad.soyad is also name.X). Three or
// more labels are a person: two or more letters-only name labels, optionally
// followed by a disambiguator N, a positive integer without leading zeros. So
// ahmet.kemal.yilmaz and ayse.yilmaz.demir are accepted (people with several
// given names or surnames, as other providers may have spelled them), although
// ForPerson itself joins the words of a given name or surname without a dot
// (Ahmet Kemal Yılmaz → ahmetkemal.yilmaz). A first label made only of digits
// must be a 16-digit MERSİS number: a TCKN (11 digits) or VKN (10 digits) is
// never a local part.
//
// Lengths follow RFC 5321 §4.5.3.1: local part at most 64 octets, domain at
// most 255, and the whole address at most 254 (a path is 256 octets including
// the angle brackets).
package address

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Length limits from RFC 5321 §4.5.3.1.
const (
	MaxLocalPart = 64  // §4.5.3.1.1
	MaxDomain    = 255 // §4.5.3.1.2
	MaxAddress   = 254 // §4.5.3.1.3: 256-octet path minus "<" and ">"
	maxLabel     = 63  // RFC 1035 §2.3.4
)

// Zone is the DNS zone under which every KEP provider has its domain.
const Zone = "kep.tr"

// mersisDigits is the length of a MERSİS number (package identity checks the
// same form in ValidateMERSIS; address does not depend on identity).
const mersisDigits = 16

// Sentinel errors. Every error returned by this package is an *Error wrapping
// one of them; match with errors.Is.
var (
	ErrEmpty        = errors.New("empty address")
	ErrNoAt         = errors.New("no @ in address")
	ErrNonASCII     = errors.New("address is not ASCII")
	ErrTooLong      = errors.New("address too long")
	ErrBadLocalPart = errors.New("invalid local part")
	ErrBadDomain    = errors.New("invalid domain")
	ErrNotKEPDomain = errors.New("not a KEP address: KEP is a closed system")
	ErrBadProvider  = errors.New("invalid KEP provider label")
	ErrBadName      = errors.New("name cannot make an address")
	ErrExhausted    = errors.New("no free address")
)

// Error reports why a string is not an acceptable KEP address, or why an
// address could not be generated.
type Error struct {
	Input  string // the input as given
	Err    error  // one of the sentinel errors above
	Reason string // a sentence naming what is wrong
}

func (e *Error) Error() string {
	return fmt.Sprintf("address: %s: %s", quote(e.Input), e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// quote quotes s for an error message, shortening very long inputs.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q…", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

// fault is an error found by a helper, before the input it belongs to is known.
type fault struct {
	err    error
	reason string
}

func faultf(err error, format string, args ...any) *fault {
	return &fault{err, fmt.Sprintf(format, args...)}
}

func (f *fault) on(input string) *Error { return &Error{Input: input, Err: f.err, Reason: f.reason} }

// Address is a syntactically valid, normalised (lower-case) KEP address.
type Address struct {
	LocalPart string // e.g. "ahmet.yilmaz.1"
	Domain    string // e.g. "hs01.kep.tr" or "acme.hs01.kep.tr"
	Provider  string // the provider label, e.g. "hs01"
	Subdomain string // the TüzelKişiAdı label of name.hsNN.kep.tr; "" for hsNN.kep.tr
}

// String returns local@domain, the form Parse accepts back unchanged.
func (a Address) String() string {
	if a.LocalPart == "" && a.Domain == "" {
		return ""
	}
	return a.LocalPart + "@" + a.Domain
}

// Parse validates a KEP address and returns it normalised to lower case.
// It accepts a bare addr-spec only: no display name, angle brackets,
// comments, quoted local parts or surrounding spaces. See the package
// documentation for the grammar.
func Parse(s string) (Address, error) {
	if s == "" {
		return Address{}, &Error{Input: s, Err: ErrEmpty, Reason: "the address is empty"}
	}
	at := strings.LastIndexByte(s, '@')
	if i := nonASCII(s); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		where := "domain"
		if at < 0 || i < at {
			where = "local part"
		}
		return Address{}, faultf(ErrNonASCII, "%q in the %s is not ASCII: KEP addresses are lower-case ASCII, with Turkish letters transliterated (ç→c, ğ→g, ı→i, İ→i, ö→o, ş→s, ü→u)", r, where).on(s)
	}
	if len(s) > MaxAddress {
		return Address{}, faultf(ErrTooLong, "the address is %d characters long; at most %d are allowed (RFC 5321 §4.5.3.1.3)", len(s), MaxAddress).on(s)
	}
	if at < 0 {
		return Address{}, faultf(ErrNoAt, "there is no @ between the local part and the domain").on(s)
	}
	local, domain := lowerASCII(s[:at]), lowerASCII(s[at+1:])
	if local == "" {
		return Address{}, faultf(ErrBadLocalPart, "there is nothing before the @").on(s)
	}
	if domain == "" {
		return Address{}, faultf(ErrBadDomain, "there is nothing after the @").on(s)
	}
	if len(local) > MaxLocalPart {
		return Address{}, faultf(ErrTooLong, "the local part is %d characters long; at most %d are allowed (RFC 5321 §4.5.3.1.1)", len(local), MaxLocalPart).on(s)
	}
	// The domain is checked first: for a foreign address (name@gmail.com)
	// "not a KEP address" is the useful answer, whatever its local part.
	provider, sub, f := parseDomain(domain)
	if f != nil {
		return Address{}, f.on(s)
	}
	if f := checkLocal(local); f != nil {
		return Address{}, f.on(s)
	}
	return Address{LocalPart: local, Domain: domain, Provider: provider, Subdomain: sub}, nil
}

// IsKEPDomain reports whether domain (any case) is a KEP domain: hsNN.kep.tr
// or name.hsNN.kep.tr.
func IsKEPDomain(domain string) bool {
	if len(domain) > MaxDomain || nonASCII(domain) >= 0 {
		return false
	}
	_, _, f := parseDomain(lowerASCII(domain))
	return f == nil
}

// ProviderDomain returns the domain hsNN.kep.tr of the provider label hsNN
// (any case), or "" when provider is not of that form.
func ProviderDomain(provider string) string {
	p := lowerASCII(provider)
	if !isProvider(p) {
		return ""
	}
	return p + "." + Zone
}

// parseDomain checks a lower-case ASCII domain and returns its provider label
// and institutional subdomain label ("" when there is none).
func parseDomain(d string) (provider, sub string, f *fault) {
	if len(d) > MaxDomain {
		return "", "", faultf(ErrTooLong, "the domain is %d characters long; at most %d are allowed (RFC 5321 §4.5.3.1.2)", len(d), MaxDomain)
	}
	labels := strings.Split(d, ".")
	for _, l := range labels {
		if l == "" {
			return "", "", faultf(ErrBadDomain, "the domain %q has an empty label (a leading, trailing or doubled dot)", d)
		}
		if f := checkDNSLabel(l); f != nil {
			return "", "", f
		}
	}
	// Closed system (Tebliğ on KEP addresses; the KEP Yönetmeliği): every
	// KEP domain is under kep.tr.
	n := len(labels)
	if n < 2 || labels[n-2] != "kep" || labels[n-1] != "tr" {
		return "", "", faultf(ErrNotKEPDomain, "%s is not a KEP domain: KEP is a closed system, and KEP addresses end in hsNN.%s", d, Zone)
	}
	switch n {
	case 2:
		return "", "", faultf(ErrBadProvider, "the domain has no provider label: want hsNN.%s, such as hs01.%s", Zone, Zone)
	case 3:
		provider = labels[0]
	case 4:
		sub, provider = labels[0], labels[1]
	default:
		return "", "", faultf(ErrBadDomain, "the domain %q has too many labels: a KEP domain is hsNN.%s or name.hsNN.%s", d, Zone, Zone)
	}
	if !isProvider(provider) {
		return "", "", faultf(ErrBadProvider, "%q is not a provider label: want hs and two digits from 01 to 99, such as hs01", provider)
	}
	return provider, sub, nil
}

// isProvider reports whether p is a provider label hsNN, NN in 01..99
// (Tebliğ on KEP addresses: each licensed KEPHS has the domain hsNN.kep.tr).
func isProvider(p string) bool {
	return len(p) == 4 && p[0] == 'h' && p[1] == 's' && isDigit(p[2]) && isDigit(p[3]) && p[2:] != "00"
}

// checkDNSLabel checks a non-empty, lower-case domain label (RFC 1035
// §2.3.1: letters, digits and inner hyphens; §2.3.4: at most 63 octets).
func checkDNSLabel(l string) *fault {
	if len(l) > maxLabel {
		return faultf(ErrTooLong, "the domain label %s is %d characters long; a DNS label has at most %d (RFC 1035 §2.3.4)", quote(l), len(l), maxLabel)
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !isLower(c) && !isDigit(c) && c != '-' {
			return faultf(ErrBadDomain, "%q is not allowed in the domain label %s: only letters a–z, digits and hyphens", c, quote(l))
		}
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return faultf(ErrBadDomain, "the domain label %q starts or ends with a hyphen", l)
	}
	return nil
}

// checkLocal checks a lower-case ASCII local part against the Tebliğ's forms
// (see the package documentation).
func checkLocal(l string) *fault {
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case isLower(c) || isDigit(c):
		case c == '.':
			switch {
			case i == 0:
				return faultf(ErrBadLocalPart, "the local part starts with a dot")
			case i == len(l)-1:
				return faultf(ErrBadLocalPart, "the local part ends with a dot")
			case l[i-1] == '.':
				return faultf(ErrBadLocalPart, "the local part has two dots in a row")
			}
		default:
			return faultf(ErrBadLocalPart, "%q is not allowed in the local part: only letters a–z, digits and dots separating them", c)
		}
	}
	labels := strings.Split(l, ".")
	first := labels[0]
	if allDigits(first) {
		// Tebliğ on KEP addresses: MERSİSNo or MERSİSNo.X.
		switch {
		case len(first) == 11:
			return faultf(ErrBadLocalPart, "%s looks like a TCKN, which is never part of a KEP address; a local part that starts with a number must be a 16-digit MERSİS number", first)
		case len(first) != mersisDigits:
			return faultf(ErrBadLocalPart, "a local part that starts with a number must be a 16-digit MERSİS number; %s has %d digits", first, len(first))
		case len(labels) > 2:
			return faultf(ErrBadLocalPart, "a MERSİS local part is MERSİSNo or MERSİSNo.X; this one has %d labels", len(labels))
		}
		return nil
	}
	if len(labels) <= 2 {
		// tuzelkisiadi, tuzelkisiadi.X, ad.soyad.
		return nil
	}
	// Three or more labels: ad[.ad…].soyad[.soyad…][.N].
	names := labels
	if last := labels[len(labels)-1]; allDigits(last) {
		if last[0] == '0' {
			return faultf(ErrBadLocalPart, "the disambiguator %q must be a positive number without leading zeros (ad.soyad.1, ad.soyad.2, …)", last)
		}
		names = labels[:len(labels)-1]
	}
	for _, n := range names {
		if !allLetters(n) {
			return faultf(ErrBadLocalPart, "%q is not a name: a local part of three or more labels is ad.soyad.N, with names of letters only", n)
		}
	}
	return nil
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func allLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLower(s[i]) {
			return false
		}
	}
	return s != ""
}

// nonASCII returns the index of the first byte of s that is not ASCII, or -1.
func nonASCII(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return i
		}
	}
	return -1
}

// lowerASCII lower-cases the ASCII letters of s, allocating only when needed.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
