package address

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Transliterate turns a name into the characters a KEP local part or
// institution label may hold: lower-case ASCII letters and digits.
//
// Turkish letters map as the Tebliğ on KEP addresses (2012, amended 2013)
// requires: ç→c, ğ→g, ı→i, İ→i, ö→o, ş→s, ü→u, and their upper-case forms.
// Upper-case I becomes i (not ı, so Go's and Turkish case rules agree here), and
// the combining dot that strings.ToLower("İ") leaves behind ("i̇") is dropped.
// Other letters lose their diacritics through the compatibility decomposition
// NFKD (â→a, é→e, and also full-width and ligature forms: ﬁ→fi); a few Latin
// letters without a decomposition are spelled out (ß→ss, æ→ae, œ→oe, ø→o,
// đ/ð→d, ł→l, þ→th). Everything else is removed: spaces, punctuation, symbols
// and letters of other scripts. The result may be empty.
//
//	Transliterate("İstanbul Çiçek Şirketi") == "istanbulciceksirketi"
func Transliterate(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	var buf [32]byte
	for _, r := range s {
		if r < utf8.RuneSelf {
			writeASCII(&b, byte(r))
			continue
		}
		if t := special(r); t != "" {
			b.WriteString(t)
			continue
		}
		for _, c := range norm.NFKD.AppendString(buf[:0], string(r)) {
			if c < utf8.RuneSelf {
				writeASCII(&b, c)
			}
		}
	}
	return b.String()
}

// writeASCII writes c lower-cased when it is a letter or digit, and drops it
// otherwise.
func writeASCII(b *strings.Builder, c byte) {
	switch {
	case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		b.WriteByte(c)
	case 'A' <= c && c <= 'Z':
		b.WriteByte(c + 'a' - 'A')
	}
}

// special maps the letters NFKD does not reduce to ASCII.
func special(r rune) string {
	switch r {
	// Turkish (Tebliğ on KEP addresses). ç ğ ö ş ü İ also decompose under
	// NFKD; they are listed so that the rule is visible in one place.
	case 'ç', 'Ç':
		return "c"
	case 'ğ', 'Ğ':
		return "g"
	case 'ı', 'İ':
		return "i"
	case 'ö', 'Ö':
		return "o"
	case 'ş', 'Ş':
		return "s"
	case 'ü', 'Ü':
		return "u"
	// Other Latin letters with no decomposition.
	case 'ß', 'ẞ':
		return "ss"
	case 'æ', 'Æ':
		return "ae"
	case 'œ', 'Œ':
		return "oe"
	case 'ø', 'Ø':
		return "o"
	case 'đ', 'Đ', 'ð', 'Ð':
		return "d"
	case 'ł', 'Ł':
		return "l"
	case 'þ', 'Þ':
		return "th"
	}
	return ""
}
