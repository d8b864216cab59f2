package testtool

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A Browser is a headless Chromium (Debian's chromium package) that a test
// drives through the DevTools protocol with github.com/chromedp/chromedp: one
// tab, with helpers that fail the test with what they were doing. The page's
// console messages and uncaught exceptions go to the test log, and Console
// returns them. The browser stops when the test ends.
type Browser struct {
	t   testing.TB
	ctx context.Context // the tab; it has run once
	// Timeout bounds each helper call (default 30 s: CI machines are shared).
	Timeout time.Duration

	mu      sync.Mutex
	console []string
	ended   bool
}

// BrowserOptions tune a Browser.
type BrowserOptions struct {
	// Trust lists certificates the browser accepts in a server's chain
	// although it knows no CA that issued them: a test server's
	// self-signed one, or a CA such as the demo's provider CA when the
	// servers send it in their chain. Their public keys are pinned with
	// --ignore-certificate-errors-spki-list, so no other bad certificate
	// passes.
	Trust []*x509.Certificate
	// Lang is the browser's language, sent as Accept-Language (default "tr").
	Lang string
	// Width and Height are the window's size in CSS pixels (default
	// 1280×900; a phone is 390×844).
	Width, Height int
}

// NewBrowser starts headless Chromium for t. Chromium missing, or unable to
// start, skips the test, or fails it when tools are Required (scripts/test,
// CI). Starting it is the probe: the tool table's (a second start) costs
// seconds on a loaded machine.
func NewBrowser(t testing.TB, o BrowserOptions) *Browser {
	t.Helper()
	tool, _ := Lookup(Chromium)
	missing := func(err error) {
		t.Helper()
		reason := Result{Tool: tool, Err: err}.Reason()
		if Required() {
			t.Fatalf("required tool missing: %s", reason)
		}
		t.Skipf("tool missing, skipping: %s", reason)
	}
	path, err := find(tool.Command)
	if err != nil {
		missing(err)
	}
	if o.Lang == "" {
		o.Lang = "tr"
	}
	if o.Width == 0 || o.Height == 0 {
		o.Width, o.Height = 1280, 900
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(o.Width, o.Height),
		// Tests run as root in CI, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.Flag("lang", o.Lang),
		chromedp.Flag("accept-lang", o.Lang),
	)
	if len(o.Trust) > 0 {
		pins := make([]string, len(o.Trust))
		for i, c := range o.Trust {
			sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
			pins[i] = base64.StdEncoding.EncodeToString(sum[:])
		}
		opts = append(opts, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(pins, ",")))
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	b := &Browser{t: t, ctx: ctx, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		b.mu.Lock()
		b.ended = true
		b.mu.Unlock()
		stop, cancelStop := context.WithTimeout(ctx, 10*time.Second)
		chromedp.Cancel(stop)
		cancelStop()
		cancel()
		cancelAlloc()
	})
	// The first Run starts the browser; it must not have a deadline.
	if err := chromedp.Do(ctx); err != nil {
		missing(fmt.Errorf("headless %s does not start: %w", path, err))
	}
	go b.readConsole()
	return b
}

func (b *Browser) readConsole() {
	for m, err := range chromedp.Console(b.ctx) {
		if err != nil {
			return
		}
		line := fmt.Sprintf("%s: %s", m.Type, m.Text)
		if m.URL != "" {
			line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
		}
		b.mu.Lock()
		b.console = append(b.console, line)
		if !b.ended {
			b.t.Logf("browser console %s", line)
		}
		b.mu.Unlock()
	}
}

// Console returns the page's console messages so far, one a line: type,
// text and where it came from.
func (b *Browser) Console() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// Context is the tab's context, for chromedp actions the helpers lack.
func (b *Browser) Context() context.Context { return b.ctx }

// Do runs chromedp actions with the helpers' timeout; what names them in a
// failure.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

func (b *Browser) fail(what string, err error) {
	b.t.Helper()
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w after %v", err, b.Timeout)
	}
	b.t.Fatalf("browser: %s: %v", what, err)
}

func browserRun[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.fail(what, err)
	}
	return v
}

// Navigate loads url and waits for its load event.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	b.Do("open "+url, chromedp.Navigate(url))
}

// WaitVisible waits until the element that the CSS selector sel finds is
// visible.
func (b *Browser) WaitVisible(sel string) {
	b.t.Helper()
	b.Do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// Fill types value into the form field sel, replacing what it held, as a
// user would (key events, so that input handlers run).
func (b *Browser) Fill(sel, value string) {
	b.t.Helper()
	b.Do("fill "+sel, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), value))
}

// Click clicks the element sel.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.Do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// Upload sets the files of the input[type=file] sel, as a user picking
// them; paths are files on this machine.
func (b *Browser) Upload(sel string, paths ...string) {
	b.t.Helper()
	abs := make([]string, len(paths))
	for i, p := range paths {
		var err error
		if abs[i], err = filepath.Abs(p); err != nil {
			b.t.Fatal(err)
		}
	}
	b.Do("upload to "+sel, chromedp.SetUploadFiles(chromedp.CSS(sel), abs))
}

// Text returns the visible text of the element sel.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return browserRun(b, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// WaitFor waits until the JavaScript expression js is truthy.
func (b *Browser) WaitFor(js string) {
	b.t.Helper()
	browserRun(b, "wait for "+js, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(b.Timeout)))
}

// Eval runs the JavaScript expression js in the page, waiting for a promise,
// and returns its value decoded as T.
func Eval[T any](b *Browser, js string) T {
	b.t.Helper()
	return browserRun(b, "evaluate "+js, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// Screenshot saves the whole page (beyond the window) as a PNG file.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	png := browserRun(b, "screenshot", chromedp.FullScreenshot(100))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// AxeCorePackage is the axe-core release (from npm) that Axe injects.
// scripts/test installs it into AxeCoreDir with `npm install --prefix`.
const AxeCorePackage = "axe-core@4.14.1"

// AxeCoreDir is the npm prefix that holds AxeCorePackage: $KEP_AXE_DIR, or
// a directory per release in the user's cache, kept between runs.
func AxeCoreDir() string {
	if d := os.Getenv("KEP_AXE_DIR"); d != "" {
		return d
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "kep-test", strings.ReplaceAll(AxeCorePackage, "@", "-"))
}

// An AxeViolation is one rule axe-core found broken, with the elements
// (CSS selectors) that break it.
type AxeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"` // minor, moderate, serious, critical
	Help    string   `json:"help"`
	HelpURL string   `json:"helpUrl"`
	Nodes   []string `json:"nodes"`
}

func (v AxeViolation) String() string {
	return fmt.Sprintf("%s (%s): %s, at %s; see %s", v.ID, v.Impact, v.Help, strings.Join(v.Nodes, " | "), v.HelpURL)
}

// Axe runs axe-core on the current page and returns the serious and
// critical violations (issue 14: the main pages have none). axe-core
// missing skips the test, or fails it when tools are Required.
func (b *Browser) Axe() []AxeViolation {
	b.t.Helper()
	path := filepath.Join(AxeCoreDir(), "node_modules", "axe-core", "axe.min.js")
	src, err := os.ReadFile(path)
	if err != nil {
		reason := fmt.Sprintf("axe-core: %v (scripts/test installs it: npm install --prefix %s %s)", err, AxeCoreDir(), AxeCorePackage)
		if Required() {
			b.t.Fatalf("required tool missing: %s", reason)
		}
		b.t.Skipf("tool missing, skipping: %s", reason)
	}
	// Injected through the DevTools protocol, which the page's
	// Content-Security-Policy does not govern.
	browserRun(b, "inject axe-core", chromedp.Evaluate[chromedp.Void](string(src)))
	all := Eval[[]AxeViolation](b, `axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
		id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
		nodes: v.nodes.map(n => n.target.join(' '))})))`)
	var bad []AxeViolation
	for _, v := range all {
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, v)
		}
	}
	return bad
}

// CheckAccessible fails the test with every serious or critical axe-core
// violation of the current page.
func (b *Browser) CheckAccessible() {
	b.t.Helper()
	for _, v := range b.Axe() {
		b.t.Errorf("accessibility: %s", v)
	}
}
