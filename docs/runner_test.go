package docs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunnerRewrites pins the only changes the docs runner makes to a
// marked block (run_test.go).
func TestRunnerRewrites(t *testing.T) {
	for _, c := range []struct {
		name, line string
		want, not  []string
	}{
		{"go run becomes kep", "go run ./cmd/kep verify x.zip", []string{"kep verify x.zip\n"}, []string{"go run"}},
		{"demo in the background", "kep demo --dir demo &   # wait", []string{`kep demo --dir demo >`, `& __kep_bg+=($!); __kep_ready $!`}, nil},
		{"demo without &", `go run ./cmd/kep demo --dir "$DIR"`, []string{`kep demo --dir "$DIR" >`, "__kep_ready"}, nil},
		{"serve in the background", "  kep serve --dir p", []string{"  kep serve --dir p >", "__kep_ready"}, nil},
		{"other commands run in the foreground", "kep send --demo demo --as ayse", []string{"kep send --demo demo --as ayse\n"}, []string{"__kep_ready $!"}},
		{"the test command is refused", "scripts/test ./store/", []string{"leave that block unmarked' >&2; exit 1"}, []string{"scripts/test ./store/"}},
		{"go test is refused", "cd x && go test ./...", []string{"exit 1"}, []string{"go test ./..."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := script("x.md", []block{{line: 1, text: c.line + "\n"}}, "/logs")
			body := got[strings.Index(got, "# ---- x.md:1"):]
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("want %q in\n%s", w, body)
				}
			}
			for _, w := range c.not {
				if strings.Contains(body, w) {
					t.Errorf("do not want %q in\n%s", w, body)
				}
			}
		})
	}
}

func TestRunnableBlocks(t *testing.T) {
	md := "text\n```sh kep-run\necho one\n```\n\n```sh\necho unmarked\n```\n```\nplain\n```\n```sh kep-run\necho two\necho three\n```\n"
	p := filepath.Join(t.TempDir(), "x.md")
	if err := os.WriteFile(p, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	got := runnableBlocks(t, p)
	if len(got) != 2 || got[0].text != "echo one\n" || got[0].line != 2 || got[1].text != "echo two\necho three\n" || got[1].line != 12 {
		t.Fatalf("blocks: %+v", got)
	}
}
