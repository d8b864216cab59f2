// Command wasm is the browser half of signing in the browser (issue 14
// point 2): built with GOOS=js GOARCH=wasm into web/static/kepsign.wasm, it
// decodes the key file the user picked (PKCS#12 or PEM) and signs the
// composed message with the project's own client and cms code, so that the
// private key never leaves the browser. web/static/kepsign.js loads it and
// exposes window.KEPSign; docs/signing-in-the-browser.md tells the whole
// story.
//
// The signing itself (this file, keyfile.go) builds for any platform and is
// tested natively; main_js.go is the thin glue to JavaScript.
//
//	go generate ./web/static/    # rebuilds kepsign.wasm (see gen/)
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kephs/kep/client"
)

// Refusal codes, stable for the page that shows them (err.code in
// JavaScript); the texts may change.
const (
	codeBadMessage    = "bad-message"     // the message JSON is not a client.Message or lacks From/To
	codeUnreadable    = "unreadable-file" // neither PKCS#12 nor PEM, or an unsupported encryption
	codeWrongPassword = "wrong-password"  // the password does not open the file
	codeNoKey         = "no-key"          // the file holds certificates only
	codeNoCertificate = "no-certificate"  // the file holds a key without its certificate
	codeKeyMismatch   = "key-mismatch"    // the key belongs to none of the certificates
	codeExpired       = "expired"         // the signing certificate has expired
	codeNotYetValid   = "not-yet-valid"   // the certificate is not valid yet (or the clock is wrong)
	codeSignFailed    = "sign-failed"     // the signature could not be made
)

// A refusalError is why a message was not signed, in English and Turkish,
// with a code for the page.
type refusalError struct {
	Code, EN, TR string
}

func (e *refusalError) Error() string { return e.EN }

func refusal(code, en, tr string) error { return &refusalError{Code: code, EN: en, TR: tr} }

// messageJSON is a client.Message as JSON with Go's field names (the
// attachments' Data in base64, as encoding/json writes []byte), except that
// Date is an RFC 3339 string that may be empty or absent: the signing time
// is then now.
type messageJSON struct {
	client.Message
	Date string
}

// signMessage signs the message msg (JSON, see messageJSON) with the key in
// keyFile, opened with password, and returns the multipart/signed message
// (RFC 8551) that the provider's access point verifies.
func signMessage(msg, keyFile []byte, password string, now time.Time) ([]byte, error) {
	var in messageJSON
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, refusal(codeBadMessage,
			"The page sent a message the signer cannot read ("+err.Error()+"). Reload the page and try again; if it persists, report it to the provider.",
			"Sayfa, imzalayıcının okuyamadığı bir ileti gönderdi ("+err.Error()+"). Sayfayı yenileyip yeniden deneyin; sürerse sağlayıcınıza bildirin.")
	}
	m := in.Message
	if in.Date != "" {
		d, err := time.Parse(time.RFC3339, in.Date)
		if err != nil {
			return nil, refusal(codeBadMessage,
				fmt.Sprintf("The message date %q is not an RFC 3339 time. Reload the page and try again.", in.Date),
				fmt.Sprintf("İleti tarihi %q RFC 3339 biçiminde değil. Sayfayı yenileyip yeniden deneyin.", in.Date))
		}
		m.Date = d
	}
	if m.Date.IsZero() {
		m.Date = now
	}
	if m.From == "" || len(m.To) == 0 {
		return nil, refusal(codeBadMessage,
			"The message needs a sender and at least one recipient. Fill in the To field.",
			"İletinin bir göndericisi ve en az bir alıcısı olmalı. Kime alanını doldurun.")
	}
	s, err := decodeKeyFile(keyFile, password, now)
	if err != nil {
		return nil, err
	}
	signed, err := m.Sign(s)
	if err != nil {
		return nil, refusal(codeSignFailed,
			"The message could not be signed: "+err.Error()+".",
			"İleti imzalanamadı: "+err.Error()+".")
	}
	return signed, nil
}
