package cms

import (
	"bytes"
	"testing"
)

// entityOfSize returns a text/plain entity of about n bytes.
func entityOfSize(n int) []byte {
	var b bytes.Buffer
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	for b.Len() < n {
		b.WriteString("Sayın ilgili, kira bedeli ödenmemiştir; işbu ihtarname ile bildirilir.\r\n")
	}
	return b.Bytes()
}

func BenchmarkVerify10KB(b *testing.B) {
	f := getFixture(b)
	msg, err := BuildSigned([]byte(testHeader), entityOfSize(10<<10), f.rsa.Key, f.rsa.Cert, f.rsa.Chain)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildSigned10KB(b *testing.B) {
	f := getFixture(b)
	entity := entityOfSize(10 << 10)
	b.SetBytes(int64(len(entity)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildSigned([]byte(testHeader), entity, f.provider.Key, f.provider.Cert, f.provider.Chain); err != nil {
			b.Fatal(err)
		}
	}
}
