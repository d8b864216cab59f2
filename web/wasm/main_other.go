//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

// main says how this command is built: it runs only in a browser.
func main() {
	fmt.Fprintln(os.Stderr, "web/wasm runs in a browser: build it with `go generate ./web/static/` (GOOS=js GOARCH=wasm)")
	os.Exit(2)
}
