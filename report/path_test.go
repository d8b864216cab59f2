package report

import (
	"net/url"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		path, id, kind string
		ok             bool
	}{
		{"/report/1733.42@client.example.pdf", "1733.42@client.example", "pdf", true},
		{"/report/" + url.PathEscape("a/b c@x") + ".html", "a/b c@x", "html", true},
		{"/report/a:b@x.png", "a:b@x", "png", true},
		{"/report/abc@x.doc", "", "", false},
		{"/report/.pdf", "", "", false},
		{"/report/abc", "", "", false},
		{"/report/%3Cabc@x%3E.pdf", "", "", false}, // angle brackets are not part of the id
		{"/report/%zz.pdf", "", "", false},
		{"/other/abc@x.pdf", "", "", false},
	} {
		id, kind, ok := parsePath(tc.path)
		if id != tc.id || kind != tc.kind || ok != tc.ok {
			t.Errorf("parsePath(%q) = %q %q %v, want %q %q %v", tc.path, id, kind, ok, tc.id, tc.kind, tc.ok)
		}
	}
}

// FuzzParsePath: an accepted path names a non-empty id without angle
// brackets or line breaks, and escaping that id again finds it again.
func FuzzParsePath(f *testing.F) {
	f.Add("/report/1733.42@client.example.pdf")
	f.Add("/report/a%2Fb.html")
	f.Fuzz(func(t *testing.T, path string) {
		id, kind, ok := parsePath(path)
		if !ok {
			return
		}
		if id == "" || strings.ContainsAny(id, "<>\r\n") {
			t.Fatalf("parsePath(%q) accepted id %q", path, id)
		}
		id2, kind2, ok2 := parsePath("/report/" + url.PathEscape(id) + "." + kind)
		if !ok2 || id2 != id || kind2 != kind {
			t.Fatalf("round trip of %q: %q %q %v", id, id2, kind2, ok2)
		}
	})
}
