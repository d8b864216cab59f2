// Command gen rewrites the key tables of docs/configuration.md from the
// table of keys in package config (config/keys.go), so that the reference,
// the file `kep init` writes and the defaults in code cannot disagree.
//
//	go generate ./config/        (or: go run ./config/gen docs/configuration.md)
package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/kephs/kep/config"
)

func main() {
	path := "docs/configuration.md"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	if err := run(path); err != nil {
		fmt.Fprintln(os.Stderr, "config/gen:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := config.Reference(doc)
	if err != nil {
		return err
	}
	if bytes.Equal(doc, out) {
		return nil
	}
	fmt.Fprintf(os.Stderr, "config/gen: %s updated\n", path)
	return os.WriteFile(path, out, 0o644)
}
