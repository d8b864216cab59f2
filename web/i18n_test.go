package web

import (
	"io/fs"
	"regexp"
	"testing"
)

// TestWords: every word a template or handler asks for is in both
// languages.
func TestWords(t *testing.T) {
	used := regexp.MustCompile(`\.T "([a-z0-9.]+)"`)
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(templateFS, path)
		for _, m := range used.FindAllSubmatch(b, -1) {
			if _, ok := words[string(m[1])]; !ok {
				t.Errorf("%s: no word %q", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range words {
		if w[0] == "" || w[1] == "" {
			t.Errorf("%s: a language is missing", k)
		}
	}
	for _, role := range folderRoles {
		if _, ok := words["folder."+string(role)]; !ok {
			t.Errorf("no folder name for %s", role)
		}
	}
}
