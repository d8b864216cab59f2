package address

import (
	"strconv"
	"strings"
)

// MaxDisambiguator is the highest N ForPerson tries in ad.soyad.N before
// giving up with ErrExhausted.
const MaxDisambiguator = 99999

// ForPerson returns the address of a new natural-person account on domain:
// ad.soyad@domain, or ad.soyad.1@domain, ad.soyad.2@domain, … when the plain
// form is taken (Tebliğ on KEP addresses (2012, amended 2013): ad.soyad, with
// a number added when the address is already in use).
//
// Names are transliterated (see Transliterate). A given name or surname of
// several words is joined without a dot: "Ahmet Kemal", "Yılmaz Demir" →
// ahmetkemal.yilmazdemir. Names must be letters only (digits are refused).
//
// taken is asked about each candidate in full ("ahmet.yilmaz@hs01.kep.tr") and
// must report every address ever assigned, closed ones included: a KEP
// address is never reassigned. A nil taken treats every address as free.
func ForPerson(givenName, surname, domain string, taken func(string) bool) (Address, error) {
	ad, err := personName(givenName, "given name")
	if err != nil {
		return Address{}, err
	}
	soyad, err := personName(surname, "surname")
	if err != nil {
		return Address{}, err
	}
	d, err := kepDomain(domain)
	if err != nil {
		return Address{}, err
	}
	base := ad + "." + soyad
	for n := 0; n <= MaxDisambiguator; n++ {
		local := base
		if n > 0 {
			local += "." + strconv.Itoa(n)
		}
		if len(local) > MaxLocalPart {
			return Address{}, faultf(ErrTooLong, "the address %s@%s would be longer than %d characters before the @ (RFC 5321 §4.5.3.1.1); use a shorter form of the name", local, d, MaxLocalPart).on(givenName + " " + surname)
		}
		s := local + "@" + d
		if taken == nil || !taken(s) {
			return Parse(s)
		}
	}
	return Address{}, faultf(ErrExhausted, "%s@%s and every form up to %s.%d@%s are taken", base, d, base, MaxDisambiguator, d).on(givenName + " " + surname)
}

// personName transliterates a given name or surname for ForPerson.
func personName(name, what string) (string, error) {
	t := Transliterate(name)
	if t == "" {
		return "", faultf(ErrBadName, "the %s has no letters that can be written in ASCII", what).on(name)
	}
	if !allLetters(t) {
		return "", faultf(ErrBadName, "the %s contains digits; a person's address is made of letters only", what).on(name)
	}
	return t, nil
}

// ForLegalPerson returns the address of a legal person by name:
// tuzelkisiadi@domain, or tuzelkisiadi.X@domain when suffix X is not empty
// (Tebliğ on KEP addresses (2012, amended 2013): TüzelKişiAdı or
// TüzelKişiAdı.X, X alphanumeric and chosen by the applicant). Name and
// suffix are transliterated (see Transliterate): spaces and punctuation are
// removed, so "Acme Ltd. Şti." becomes acmeltdsti. domain is hsNN.kep.tr or
// the institution's own name.hsNN.kep.tr.
//
// Whether the address is free is the caller's question: the applicant picks
// another X when it is taken.
func ForLegalPerson(name, suffix, domain string) (Address, error) {
	local := Transliterate(name)
	if local == "" {
		return Address{}, faultf(ErrBadName, "the name has no letters or digits that can be written in ASCII").on(name)
	}
	if allDigits(local) {
		return Address{}, faultf(ErrBadName, "the name has no letters; for a MERSİS number use ForMERSIS").on(name)
	}
	return withSuffix(local, suffix, domain, name)
}

// ForMERSIS returns the address of a legal person by MERSİS number:
// MERSİSNo@domain, or MERSİSNo.X@domain when suffix X is not empty (Tebliğ on
// KEP addresses (2012, amended 2013)). mersis must be 16 digits; surrounding
// spaces are ignored. Only the form is checked (see identity.ValidateMERSIS).
func ForMERSIS(mersis, suffix, domain string) (Address, error) {
	m := strings.TrimSpace(mersis)
	if len(m) != mersisDigits || !allDigits(m) {
		return Address{}, faultf(ErrBadName, "a MERSİS number is %d digits", mersisDigits).on(mersis)
	}
	return withSuffix(m, suffix, domain, mersis)
}

// withSuffix appends the transliterated suffix X to local and builds the
// address on domain.
func withSuffix(local, suffix, domain, input string) (Address, error) {
	if suffix != "" {
		x := Transliterate(suffix)
		if x == "" {
			return Address{}, faultf(ErrBadName, "the suffix has no letters or digits that can be written in ASCII").on(suffix)
		}
		local += "." + x
	}
	d, err := kepDomain(domain)
	if err != nil {
		return Address{}, err
	}
	if len(local) > MaxLocalPart {
		return Address{}, faultf(ErrTooLong, "%s would be %d characters before the @, more than the %d allowed (RFC 5321 §4.5.3.1.1); choose a shorter form", local, len(local), MaxLocalPart).on(input)
	}
	return Parse(local + "@" + d)
}

// InstitutionalDomain returns the institutional subdomain name.hsNN.kep.tr of
// an organisation at provider hsNN (Tebliğ on KEP addresses (2012, amended
// 2013): TüzelKişiAdı.hsNN.kep.tr, for an organisation opening accounts for
// its staff or members). The name is transliterated (see Transliterate).
func InstitutionalDomain(orgName, provider string) (string, error) {
	p := ProviderDomain(provider)
	if p == "" {
		return "", faultf(ErrBadProvider, "%q is not a provider label: want hs and two digits from 01 to 99, such as hs01", provider).on(provider)
	}
	name := Transliterate(orgName)
	if name == "" {
		return "", faultf(ErrBadName, "the organisation name has no letters or digits that can be written in ASCII").on(orgName)
	}
	d := name + "." + p
	if _, _, f := parseDomain(d); f != nil {
		return "", f.on(orgName)
	}
	return d, nil
}

// kepDomain checks and lower-cases a domain given to a generator.
func kepDomain(domain string) (string, error) {
	if i := nonASCII(domain); i >= 0 {
		return "", faultf(ErrNonASCII, "the domain is not ASCII; use InstitutionalDomain to make an institution's domain from its name").on(domain)
	}
	d := lowerASCII(domain)
	if d == "" {
		return "", faultf(ErrBadDomain, "the domain is empty").on(domain)
	}
	if _, _, f := parseDomain(d); f != nil {
		return "", f.on(domain)
	}
	return d, nil
}
