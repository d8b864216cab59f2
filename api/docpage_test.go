package api

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestDocPageCSP: the API's HTML page allows no inline style or script by
// 'unsafe-inline': each inline style element is allowed by its hash, there
// is no style attribute or script, and the page may not be framed.
func TestDocPageCSP(t *testing.T) {
	rec := httptest.NewRecorder()
	(&Server{}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/", nil))
	csp, body := rec.Header().Get("Content-Security-Policy"), rec.Body.String()
	for _, bad := range []string{"unsafe-inline", "unsafe-eval"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q holds %s", csp, bad)
		}
	}
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %s", csp, want)
		}
	}
	if regexp.MustCompile(`(?i)<script|\sstyle=|\son[a-z]+=`).MatchString(body) {
		t.Error("the page holds a script, a style attribute or an event handler")
	}
	styles := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindAllStringSubmatch(body, -1)
	if len(styles) == 0 {
		t.Fatal("no style element: test the page's new form")
	}
	for _, m := range styles {
		sum := sha256.Sum256([]byte(m[1]))
		if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, h) {
			t.Errorf("the style element's hash %s is not in the CSP %q: the browser would drop it", h, csp)
		}
	}
}
