//go:build js && wasm

package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"syscall/js"
	"time"
)

// main publishes globalThis.KEPSignWasm for kepsign.js and waits: the
// functions stay callable for the life of the page.
func main() {
	js.Global().Set("KEPSignWasm", js.ValueOf(map[string]any{
		"withKeyFile": js.FuncOf(withKeyFile),
	}))
	select {}
}

// withKeyFile(msgJSON string, file Uint8Array, password string) returns
// {signed: base64} or {error, code, en, tr}. It runs synchronously: signing
// takes milliseconds, and nothing here waits on JavaScript.
func withKeyFile(_ js.Value, args []js.Value) (result any) {
	// A panic would end the Go program and every later call with it.
	defer func() {
		if p := recover(); p != nil {
			result = failure(refusal(codeSignFailed,
				fmt.Sprintf("The signer failed (%v). Reload the page and try again; if it persists, report it to the provider.", p),
				fmt.Sprintf("İmzalayıcı hata verdi (%v). Sayfayı yenileyip yeniden deneyin; sürerse sağlayıcınıza bildirin.", p)))
		}
	}()
	if len(args) != 3 || args[0].Type() != js.TypeString || !args[1].InstanceOf(js.Global().Get("Uint8Array")) || args[2].Type() != js.TypeString {
		return failure(refusal(codeBadMessage,
			"kepsign.wasm: withKeyFile takes (message JSON string, key file Uint8Array, password string).",
			"kepsign.wasm: withKeyFile (ileti JSON metni, anahtar dosyası Uint8Array, parola metni) alır."))
	}
	file := make([]byte, args[1].Get("length").Int())
	js.CopyBytesToGo(file, args[1])
	signed, err := signMessage([]byte(args[0].String()), file, args[2].String(), time.Now())
	clear(file) // the key file's bytes do not outlive the call in Go's memory
	if err != nil {
		return failure(err)
	}
	return map[string]any{"signed": base64.StdEncoding.EncodeToString(signed)}
}

func failure(err error) map[string]any {
	var r *refusalError
	if !errors.As(err, &r) {
		r = &refusalError{Code: codeSignFailed, EN: err.Error(), TR: err.Error()}
	}
	return map[string]any{"error": r.EN, "code": r.Code, "en": r.EN, "tr": r.TR}
}
