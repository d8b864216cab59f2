package client

import (
	"strings"
	"testing"
)

// TestHeaderFieldsRefuseLineBreaks: a line break in any field that becomes
// a header line would add header fields under the signature that the
// signer never saw; Prepare refuses it and names the field.
func TestHeaderFieldsRefuseLineBreaks(t *testing.T) {
	base := func() *Message {
		return &Message{From: "a@hs01.kep.tr", To: []string{"b@hs01.kep.tr"}, Subject: "Fatura", Body: "x"}
	}
	for _, tc := range []struct {
		field string
		set   func(m *Message)
	}{
		{"Subject", func(m *Message) { m.Subject = "Fatura\r\nX-TR-REM-iletiTip: eTebligat" }},
		{"From", func(m *Message) { m.From = "a@hs01.kep.tr\nBcc: c@hs01.kep.tr" }},
		{"To", func(m *Message) { m.To = []string{"b@hs01.kep.tr\r\nX: y"} }},
		{"Cc", func(m *Message) { m.Cc = []string{"c@hs01.kep.tr\x00"} }},
		{"iletiTip", func(m *Message) { m.IletiTip = "standart\r\nX: y" }},
		{"Message-ID", func(m *Message) { m.MessageID = "<a@b>\nX: y" }},
		{"attachment name", func(m *Message) { m.Attachments = []Attachment{{Name: "a.pdf\r\nX: y", Data: []byte("x")}} }},
		{"attachment type", func(m *Message) {
			m.Attachments = []Attachment{{Name: "a.pdf", ContentType: "application/pdf\r\nX: y", Data: []byte("x")}}
		}},
	} {
		m := base()
		tc.set(m)
		if _, err := m.Prepare(); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want a refusal naming the field", tc.field, err)
		}
	}
	if _, err := base().Prepare(); err != nil {
		t.Fatalf("a plain message: %v", err)
	}
}
