package testtool

import (
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
	for _, must := range []string{OpenSSL, SwaksSTARTTLS, XMLSec1OpenSSL, XMLLint, Mbsync, Python3, PostgresInitdb} {
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
// requires are present under KEP_REQUIRE_TOOLS=1.
func TestProbeInstalled(t *testing.T) {
	for _, tl := range Tools {
		t.Run(tl.Name, func(t *testing.T) {
			if tl.Pending {
				if r := Probe(tl.Name); r.Err != nil {
					t.Skipf("pending tool: %s", r.Reason())
				}
				return
			}
			Require(t, tl.Name)
		})
	}
}
