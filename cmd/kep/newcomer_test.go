package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kephs/kep/demo"
)

// The CLI as a newcomer meets it (issue 10, point 5): each friction point
// that was found has a case here, run against the built binary.

// noRepeatedPrefix fails when an error line repeats its prefix, as in
// "kep init: init: …" or "kep send: kep: …".
func noRepeatedPrefix(t *testing.T, stderr string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^kep ([a-z-]+(?: [a-z-]+)?): (?:kep\b|([a-z-]+): )`)
	for _, m := range re.FindAllStringSubmatch(stderr, -1) {
		words := strings.Fields(m[1])
		if m[2] == "" || m[2] == words[0] || m[2] == words[len(words)-1] {
			t.Errorf("an error repeats its prefix: %q", m[0])
		}
	}
}

func TestHelpIsTheSameEverywhere(t *testing.T) {
	cli := newLogCLI(t)
	_, top, _ := cli.run("help")
	for _, args := range [][]string{{"-h"}, {"--help"}} {
		code, out, errs := cli.run(args...)
		if code != 0 || out != top || errs != "" {
			t.Errorf("kep %s: exit %d, stderr %q; want `kep help`'s text on stdout", args[0], code, errs)
		}
	}
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(top, "\n  "+c.name+" ") {
				t.Errorf("kep help does not list %q", c.name)
			}
			name := strings.Fields(c.name)
			code, viaHelp, errs := cli.run(append([]string{"help"}, name...)...)
			if code != 0 || errs != "" {
				t.Fatalf("kep help %s: exit %d, stderr %q", c.name, code, errs)
			}
			code, viaH, errs := cli.run(append(name, "-h")...)
			if code != 0 || errs != "" {
				t.Fatalf("kep %s -h: exit %d, stderr %q", c.name, code, errs)
			}
			if viaHelp != viaH {
				t.Errorf("kep help %s and kep %s -h differ:\n%s\n----\n%s", c.name, c.name, viaHelp, viaH)
			}
			if !strings.HasPrefix(viaH, "Usage: kep "+c.name) || !strings.Contains(viaH, c.summary) {
				t.Errorf("kep %s -h does not start with its usage and summary:\n%s", c.name, viaH)
			}
			// Whoever names a provider with --config or --dir may name a
			// demo world's with --demo.
			if strings.Contains(viaH, "\n  -config ") && !strings.Contains(viaH, "\n  -demo ") {
				t.Errorf("kep %s takes --config but not --demo", c.name)
			}
		})
	}
	// Each lifecycle action lists the flags it uses, and no other.
	for _, tc := range []struct {
		cmd         string
		has, hasNot []string
	}{
		{"activate", nil, []string{"-by", "-reason"}},
		{"verify", []string{"-by"}, []string{"-reason"}},
		{"suspend", []string{"-reason"}, []string{"-by"}},
		{"close", []string{"-reason"}, []string{"-by"}},
	} {
		out := cli.must("account", tc.cmd, "-h")
		for _, f := range tc.has {
			if !strings.Contains(out, "\n  "+f+" ") {
				t.Errorf("kep account %s -h does not list %s", tc.cmd, f)
			}
		}
		for _, f := range tc.hasNot {
			if strings.Contains(out, "\n  "+f+" ") {
				t.Errorf("kep account %s -h lists %s, which it does not use", tc.cmd, f)
			}
		}
	}
	// A group's help lists its commands.
	if out := cli.must("help", "account"); out != cli.must("account", "-h") || !strings.Contains(out, "account create") {
		t.Errorf("kep help account:\n%s", out)
	}
}

func TestUsageMistakes(t *testing.T) {
	cli := newLogCLI(t)
	dir := filepath.Join(t.TempDir(), "hs01")
	cli.must("init", "--dir", dir, "--provider", "hs01")
	notBundle := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notBundle, []byte("not a bundle\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plainZip := filepath.Join(t.TempDir(), "photos.zip")
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("photo.txt")
	w.Write([]byte("not evidence\n"))
	zw.Close()
	if err := os.WriteFile(plainZip, zb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in the one line of stderr
	}{
		{"mistyped flag", []string{"send", "--tp", "x"}, 2, []string{"kep send: flag provided but not defined: -tp", "`kep send -h`"}},
		{"mistyped flag, two words", []string{"account", "list", "--dir", dir, "--statu", "x"}, 2, []string{"-statu", "`kep account list -h`"}},
		{"bogus status", []string{"account", "list", "--dir", dir, "--status", "bogus"}, 2, []string{`"bogus"`, "applied, verified, active, suspended, closed"}},
		{"not a bundle", []string{"verify", notBundle, "--anchors", filepath.Join(dir, "anchors")}, 2, []string{"not an evidence bundle"}},
		{"a ZIP that is not a bundle", []string{"verify", plainZip, "--anchors", filepath.Join(dir, "anchors")}, 2, []string{"not an evidence bundle"}},
		{"init twice", []string{"init", "--dir", dir, "--provider", "hs01"}, 1, []string{"kep init: ", "exists already"}},
		{"bad domain", []string{"init", "--dir", filepath.Join(t.TempDir(), "x"), "--provider", "hs01", "--domain", "example.com"}, 1, []string{"kep init: "}},
		{"missing argument", []string{"account", "show", "--dir", dir}, 2, []string{"want one ADDRESS", "`kep account show -h`"}},
		{"two providers named", []string{"account", "list", "--dir", dir, "--config", filepath.Join(dir, "kep.toml")}, 2, []string{"--config and --dir"}},
		{"unknown command", []string{"acount"}, 2, []string{"unknown command", "kep help"}},
		{"incomplete command", []string{"account"}, 2, []string{"want one of", "create"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := cli.run(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
			if out != "" {
				t.Errorf("a mistake printed on stdout:\n%s", out)
			}
			if n := strings.Count(errs, "\n"); n != 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", n, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errs)
				}
			}
			noRepeatedPrefix(t, errs)
		})
	}
	// kep init writes the anchors directory of the demo's layout.
	for _, f := range []string{"provider-ca.pem", "tsa-ca.pem", "log.pub", "esign-ca.pem"} {
		if _, err := os.Stat(filepath.Join(dir, "anchors", f)); err != nil {
			t.Errorf("kep init wrote no anchors/%s: %v", f, err)
		}
	}
}

// TestDemoFlag: every command that names a provider takes --demo DIR, and
// --as a company says that it sends through its operators.
func TestDemoFlag(t *testing.T) {
	cli := newLogCLI(t)
	wdir := filepath.Join(t.TempDir(), "world")
	// The commands below need the world's files, not its servers: a start
	// that loses a free port to a parallel test (demo picks free ports
	// before its node binds them) still leaves a complete world.
	w, err := demo.Start(context.Background(), wdir, demo.Options{})
	if err == nil {
		err = w.Close()
	}
	if _, lerr := demo.Load(wdir); lerr != nil {
		t.Fatal(err, lerr)
	}
	out := cli.must("account", "list", "--demo", wdir)
	if !strings.Contains(out, "ayse.yilmaz@hs01.kep.tr") {
		t.Errorf("kep account list --demo:\n%s", out)
	}
	cli.must("operator", "list", "--demo", wdir, "--provider", "hs01", "denizlojistik@hs01.kep.tr")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown provider", []string{"account", "list", "--demo", wdir, "--provider", "hs07"}, []string{`no provider "hs07"`, "hs01"}},
		{"no world", []string{"account", "list", "--demo", filepath.Join(wdir, "nothing")}, []string{"no demo world", "kep demo --dir"}},
		{"a company", []string{"send", "--demo", wdir, "--as", "deniz", "--to", "ayse.yilmaz@hs01.kep.tr", "--body", "x"},
			[]string{"company", "through its operators", "--as zeynep", "emre", "no send grant"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := cli.run(tc.args...)
			if code == 0 {
				t.Fatalf("exit 0")
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errs)
				}
			}
			noRepeatedPrefix(t, errs)
		})
	}
}

// TestDemoSaysWhichPortsItReplaced holds the demo's fixed SMTP submission
// port (or finds it held already) while `kep demo` creates a world: the
// demo must print the replacement, at creation and again at the next start,
// and its tour must name the CA to trust and each password's field.
func TestDemoSaysWhichPortsItReplaced(t *testing.T) {
	cli := newLogCLI(t)
	if l, err := net.Listen("tcp", "127.0.0.1:10587"); err == nil {
		defer l.Close()
	}
	dir := filepath.Join(t.TempDir(), "world")
	first := runDemo(t, cli, dir)
	for _, want := range []string{
		"Some fixed ports were taken", "SMTP submission (STARTTLS)", "127.0.0.1:10587 -> 127.0.0.1:",
		filepath.Join(dir, "anchors", "provider-ca.pem"), "accounts[0].password", "accounts[1].password", "operators[0].password",
		"no login: used through its operators",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("the first start does not say %q:\n%s", want, first)
		}
	}
	info, err := demo.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if sub := info.Providers[0].Endpoints.Submission; sub == "127.0.0.1:10587" || !strings.Contains(first, "127.0.0.1:10587 -> "+sub) {
		t.Errorf("submission is on %s; the demo said:\n%s", sub, first)
	}
	second := runDemo(t, cli, dir)
	if !strings.Contains(second, "does not use every usual port") || !strings.Contains(second, "127.0.0.1:10587 -> "+info.Providers[0].Endpoints.Submission) {
		t.Errorf("a later start does not repeat the replaced port:\n%s", second)
	}
}

// runDemo starts `kep demo --dir dir`, returns what it printed up to the end
// of its tour, and stops it.
func runDemo(t *testing.T, cli *logCLI, dir string) string {
	t.Helper()
	cmd := exec.Command(cli.bin, "demo", "--dir", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	lines := make(chan string, 4096) // never blocks the reader once the test stops listening
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var b strings.Builder
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("kep demo stopped:\n%s", b.String())
			}
			b.WriteString(l + "\n")
			if strings.Contains(l, "Stop with Ctrl-C") {
				return b.String()
			}
		case <-timeout:
			t.Fatalf("kep demo printed no tour in 2 minutes:\n%s", b.String())
		}
	}
}
