package address_test

import (
	"errors"
	"fmt"

	"github.com/kephs/kep/address"
)

func ExampleParse() {
	a, err := address.Parse("Ahmet.Yilmaz.2@Acme.HS01.kep.tr")
	if err != nil {
		panic(err)
	}
	fmt.Println(a)
	fmt.Println(a.LocalPart, a.Provider, a.Subdomain)
	// Output:
	// ahmet.yilmaz.2@acme.hs01.kep.tr
	// ahmet.yilmaz.2 hs01 acme
}

func ExampleParse_foreign() {
	_, err := address.Parse("john.doe@gmail.com")
	fmt.Println(errors.Is(err, address.ErrNotKEPDomain))
	fmt.Println(err)
	// Output:
	// true
	// address: "john.doe@gmail.com": gmail.com is not a KEP domain: KEP is a closed system, and KEP addresses end in hsNN.kep.tr
}

func ExampleParse_turkishLetters() {
	_, err := address.Parse("ayşe.yılmaz@hs01.kep.tr")
	fmt.Println(errors.Is(err, address.ErrNonASCII))
	// Output: true
}

func ExampleTransliterate() {
	fmt.Println(address.Transliterate("İstanbul Çiçek Şirketi"))
	fmt.Println(address.Transliterate("IŞIK Ğ. Öztürk"))
	// Output:
	// istanbulciceksirketi
	// isikgozturk
}

func ExampleForPerson() {
	// The store says which addresses were ever assigned (closed ones too).
	assigned := map[string]bool{"ahmet.yilmaz@hs01.kep.tr": true}
	a, err := address.ForPerson("Ahmet", "Yılmaz", "hs01.kep.tr", func(s string) bool { return assigned[s] })
	if err != nil {
		panic(err)
	}
	fmt.Println(a)

	// Several given names are joined without a dot.
	b, _ := address.ForPerson("Ahmet Kemal", "Öztürk", "hs01.kep.tr", nil)
	fmt.Println(b)
	// Output:
	// ahmet.yilmaz.1@hs01.kep.tr
	// ahmetkemal.ozturk@hs01.kep.tr
}

func ExampleForLegalPerson() {
	domain, err := address.InstitutionalDomain("Acme Holding A.Ş.", "hs01")
	if err != nil {
		panic(err)
	}
	a, err := address.ForLegalPerson("Acme Holding", "Hukuk", domain)
	if err != nil {
		panic(err)
	}
	fmt.Println(a)
	// Output: acmeholding.hukuk@acmeholdingas.hs01.kep.tr
}

func ExampleForMERSIS() {
	a, err := address.ForMERSIS("0123456789012345", "IK", address.ProviderDomain("hs02"))
	if err != nil {
		panic(err)
	}
	fmt.Println(a)
	// Output: 0123456789012345.ik@hs02.kep.tr
}

func ExampleIsKEPDomain() {
	fmt.Println(address.IsKEPDomain("hs01.kep.tr"), address.IsKEPDomain("acme.hs01.kep.tr"), address.IsKEPDomain("gmail.com"))
	// Output: true true false
}
