package web

import (
	"strings"
	"testing"
)

// TestHTMLPolicy: the message HTML policy keeps nothing that runs, loads,
// restyles the page or submits anywhere, however it is spelled.
func TestHTMLPolicy(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"svg script", `<svg><script>alert(1)</script></svg>`},
		{"svg onload", `<svg onload="alert(1)"></svg>`},
		{"svg use", `<svg><use href="data:image/svg+xml,&lt;svg id='x' xmlns='http://www.w3.org/2000/svg'&gt;&lt;/svg&gt;#x"/></svg>`},
		{"math mutation", `<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>`},
		{"noscript mutation", `<noscript><p title="</noscript><img src=x onerror=alert(1)>">`},
		{"form", `<form action="https://evil.example/"><input name=p><button>go</button></form>`},
		{"data link", `<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>`},
		{"entity javascript", `<a href="&#106;avascript:alert(1)">x</a>`},
		{"tab javascript", "<a href=\"java\tscript:alert(1)\">x</a>"},
		{"vbscript", `<a href="vbscript:msgbox(1)">x</a>`},
		{"style attribute url", `<div style="background:url(https://evil.example/t.png)">x</div>`},
		{"style element import", `<style>@import url(https://evil.example/x.css);</style>`},
		{"table background", `<table background="https://evil.example/t.png"><tr><td>x</td></tr></table>`},
		{"base", `<base href="https://evil.example/">`},
		{"meta refresh", `<meta http-equiv="refresh" content="0;url=https://evil.example/">`},
		{"link stylesheet", `<link rel="stylesheet" href="https://evil.example/x.css">`},
		{"object", `<object data="https://evil.example/x.swf"></object>`},
		{"input autofocus", `<input autofocus onfocus="alert(1)">`},
		{"id clobbering", `<p id="csrf" name="csrf">x</p>`},
		{"class", `<p class="flash error">Hesabınız kapatıldı</p>`},
		{"target top", `<a href="https://evil.example/" target="_top">x</a>`},
		{"srcset", `<img srcset="https://evil.example/a.png 1x">`},
		{"formaction", `<button formaction="https://evil.example/">x</button>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := strings.ToLower(htmlPolicy.Sanitize(tc.in))
			for _, bad := range []string{"<script", "onload", "onerror", "onfocus", "<svg", "<use", "<form", "<input", "<button", "formaction",
				"data:", "javascript", "vbscript", "style", "background", "<base", "<meta", "<link", "<object", "<img", "srcset", "evil.example/t.png",
				"evil.example/x", "id=", "name=", "class=", "_top"} {
				if strings.Contains(out, bad) {
					t.Errorf("%q keeps %q: %q", tc.in, bad, out)
				}
			}
		})
	}
}
