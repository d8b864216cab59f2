// Package static holds the browser signer that the web pages load from
// /static/: kepsign.js (window.KEPSign), kepsign.wasm (web/wasm, compiled)
// and the Go runtime's wasm_exec.js; see docs/signing-in-the-browser.md.
// Package web serves FS at /static/.
package static

import "embed"

// kepsign.wasm and wasm_exec.js are generated from web/wasm; a test fails
// when they are stale.
//go:generate go run ../wasm/gen

// FS holds kepsign.js, kepsign.wasm and wasm_exec.js.
//
//go:embed kepsign.js kepsign.wasm wasm_exec.js
var FS embed.FS
