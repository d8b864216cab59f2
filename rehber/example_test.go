package rehber_test

import (
	"fmt"

	"github.com/kephs/kep/rehber"
)

// Names are compared folded: Turkish-aware case, Turkish letters
// transliterated, spaces and punctuation dropped.
func ExampleFold() {
	fmt.Println(rehber.Fold("DENİZ LOJİSTİK A.Ş."))
	fmt.Println(rehber.Fold("Işık Gıda"))
	// Output:
	// denizlojistikas
	// isikgida
}
