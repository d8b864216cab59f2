package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// A comment continued on the next line: "…\n\t// …".
	commentBreak = regexp.MustCompile(`\n\s*//\s*`)
	// kep-rules.md, "Section" / kep-rules.md "Section" / kep-rules.md: "a quoted phrase".
	// docs/kep-rules.md was the page's name outside the repository; the code
	// is being moved to docs/kep-rules.md, and both are checked meanwhile.
	ruleCitation = regexp.MustCompile(`kep-(?:domain|rules)\.md(?:,?\s*"([^"]+)"|:[^"\n]{0,40}"([^"]+)")`)
	mdHeading    = regexp.MustCompile(`(?m)^#{2,4} (.+)$`)
	spaces       = regexp.MustCompile(`\s+`)
)

// TestRuleCitationsResolve: every section of kep-rules.md that a Go
// comment cites exists (a heading, or a heading's name before its
// parenthesis: "Evidence" for "Evidence (delil)"), and every phrase a
// comment quotes from it is in it.
func TestRuleCitationsResolve(t *testing.T) {
	page, err := os.ReadFile("kep-rules.md")
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, m := range mdHeading.FindAllStringSubmatch(string(page), -1) {
		h := strings.TrimSpace(m[1])
		headings[strings.ToLower(h)] = true
		if i := strings.Index(h, " ("); i > 0 {
			headings[strings.ToLower(h[:i])] = true
		}
	}
	norm := func(s string) string { return spaces.ReplaceAllString(strings.ToLower(s), " ") }
	text := norm(string(page))
	n := 0
	err = filepath.WalkDir(repoRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// The docs' own tests (this file) are not citations.
		if d.IsDir() && p != repoRoot && (strings.HasPrefix(d.Name(), ".") || p == filepath.Join(repoRoot, "docs")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		joined := commentBreak.ReplaceAllString(string(src), " ")
		for _, m := range ruleCitation.FindAllStringSubmatch(joined, -1) {
			n++
			switch {
			case m[1] != "" && !headings[strings.ToLower(norm(m[1]))]:
				t.Errorf("%s cites section %q of kep-rules.md, which has no such heading", p, m[1])
			case m[2] != "" && !strings.Contains(text, norm(m[2])):
				t.Errorf("%s quotes %q from kep-rules.md, which does not say it", p, m[2])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no citation of kep-rules.md found in the code: has the citation form changed?")
	}
	t.Logf("%d citations checked", n)
}
