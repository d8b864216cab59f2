package submission

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"
)

// FuzzMIMEDepth: mimeDepth never panics and never descends far past the
// limit, whatever the message.
func FuzzMIMEDepth(f *testing.F) {
	f.Add([]byte("Content-Type: text/plain\r\n\r\nhi\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n--a--\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n" + strings.Repeat("--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n", 200)))
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			return
		}
		if d := mimeDepth(msg.Header, msg.Body, 1); d < 1 || d > maxMIMEDepth+1 {
			t.Fatalf("depth %d", d)
		}
	})
}
