package signer_test

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/signer"
)

// TestHeaderFieldsShown: a message whose header fields would carry a line
// break (and so header fields the prompt does not show, covered by the
// user's signature) is refused before the user is asked; the KEP type,
// which decides whether the message is a legal service (eTebligat), is in
// the prompt.
func TestHeaderFieldsShown(t *testing.T) {
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Test ESHS"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tckn, _ := identity.CompleteTCKN("100000001")
	is, err := ca.IssueSigner(pki.SignerSubject(tckn, "Ayşe", "Yılmaz", "TCKN"), "", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []signer.Prompt
	h, err := signer.New(signer.Options{Origin: origin, Signer: &client.Signer{Key: is.Key, Cert: is.Cert},
		Confirm: func(_ context.Context, p signer.Prompt) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, p)
			return true, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	base := func() client.Message {
		return client.Message{From: "ayse.yilmaz@hs01.kep.tr", To: []string{"mehmet.ozturk@hs01.kep.tr"}, Subject: "Kira",
			Body: "Merhaba", Attachments: []client.Attachment{{Name: "a.txt", Data: []byte("x")}}}
	}
	tests := []struct {
		name   string
		change func(m *client.Message)
		want   int
	}{
		{"plain", func(m *client.Message) {}, 200},
		{"eTebligat", func(m *client.Message) { m.IletiTip = "eTebligat" }, 200},
		{"subject", func(m *client.Message) { m.Subject = "Kira\r\nX-TR-REM-iletiTip: eTebligat" }, 400},
		{"subject LF", func(m *client.Message) { m.Subject = "Kira\nCc: x@hs01.kep.tr" }, 400},
		{"from", func(m *client.Message) { m.From = "ayse.yilmaz@hs01.kep.tr\r\nReply-To: x@y" }, 400},
		{"to", func(m *client.Message) { m.To = []string{"mehmet.ozturk@hs01.kep.tr\r\nCc: x@y"} }, 400},
		{"cc", func(m *client.Message) { m.Cc = []string{"x@y\n"} }, 400},
		{"iletiTip", func(m *client.Message) { m.IletiTip = "standart\r\nX-A: b" }, 400},
		{"iletiID", func(m *client.Message) { m.IletiID = "1\r\nX-A: b" }, 400},
		{"message-id", func(m *client.Message) { m.MessageID = "<a@b>\r\nX-A: b" }, 400},
		{"content type", func(m *client.Message) { m.Attachments[0].ContentType = "text/plain\r\nContent-Disposition: inline" }, 400},
		{"attachment name NUL", func(m *client.Message) { m.Attachments[0].Name = "a\x00.txt" }, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			asked = nil
			mu.Unlock()
			m := base()
			tc.change(&m)
			body, _ := json.Marshal(m)
			req, _ := http.NewRequest("POST", srv.URL+"/v1/sign", bytes.NewReader(body))
			req.Header.Set("Origin", origin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var r struct{ Signed, Error string }
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%d %q, want %d", resp.StatusCode, r.Error, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.want != 200 {
				if len(asked) != 0 || r.Error == "" || r.Signed != "" {
					t.Errorf("refused message: asked %d times, error %q", len(asked), r.Error)
				}
				return
			}
			tip := m.IletiTip
			if tip == "" {
				tip = "standart"
			}
			if len(asked) != 1 || asked[0].IletiTip != tip || !strings.Contains(asked[0].Text(), "Type:    "+tip) {
				t.Errorf("the prompt does not show the type %s: %+v", tip, asked)
			}
		})
	}
}
