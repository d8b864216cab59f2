// Package static holds the files the web pages load from /static/: the
// browser signer (kepsign.js, kepsign.wasm, and the Go runtime's
// wasm_exec.js, see docs/signing-in-the-browser.md) and the pages' own
// scripts. Package web serves FS at /static/.
package static

import "embed"

// kepsign.wasm and wasm_exec.js are generated from web/wasm; a test fails
// when they are stale.
//go:generate go run ../wasm/gen

// FS is every .js and .wasm file of this directory (not testdata/).
//
//go:embed *.js *.wasm
var FS embed.FS
