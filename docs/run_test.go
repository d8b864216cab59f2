package docs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/tlog"
)

// Docs that run (issue 10.6). A shell block whose fence carries the word
// kep-run (```sh kep-run) is meant to run as written. TestDocsRun extracts
// the marked blocks of README.md and docs/*.md and runs those of each file,
// in order, as one bash script (set -euo pipefail) in a temporary
// directory, with the kep binary built from this tree first on PATH and
// TMPDIR inside the test's directory. Two rewrites, and only these:
//
//   - `go run ./cmd/kep` becomes `kep` (the script does not run in the
//     source tree);
//   - a line that starts `kep demo` or `kep serve` runs in the background
//     (a trailing & is optional), the script waits until it says it is
//     ready (the demo's tour, "serving"), and it is stopped with SIGTERM
//     when the script ends.
//
// The test command itself (scripts/test) is never marked. Blocks that need
// a real machine (/srv, systemd, a PostgreSQL server) stay unmarked.

type block struct {
	line int // of the opening fence
	text string
}

var fence = regexp.MustCompile("^```+\\s*(.*)$")

// runnableBlocks returns the blocks of a Markdown file marked kep-run.
func runnableBlocks(t *testing.T, path string) []block {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	for i, l := range strings.Split(string(data), "\n") {
		m := fence.FindStringSubmatch(l)
		switch {
		case cur == nil && m != nil:
			if containsWord(m[1], "kep-run") {
				cur = &block{line: i + 1}
			} else {
				// An unmarked block: skipped to its end.
				cur = &block{line: -(i + 1)}
			}
		case cur != nil && m != nil && strings.TrimSpace(m[1]) == "":
			if cur.line > 0 {
				out = append(out, *cur)
			}
			cur = nil
		case cur != nil && cur.line > 0:
			cur.text += l + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s: the block at line %d is not closed", path, abs(cur.line))
	}
	return out
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

var (
	selfTest   = regexp.MustCompile(`(?m)(^|[;&|(]\s*)(\S*scripts/test|go test)\b`)
	goRunKep   = regexp.MustCompile(`\bgo run \./cmd/kep\b`)
	background = regexp.MustCompile(`^(\s*)(kep (?:demo|serve)\b[^#&]*?)\s*&?\s*(#.*)?$`)
)

// script turns the marked blocks of one file into the script the test runs.
func script(name string, blocks []block, logDir string) string {
	var b strings.Builder
	b.WriteString(`set -euo pipefail
__kep_bg=()
__kep_stop() {
  local p
  for p in "${__kep_bg[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${__kep_bg[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap __kep_stop EXIT
# __kep_ready PID LOG: wait until the background command says it is ready.
__kep_ready() {
  local i
  for i in $(seq 1200); do
    if grep -qE 'Stop with Ctrl-C|serving' "$2"; then return 0; fi
    if ! kill -0 "$1" 2>/dev/null; then echo "docs: the background command stopped:" >&2; cat "$2" >&2; return 1; fi
    sleep 0.1
  done
  echo "docs: the background command did not get ready in 120 s:" >&2; cat "$2" >&2; return 1
}
`)
	n := 0
	for _, bl := range blocks {
		fmt.Fprintf(&b, "\n# ---- %s:%d\n", name, bl.line)
		if selfTest.MatchString(bl.text) {
			// The test command itself would run this test again.
			b.WriteString("echo 'docs: a kep-run block runs the test suite itself; leave that block unmarked' >&2; exit 1\n")
			continue
		}
		for _, l := range strings.Split(strings.TrimRight(bl.text, "\n"), "\n") {
			l = goRunKep.ReplaceAllString(l, "kep")
			if m := background.FindStringSubmatch(l); m != nil {
				n++
				log := filepath.Join(logDir, fmt.Sprintf("background-%d.log", n))
				l = fmt.Sprintf("%s%s >%q 2>&1 & __kep_bg+=($!); __kep_ready $! %q  # (docs test: in the background)", m[1], m[2], log, log)
			}
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// buildKep builds the kep binary of this tree into dir.
func buildKep(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "kep"), "./cmd/kep")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kep: %v\n%s", err, out)
	}
}

// runScript runs a doc's script in dir and fails the test with its output
// when it fails.
func runScript(t *testing.T, bin, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "doc.sh"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "doc.sh")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "TMPDIR="+tmp, "LC_ALL=C.UTF-8")
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the runnable blocks of %s failed: %v\n---- script (%s)\n%s\n---- output\n%s", name, err, filepath.Join(dir, "doc.sh"), text, out.String())
	}
	t.Logf("%s: output\n%s", name, out.String())
}

func TestDocsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kep and runs demo worlds")
	}
	for _, tool := range []string{"bash", "openssl", "xmlsec1", "python3", "unzip", "sha256sum", "curl", "pdftotext"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("KEP_REQUIRE_TOOLS") == "1" || os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed to run the docs (scripts/test installs it)", tool)
			}
			t.Skipf("%s not installed (scripts/test installs it)", tool)
		}
	}
	files, _ := filepath.Glob("*.md")
	files = append([]string{filepath.Join(repoRoot, "README.md")}, files...)
	bin := t.TempDir()
	buildKep(t, bin)
	marked := 0
	for _, f := range files {
		blocks := runnableBlocks(t, f)
		if len(blocks) == 0 {
			continue
		}
		marked++
		name := filepath.Base(f)
		cases := []docCase{{name: "as written"}}
		if name == "evidence.md" {
			cases = logKeyCases
		}
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				dir := t.TempDir()
				if c.prepare != nil {
					c.prepare(t, dir)
				}
				runScript(t, bin, dir, name, script(name, blocks, dir))
			})
		}
	}
	if marked < 2 {
		t.Fatalf("only %d files have kep-run blocks; README.md and docs/evidence.md should", marked)
	}
}

type docCase struct {
	name    string
	prepare func(t *testing.T, dir string)
}

// logKeyCases run docs/evidence.md's manual verification against demo
// worlds whose log key has, or has not, a '+' and a '/' in its base64:
// note.py once split the key on every '+'. The world is made in
// dir/demo before the doc's own `kep demo --dir demo` reuses it.
var logKeyCases = []docCase{
	{"log key with +", withLogKey(func(b string) bool { return strings.Contains(b, "+") && !strings.Contains(b, "/") })},
	{"log key with /", withLogKey(func(b string) bool { return strings.Contains(b, "/") && !strings.Contains(b, "+") })},
	{"log key with + and /", withLogKey(func(b string) bool { return strings.Contains(b, "+") && strings.Contains(b, "/") })},
	{"log key without + or /", withLogKey(func(b string) bool { return !strings.ContainsAny(b, "+/") })},
}

func withLogKey(want func(base64 string) bool) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		wdir := filepath.Join(dir, "demo")
		w, err := demo.Start(context.Background(), wdir, demo.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		origin := w.Nodes[0].Config.Log.Origin
		var skey, vkey string
		for i := 0; ; i++ {
			if i == 10000 {
				t.Fatal("no log key of the wanted form in 10000 tries")
			}
			if skey, vkey, err = tlog.GenerateLogKey(origin); err != nil {
				t.Fatal(err)
			}
			// <name>+<key id>+<base64>; the name has no '+'.
			if want(strings.SplitN(vkey, "+", 3)[2]) {
				break
			}
		}
		old, err := os.ReadFile(filepath.Join(wdir, "anchors", "log.pub"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := w.Nodes[0].Config
		for path, data := range map[string]string{
			cfg.Path(cfg.Keys.LogKey):                 skey + "\n",
			cfg.Path("keys/log.pub"):                  vkey + "\n",
			filepath.Join(wdir, "anchors", "log.pub"): vkey + "\n",
		} {
			if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		info := filepath.Join(wdir, "demo.json")
		b, err := os.ReadFile(info)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, bytes.TrimSpace(old), []byte(vkey))
		if err := os.WriteFile(info, b, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Logf("log key %s", vkey)
	}
}
