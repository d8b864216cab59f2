package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRenderLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	c := Default(dir, "hs07", "hs07.kep.tr")
	c.TSA.URL = "http://tsa.example/ts"
	b, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kep.toml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, c)
	}
	// Every key is documented: each key line follows a comment line.
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.Contains(l, " = ") && !strings.HasPrefix(l, "#") {
			j := i - 1
			for j >= 0 && !strings.HasPrefix(lines[j], "#") && strings.Contains(lines[j], " = ") {
				j--
			}
			if j < 0 || !strings.HasPrefix(lines[j], "#") {
				t.Errorf("key without a comment: %s", l)
			}
		}
	}
	if got.DSN() != "sqlite:"+filepath.Join(dir, "data/kep.db") {
		t.Fatalf("DSN = %s", got.DSN())
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "kep init") {
		t.Fatalf("missing file: %v", err)
	}
	p := filepath.Join(dir, "bad.toml")
	os.WriteFile(p, []byte("[provider]\nid = \"hs01\"\ndomain = \"hs01.kep.tr\"\ncolour = 1\n"), 0o600)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "unknown key provider.colour") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestDefaultsFollowTheDomain(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kep.toml")
	os.WriteFile(p, []byte("[provider]\nid = \"hs05\"\ndomain = \"hs05.kep.tr\"\n"), 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Origin != "hs05.kep.tr/log" || c.SMTP.Hostname != "mail.hs05.kep.tr" || c.Provider.Name != "HS05 KEP" || !strings.Contains(c.Provider.Policy, "hs05.kep.tr") {
		t.Fatalf("derived defaults: %+v", c)
	}
}

// TestEveryKeyDocumented: every field of Config is in KeyTable, and every
// entry of KeyTable is a field, so that the file `kep init` writes and
// docs/configuration.md cover every key.
func TestEveryKeyDocumented(t *testing.T) {
	documented := map[string]bool{}
	for _, k := range KeyTable {
		name := k.Section + "." + k.Name
		if documented[name] {
			t.Errorf("%s is twice in KeyTable", name)
		}
		documented[name] = true
		if k.Type == "" || k.Comment == "" || k.Doc == "" {
			t.Errorf("%s: KeyTable needs its type, comment and doc", name)
		}
		sectionKnown := false
		for _, s := range Sections {
			sectionKnown = sectionKnown || s.Name == k.Section
		}
		if !sectionKnown {
			t.Errorf("%s: section [%s] is not in Sections", name, k.Section)
		}
	}
	ct := reflect.TypeOf(Config{})
	for i := 0; i < ct.NumField(); i++ {
		sec := ct.Field(i).Tag.Get("toml")
		if sec == "" || sec == "-" {
			continue
		}
		st := ct.Field(i).Type
		for j := 0; j < st.NumField(); j++ {
			key := strings.Split(st.Field(j).Tag.Get("toml"), ",")[0]
			if key == "" || key == "-" {
				continue
			}
			if !documented[sec+"."+key] {
				t.Errorf("%s.%s has no entry in KeyTable (config/keys.go): add one, then run go generate ./config/", sec, key)
			}
			delete(documented, sec+"."+key)
		}
	}
	for name := range documented {
		t.Errorf("KeyTable documents %s, which Config does not have", name)
	}
}

// TestReferenceUpToDate: the key tables of docs/configuration.md are what
// KeyTable and Default give.
func TestReferenceUpToDate(t *testing.T) {
	path := filepath.Join("..", "docs", "configuration.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Reference(doc)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(doc) {
		dl, wl := strings.Split(string(doc), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(dl) && i < len(wl); i++ {
			if dl[i] != wl[i] {
				t.Fatalf("docs/configuration.md is stale (line %d: have %q, want %q): run go generate ./config/", i+1, dl[i], wl[i])
			}
		}
		t.Fatal("docs/configuration.md is stale: run go generate ./config/")
	}
}

// TestRenderedFileFollowsTheTable: the file kep init writes has every key
// of KeyTable, in order, each under its comment from the table.
func TestRenderedFileFollowsTheTable(t *testing.T) {
	b, err := Default(t.TempDir(), "hs01", "hs01.kep.tr").Render()
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, k := range KeyTable {
		block := "# " + strings.ReplaceAll(k.Comment, "\n", "\n# ") + "\n" + k.Name + " = "
		if !strings.Contains(text, block) {
			t.Errorf("%s.%s: the file does not have its comment and key:\n%s", k.Section, k.Name, block)
		}
	}
	if !strings.Contains(text, `deemed_read_standart = "24h"`) {
		t.Errorf("durations are not written short:\n%s", text)
	}
}
