// Command testtime copies `go test` output from stdin to stdout and, at the
// end, prints the time each package took, slowest first, with the sum and
// the wall time, so that scripts/test shows where the suite's budget goes.
// It exits 1 when a package failed or the output names no package.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

type pkg struct {
	name, status string
	secs         float64
	cached       bool
}

func main() {
	label := "go test"
	if len(os.Args) > 1 {
		label = strings.Join(os.Args[1:], " ")
	}
	start := time.Now()
	var pkgs []pkg
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Println(line)
		if p, ok := parse(line); ok {
			pkgs = append(pkgs, p)
		}
	}
	wall := time.Since(start)
	sort.SliceStable(pkgs, func(i, j int) bool { return pkgs[i].secs > pkgs[j].secs })
	var sum float64
	failed := false
	fmt.Printf("\n--- time per package (%s)\n", label)
	for _, p := range pkgs {
		sum += p.secs
		note := ""
		if p.cached {
			note = " (cached)"
		}
		if p.status != "ok" {
			failed = true
		}
		fmt.Printf("%-5s %8.1fs  %s%s\n", p.status, p.secs, p.name, note)
	}
	fmt.Printf("--- %d packages, %.1fs summed, %s wall\n", len(pkgs), sum, wall.Round(100*time.Millisecond))
	if failed || len(pkgs) == 0 {
		os.Exit(1)
	}
}

// parse reads go test's package summary lines:
//
//	ok  	github.com/kephs/kep/store	12.345s
//	ok  	github.com/kephs/kep/store	(cached)
//	FAIL	github.com/kephs/kep/store	3.210s
//	FAIL	github.com/kephs/kep/store [build failed]
//	?   	github.com/kephs/kep/pki	[no test files]
func parse(line string) (pkg, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || (f[0] != "ok" && f[0] != "FAIL") || !strings.Contains(f[1], "/") {
		return pkg{}, false
	}
	p := pkg{name: f[1], status: f[0]}
	if len(f) >= 3 {
		switch {
		case f[2] == "(cached)":
			p.cached = true
		case strings.HasSuffix(f[2], "s"):
			p.secs, _ = strconv.ParseFloat(strings.TrimSuffix(f[2], "s"), 64)
		}
	}
	return p, true
}
