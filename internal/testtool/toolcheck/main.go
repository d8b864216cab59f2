// Command toolcheck reports, for scripts/test, which tool capabilities the
// tests use are present (package testtool's table) and which Debian
// packages provide the missing ones.
//
//	toolcheck            # one line per tool; exit 1 when a required one is missing
//	toolcheck -packages  # the Debian packages to install, one line, space separated
//	toolcheck -path NAME # the path of the command behind one capability
//	toolcheck -axe       # the npm prefix and the package of axe-core: DIR axe-core@VERSION
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kephs/kep/internal/testtool"
)

func main() {
	packages := flag.Bool("packages", false, "print the Debian packages that provide the missing capabilities")
	path := flag.String("path", "", "print the path of the command behind this capability")
	axe := flag.Bool("axe", false, "print the npm prefix that holds axe-core and the package to install there")
	flag.Parse()
	switch {
	case *axe:
		fmt.Println(testtool.AxeCoreDir(), testtool.AxeCorePackage)
	case *packages:
		fmt.Println(strings.Join(testtool.Missing(), " "))
	case *path != "":
		r := testtool.Probe(*path)
		if r.Err != nil {
			fmt.Fprintln(os.Stderr, "toolcheck:", r.Reason())
			os.Exit(1)
		}
		fmt.Println(r.Path)
	default:
		failed := false
		for _, t := range testtool.Tools {
			r := testtool.Probe(t.Name)
			switch {
			case r.Err == nil:
				fmt.Printf("  ok       %-16s %s\n", t.Name, short(r.Version))
			case t.Pending:
				fmt.Printf("  PENDING  %-16s missing, but no test uses it yet, so the run goes on: %s\n", t.Name, r.Reason())
			default:
				fmt.Printf("  MISSING  %-16s %s\n", t.Name, r.Reason())
				failed = true
			}
		}
		if failed {
			os.Exit(1)
		}
	}
}

// short keeps a version line readable (curl's lists every library).
func short(s string) string {
	if len(s) > 72 {
		return s[:72] + "…"
	}
	return s
}
