// Command gen builds the browser signer into web/static: kepsign.wasm (the
// command in web/wasm, built with GOOS=js GOARCH=wasm) and wasm_exec.js
// (the Go runtime's JavaScript half, copied from $(go env GOROOT)/lib/wasm,
// which must come from the same Go release as the .wasm). The build is
// reproducible (-trimpath, -buildvcs=false, no symbols: -ldflags=-s -w), so
// that a test can rebuild it and fail when the committed files are stale.
//
//	go generate ./web/static/                 # runs: go run ../wasm/gen
//	go run ./web/wasm/gen -check web/static   # exit 1 when stale
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const pkg = "github.com/kephs/kep/web/wasm"

func main() {
	check := flag.Bool("check", false, "only report whether the files in DIR are up to date (exit 1 when stale)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./web/wasm/gen [-check] [DIR]   (DIR: web/static; default: the current directory)")
	}
	flag.Parse()
	dir := "."
	if flag.NArg() > 0 {
		dir = flag.Arg(0)
	}
	stale, err := run(dir, *check)
	if err != nil {
		fmt.Fprintln(os.Stderr, "web/wasm/gen:", err)
		os.Exit(2)
	}
	if *check && len(stale) > 0 {
		v, _ := goOutput("env", "GOVERSION")
		fmt.Fprintf(os.Stderr, "web/wasm/gen: %s stale for %s: run go generate ./web/static/ and commit the result\n", strings.Join(stale, " and "), v)
		os.Exit(1)
	}
}

// run builds both files and writes those that differ from dir's (or, with
// check, only names them).
func run(dir string, check bool) (stale []string, err error) {
	tmp, err := os.MkdirTemp("", "kepsign-gen")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	wasm := filepath.Join(tmp, "kepsign.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", wasm, pkg)
	// Only what decides the bytes: the target, no cgo, and no GOFLAGS or
	// GOWASM from the caller's environment.
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=", "GOWASM=")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build %s for js/wasm: %w", pkg, err)
	}
	built, err := os.ReadFile(wasm)
	if err != nil {
		return nil, err
	}
	goroot, err := goOutput("env", "GOROOT")
	if err != nil {
		return nil, err
	}
	execJS, err := os.ReadFile(filepath.Join(goroot, "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return nil, fmt.Errorf("the Go release's wasm_exec.js: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"kepsign.wasm", built}, {"wasm_exec.js", execJS}} {
		path := filepath.Join(dir, f.name)
		if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, f.data) {
			continue
		}
		stale = append(stale, path)
		if check {
			continue
		}
		if err := os.WriteFile(path, f.data, 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "web/wasm/gen: %s updated (%d bytes)\n", path, len(f.data))
	}
	return stale, nil
}

func goOutput(args ...string) (string, error) {
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
