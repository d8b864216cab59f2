package testtool

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		ci, require string
		want        bool
	}{
		{"", "", false},
		{"true", "", true},
		{"1", "", true},
		{"false", "", false},
		{"", "1", true},
		{"", "0", false},
	} {
		t.Setenv("CI", tc.ci)
		t.Setenv("KEP_REQUIRE_TOOLS", tc.require)
		if got := Required(); got != tc.want {
			t.Errorf("CI=%q KEP_REQUIRE_TOOLS=%q: Required() = %v, want %v", tc.ci, tc.require, got, tc.want)
		}
	}
}

// Every tool names its command and the packages that provide it, and the
// table has no duplicate.
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, tl := range Tools {
		if tl.Name == "" || tl.Command == "" || len(tl.Packages) == 0 || tl.probe == nil {
			t.Errorf("incomplete tool %+v", tl)
		}
		if seen[tl.Name] {
			t.Errorf("duplicate tool %s", tl.Name)
		}
		seen[tl.Name] = true
	}
	for _, must := range []string{OpenSSL, SwaksSTARTTLS, XMLSec1OpenSSL, XMLLint, Mbsync, Python3, PostgresInitdb, Chromium, NPM} {
		if tl, ok := Lookup(must); !ok || tl.Pending {
			t.Errorf("%s must be a required tool", must)
		}
	}
	sw, _ := Lookup(SwaksSTARTTLS)
	if !strings.Contains(strings.Join(sw.Packages, " "), "libnet-ssleay-perl") {
		t.Errorf("swaks without its TLS modules: %v", sw.Packages)
	}
}

// An unknown name is an error that says so, never a silent skip.
func TestProbeUnknown(t *testing.T) {
	r := Probe("no-such-tool")
	if r.Err == nil || !strings.Contains(r.Reason(), "no such tool") {
		t.Fatalf("Probe(unknown) = %+v", r)
	}
}

// The probes run against this machine's tools: the tools scripts/test
// requires are present under KEP_REQUIRE_TOOLS=1. Pending tools (a
// headless browser start costs seconds) are probed by toolcheck only.
func TestProbeInstalled(t *testing.T) {
	for _, tl := range Tools {
		t.Run(tl.Name, func(t *testing.T) {
			if tl.Pending {
				t.Skip("pending tool: probed by scripts/test's toolcheck")
			}
			Require(t, tl.Name)
		})
	}
}

// TestRequireChild is run by TestRequireMissing in a child process whose
// PATH holds no tool.
func TestRequireChild(t *testing.T) {
	if os.Getenv("KEP_TESTTOOL_CHILD") != "1" {
		t.Skip("run by TestRequireMissing")
	}
	Require(t, SwaksSTARTTLS)
	t.Log("not reached")
}

// A missing tool skips the test, naming the packages to install; under
// KEP_REQUIRE_TOOLS=1 or CI=true it fails the test instead.
func TestRequireMissing(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		fail bool
		want string
	}{
		{nil, false, "--- SKIP: TestRequireChild"},
		{[]string{"KEP_REQUIRE_TOOLS=1"}, true, "--- FAIL: TestRequireChild"},
		{[]string{"CI=true"}, true, "--- FAIL: TestRequireChild"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRequireChild$", "-test.v")
		cmd.Env = append([]string{"KEP_TESTTOOL_CHILD=1", "PATH=" + t.TempDir(), "HOME=" + os.Getenv("HOME")}, tc.env...)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fail || !strings.Contains(string(out), tc.want) ||
			!strings.Contains(string(out), "apt-get install swaks libnet-ssleay-perl libio-socket-ssl-perl") ||
			strings.Contains(string(out), "not reached") {
			t.Errorf("env %v: err %v\n%s", tc.env, err, out)
		}
	}
}
