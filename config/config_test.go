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
