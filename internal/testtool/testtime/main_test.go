package main

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
		want pkg
	}{
		{"ok  \tgithub.com/kephs/kep/store\t12.345s", true, pkg{name: "github.com/kephs/kep/store", status: "ok", secs: 12.345}},
		{"ok  \tgithub.com/kephs/kep/store\t(cached)", true, pkg{name: "github.com/kephs/kep/store", status: "ok", cached: true}},
		{"FAIL\tgithub.com/kephs/kep/imapd\t3.2s", true, pkg{name: "github.com/kephs/kep/imapd", status: "FAIL", secs: 3.2}},
		{"FAIL\tgithub.com/kephs/kep/imapd [build failed]", true, pkg{name: "github.com/kephs/kep/imapd", status: "FAIL"}},
		{"?   \tgithub.com/kephs/kep/pki\t[no test files]", false, pkg{}},
		{"--- FAIL: TestX (0.01s)", false, pkg{}},
		{"FAIL", false, pkg{}},
		{"ok", false, pkg{}},
	} {
		got, ok := parse(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parse(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}
