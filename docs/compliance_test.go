// Package docs_test checks that the documentation in this directory cannot
// drift from the code: every test that compliance.md names exists
// (TestComplianceNamesRealTests), and the shell blocks marked to run do run
// (TestDocsRun, run_test.go).
package docs_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the module root, one level above docs/.
const repoRoot = ".."

// testFuncs maps each Test/Fuzz/Example function of the tree to the
// directories (relative to the root, slash-separated) that declare it.
func testFuncs(t *testing.T) map[string][]string {
	t.Helper()
	re := regexp.MustCompile(`^func ((?:Test|Fuzz|Example)\w*)\(`)
	out := map[string][]string{}
	err := filepath.WalkDir(repoRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(repoRoot, filepath.Dir(p))
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				out[m[1]] = append(out[m[1]], filepath.ToSlash(rel))
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testSources returns the text of the _test.go files of one directory.
func testSources(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot, filepath.FromSlash(dir), "*_test.go"))
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// testRef is one test named in the "tested by" column of compliance.md.
type testRef struct {
	line    int
	pkg     string // "" when the doc does not say (then any package)
	name    string // TestX
	subtest string // "two From" in TestAccessPointChecks/two From
}

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	// [pkg.]TestName[/subtest]; pkg is a directory path such as cmd/kep.
	testName = regexp.MustCompile(`^(?:([a-z][a-z0-9_/]*)\.)?((?:Test|Fuzz|Example)[A-Za-z0-9_]*)(?:/(.+))?$`)
)

// complianceRefs parses the tables of compliance.md: in each table with a
// "tested by" column, every back-quoted test name of that column. A name
// without a package takes the package of the previous name in the same
// cell, as the doc writes them (`address.TestParse`, `TestParseErrors`).
func complianceRefs(t *testing.T, doc string) []testRef {
	t.Helper()
	var refs []testRef
	col := -1
	for i, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "|") {
			col = -1
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if col < 0 {
			for j, c := range cells {
				if strings.TrimSpace(c) == "tested by" {
					col = j
				}
			}
			continue
		}
		if col >= len(cells) {
			t.Errorf("compliance.md:%d: a row with %d cells, the tested-by column is %d", i+1, len(cells), col+1)
			continue
		}
		pkg := ""
		for _, m := range backticked.FindAllStringSubmatch(cells[col], -1) {
			n := testName.FindStringSubmatch(m[1])
			if n == nil {
				continue
			}
			if n[1] != "" {
				pkg = n[1]
			}
			refs = append(refs, testRef{line: i + 1, pkg: pkg, name: n[2], subtest: n[3]})
		}
	}
	return refs
}

func TestComplianceNamesRealTests(t *testing.T) {
	doc, err := os.ReadFile("compliance.md")
	if err != nil {
		t.Fatal(err)
	}
	refs := complianceRefs(t, string(doc))
	if len(refs) < 50 {
		t.Fatalf("only %d test names found in compliance.md: has the table layout changed?", len(refs))
	}
	funcs := testFuncs(t)
	for _, r := range refs {
		dirs := funcs[r.name]
		if len(dirs) == 0 {
			t.Errorf("compliance.md:%d names %s, but no package declares func %s: rename it in the doc or write the test", r.line, r.name, r.name)
			continue
		}
		where := dirs
		if r.pkg != "" {
			where = nil
			for _, d := range dirs {
				if d == r.pkg {
					where = []string{d}
				}
			}
			if where == nil {
				t.Errorf("compliance.md:%d names %s.%s, but %s is declared in %s", r.line, r.pkg, r.name, r.name, strings.Join(dirs, ", "))
				continue
			}
		}
		if r.subtest == "" {
			continue
		}
		found := false
		for _, d := range where {
			if strings.Contains(testSources(t, d), `"`+r.subtest+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("compliance.md:%d names the case %q of %s, but no test file of %s has that case name", r.line, r.subtest, r.name, strings.Join(where, ", "))
		}
	}
}
