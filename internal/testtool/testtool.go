// Package testtool is in charge of the external programs the tests drive
// (openssl, swaks, xmlsec1, mbsync, python3, aiosmtpd, and the ones later tests will
// need): it names each capability a test relies on, probes for that
// capability rather than for the command's presence (swaks without the perl
// TLS modules is present but cannot STARTTLS), and says which Debian
// packages provide it. Browser (browser.go) drives headless Chromium for
// the web's tests and runs axe-core, from npm, on its pages.
//
// Tests call Require (or Has, when the tool only adds cases). Outside CI a
// missing capability skips the test with the packages to install; under CI
// (CI=true) or KEP_REQUIRE_TOOLS=1, which scripts/test sets, it fails the
// test, the way KEP_REQUIRE_POSTGRES does for the database. scripts/test
// installs the packages through the toolcheck command in this package's
// toolcheck directory, from the same table.
package testtool

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Capability names, as tests pass them to Require.
const (
	OpenSSL        = "openssl"         // openssl 3: cms, smime, ts, req
	SwaksSTARTTLS  = "swaks-starttls"  // swaks able to STARTTLS and AUTH
	XMLSec1OpenSSL = "xmlsec1-openssl" // xmlsec1 with the openssl crypto engine
	XMLLint        = "xmllint"         // xmllint with XML Schema support
	Mbsync         = "mbsync"          // isync's mbsync, built with TLS
	Python3        = "python3"         // python3 with imaplib, ssl and email
	AIOSMTPD       = "aiosmtpd"        // python3 with aiosmtpd: a real SMTP server (STARTTLS, AUTH) for tests
	Curl           = "curl"            // curl, an HTTP client for the TSA test
	PostgresInitdb = "postgres-initdb" // PostgreSQL server binaries (initdb, pg_ctl); used by scripts/test
	NeoMutt        = "neomutt"         // neomutt built with TLS
	Tmux           = "tmux"            // tmux, to drive terminal clients
	SoftHSM2       = "softhsm2"        // SoftHSM v2 PKCS#11 module and softhsm2-util
	PKCS11Tool     = "pkcs11-tool"     // OpenSC's pkcs11-tool, able to load the SoftHSM module
	PDFToText      = "pdftotext"       // poppler's pdftotext
	Chromium       = "chromium"        // headless chromium (Browser drives it)
	NPM            = "npm"             // npm, to install axe-core (AxeCorePackage) for the accessibility checks
	ChromeDriver   = "chromedriver"    // chromium's WebDriver
)

// SoftHSMModule is where Debian's softhsm2 puts its PKCS#11 module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// A Tool is one capability: how to probe it and what provides it.
type Tool struct {
	Name string
	// Command is the program a test runs; Require returns its path.
	Command string
	// Packages are the Debian packages that provide the capability, the
	// needed recommends listed explicitly (the script installs with
	// --no-install-recommends).
	Packages []string
	// Pending marks a tool that no test uses yet: the script installs and
	// checks it, but a missing one only warns. A test that calls Require
	// for it makes it required; then drop the mark.
	Pending bool
	// probe checks the capability once the command is found; it returns a
	// short description (a version) or an error saying what is wrong.
	probe func(ctx context.Context, path string) (string, error)
}

// Tools is every capability, in the order the script reports them.
var Tools = []Tool{
	{Name: OpenSSL, Command: "openssl", Packages: []string{"openssl"},
		probe: outputHas([]string{"version"}, "OpenSSL 3")},
	{Name: SwaksSTARTTLS, Command: "swaks", Packages: []string{"swaks", "libnet-ssleay-perl", "libio-socket-ssl-perl"},
		probe: swaksProbe},
	{Name: XMLSec1OpenSSL, Command: "xmlsec1", Packages: []string{"xmlsec1", "libxmlsec1-openssl"},
		probe: xmlsecProbe},
	{Name: XMLLint, Command: "xmllint", Packages: []string{"libxml2-utils"},
		probe: outputHas([]string{"--version"}, "Schemas")},
	{Name: Mbsync, Command: "mbsync", Packages: []string{"isync"},
		probe: outputHas([]string{"--version"}, "isync")},
	{Name: Python3, Command: "python3", Packages: []string{"python3"},
		probe: outputHas([]string{"-c", "import imaplib, ssl, email, json, sys; print(sys.version.split()[0], ssl.OPENSSL_VERSION)"}, "OpenSSL")},
	// Debian's own python3, the one python3-aiosmtpd installs into (a
	// python3 earlier on PATH, such as pyenv's, does not see it).
	{Name: AIOSMTPD, Command: "/usr/bin/python3", Packages: []string{"python3", "python3-aiosmtpd"},
		probe: outputHas([]string{"-c", "import aiosmtpd, aiosmtpd.controller, ssl; print('aiosmtpd', aiosmtpd.__version__)"}, "aiosmtpd")},
	{Name: Curl, Command: "curl", Packages: []string{"curl"},
		probe: outputHas([]string{"--version"}, "curl")},
	{Name: PostgresInitdb, Command: "initdb", Packages: []string{"postgresql"},
		probe: outputHas([]string{"--version"}, "PostgreSQL")},
	{Name: NeoMutt, Command: "neomutt", Packages: []string{"neomutt"},
		probe: neomuttProbe},
	{Name: Tmux, Command: "tmux", Packages: []string{"tmux"},
		probe: outputHas([]string{"-V"}, "tmux")},
	{Name: SoftHSM2, Command: "softhsm2-util", Packages: []string{"softhsm2"},
		probe: softhsmProbe},
	{Name: PKCS11Tool, Command: "pkcs11-tool", Packages: []string{"opensc", "opensc-pkcs11", "softhsm2"},
		probe: pkcs11ToolProbe},
	{Name: PDFToText, Command: "pdftotext", Packages: []string{"poppler-utils"},
		probe: outputHas([]string{"-v"}, "pdftotext")},
	{Name: Chromium, Command: "chromium", Packages: []string{"chromium", "fonts-liberation"},
		probe: chromiumProbe},
	{Name: NPM, Command: "npm", Packages: []string{"npm"},
		probe: outputHas([]string{"--version"}, ".")},
	{Name: ChromeDriver, Command: "chromedriver", Packages: []string{"chromium-driver"}, Pending: true,
		probe: outputHas([]string{"--version"}, "ChromeDriver")},
}

// Lookup returns the tool named name.
func Lookup(name string) (Tool, bool) {
	i := slices.IndexFunc(Tools, func(t Tool) bool { return t.Name == name })
	if i < 0 {
		return Tool{}, false
	}
	return Tools[i], true
}

// Result is the outcome of probing one tool.
type Result struct {
	Tool
	Path    string // the command's path, when found
	Version string // what the probe reports when it succeeds
	Err     error  // why the capability is missing; nil when present
}

// Reason is a sentence a person can act on: what is missing and which
// packages to install.
func (r Result) Reason() string {
	if r.Err == nil {
		return ""
	}
	return fmt.Sprintf("%s: %v (apt-get install %s)", r.Name, r.Err, strings.Join(r.Packages, " "))
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*Result{}
)

// Probe checks one capability; results are cached for the process.
func Probe(name string) Result {
	t, ok := Lookup(name)
	if !ok {
		return Result{Tool: Tool{Name: name}, Err: fmt.Errorf("no such tool capability %q in package testtool", name)}
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if r, ok := cache[name]; ok {
		return *r
	}
	r := &Result{Tool: t}
	r.Path, r.Err = find(t.Command)
	if r.Err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		r.Version, r.Err = t.probe(ctx, r.Path)
		cancel()
	}
	cache[name] = r
	return *r
}

// Required reports whether this run must have every tool its tests use:
// under CI (CI=true) or with KEP_REQUIRE_TOOLS=1, as scripts/test sets.
func Required() bool {
	ci := strings.ToLower(os.Getenv("CI"))
	return ci == "true" || ci == "1" || os.Getenv("KEP_REQUIRE_TOOLS") == "1"
}

// Require returns the path of the command behind capability name. When the
// capability is missing it skips the test, or fails it when Required.
func Require(t testing.TB, name string) string {
	t.Helper()
	r := Probe(name)
	if r.Err != nil {
		if Required() {
			t.Fatalf("required tool missing: %s", r.Reason())
		}
		t.Skipf("tool missing, skipping: %s", r.Reason())
	}
	return r.Path
}

// Has reports whether capability name is present, for tests that only add
// cases with it. When Required, a missing capability fails the test.
func Has(t testing.TB, name string) bool {
	t.Helper()
	r := Probe(name)
	if r.Err != nil && Required() {
		t.Fatalf("required tool missing: %s", r.Reason())
	}
	return r.Err == nil
}

// Missing lists the Debian packages needed for the capabilities that are
// missing (pending ones included, so that the script installs them too).
func Missing(names ...string) []string {
	if len(names) == 0 {
		for _, t := range Tools {
			names = append(names, t.Name)
		}
	}
	var pkgs []string
	for _, n := range names {
		if r := Probe(n); r.Err != nil {
			pkgs = append(pkgs, r.Packages...)
		}
	}
	sort.Strings(pkgs)
	return slices.Compact(pkgs)
}

// find looks the command up in PATH, then, for PostgreSQL, in Debian's
// versioned directories, newest first.
func find(command string) (string, error) {
	if p, err := exec.LookPath(command); err == nil {
		return p, nil
	}
	if command == "initdb" {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
		sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[j], dirs[i]) })
		for _, p := range dirs {
			if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("command %s not found", command)
}

// versionLess orders /usr/lib/postgresql/N/... paths by N numerically.
func versionLess(a, b string) bool {
	va, vb := filepath.Base(filepath.Dir(filepath.Dir(a))), filepath.Base(filepath.Dir(filepath.Dir(b)))
	if len(va) != len(vb) {
		return len(va) < len(vb)
	}
	return va < vb
}

// run runs path with args and returns its combined output.
func run(ctx context.Context, path string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		return s, fmt.Errorf("%s %s: %v: %s", filepath.Base(path), strings.Join(args, " "), err, firstLine(s))
	}
	return s, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// lineWith returns the first line of s that contains sub, or the first
// line when none does.
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return firstLine(s)
}

// outputHas probes by running the command and looking for want in what it
// prints; the first line is the version.
func outputHas(args []string, want string) func(context.Context, string) (string, error) {
	return func(ctx context.Context, path string) (string, error) {
		out, err := run(ctx, path, args...)
		if err != nil {
			return "", err
		}
		if !strings.Contains(out, want) {
			return "", fmt.Errorf("%s %s does not mention %q: %s", filepath.Base(path), strings.Join(args, " "), want, firstLine(out))
		}
		return firstLine(out), nil
	}
}

// swaksProbe asks swaks itself whether it can STARTTLS and AUTH PLAIN:
// without libnet-ssleay-perl and libio-socket-ssl-perl it says "TLS not
// available: requires Net::SSLeay". (`swaks --support` takes no argument in
// Debian 12's swaks 20201014 and lists every feature.)
func swaksProbe(ctx context.Context, path string) (string, error) {
	out, err := run(ctx, path, "--support")
	if err != nil {
		return "", err
	}
	for _, feature := range []string{"TLS", "Basic AUTH"} {
		if !strings.Contains(out, "=== "+feature+" supported") {
			return "", fmt.Errorf("swaks --support: %s", lineWith(out, feature+" not available"))
		}
	}
	v, err := run(ctx, path, "--version")
	return firstLine(v), err
}

// xmlsecProbe requires xmlsec1 to load the openssl crypto engine
// (libxmlsec1-openssl) and to know the ECDSA and RSA key types the evidence
// uses.
func xmlsecProbe(ctx context.Context, path string) (string, error) {
	v, err := run(ctx, path, "--version")
	if err != nil {
		return "", err
	}
	if _, err := run(ctx, path, "check-key-data", "--crypto", "openssl", "rsa", "ecdsa"); err != nil {
		return "", fmt.Errorf("no openssl crypto engine: %w", err)
	}
	return firstLine(v), nil
}

// neomuttProbe requires a neomutt built with TLS (+ssl or +gnutls).
func neomuttProbe(ctx context.Context, path string) (string, error) {
	out, err := run(ctx, path, "-v")
	if err != nil {
		return "", err
	}
	if !strings.Contains(out, "+ssl") && !strings.Contains(out, "+gnutls") {
		return "", fmt.Errorf("neomutt is built without TLS")
	}
	return firstLine(out), nil
}

// softhsmProbe requires the utility and the PKCS#11 module.
func softhsmProbe(ctx context.Context, path string) (string, error) {
	v, err := run(ctx, path, "--version")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(SoftHSMModule); err != nil {
		return "", fmt.Errorf("PKCS#11 module: %w", err)
	}
	return "softhsm " + firstLine(v), nil
}

// pkcs11ToolProbe requires pkcs11-tool to load the SoftHSM module.
func pkcs11ToolProbe(ctx context.Context, path string) (string, error) {
	if _, err := os.Stat(SoftHSMModule); err != nil {
		return "", fmt.Errorf("PKCS#11 module: %w", err)
	}
	out, err := run(ctx, path, "--module", SoftHSMModule, "--show-info")
	if err != nil {
		return "", err
	}
	return lineWith(out, "Library"), nil
}

// chromiumProbe renders a page headless.
func chromiumProbe(ctx context.Context, path string) (string, error) {
	v, err := run(ctx, path, "--version")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "kep-chromium-probe")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	out, err := run(ctx, path, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+dir, "--dump-dom", "data:text/html,<p>kep-probe</p>")
	if err != nil {
		return "", err
	}
	if !strings.Contains(out, "kep-probe") {
		return "", fmt.Errorf("headless chromium rendered nothing: %s", firstLine(out))
	}
	return lineWith(v, "Chromium"), nil
}
