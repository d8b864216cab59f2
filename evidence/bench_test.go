package evidence

import (
	"bytes"
	"compress/flate"
	"io"
	"testing"
	"time"
)

func BenchmarkSign(b *testing.B) {
	s := getPKI(b).signer(b, "ecdsa-p256")
	s.Now = nil
	e := sample(Delivered)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignParallel shows throughput on all cores (-cpu 2 for the
// 2-core target).
func BenchmarkSignParallel(b *testing.B) {
	s := getPKI(b).signer(b, "ecdsa-p256")
	s.Now = nil
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := sample(Delivered)
		for pb.Next() {
			if _, err := s.Sign(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSignRSA(b *testing.B) {
	s := getPKI(b).signer(b, "rsa-2048")
	e := sample(Delivered)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshal is the XML part of Sign without any cryptography.
func BenchmarkMarshal(b *testing.B) {
	e := sample(Delivered)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	signed, err := getPKI(b).signer(b, "ecdsa-p256").Sign(sample(Delivered))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(signed)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Verify(signed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	signed, _ := getPKI(b).signer(b, "ecdsa-p256").Sign(sample(Delivered))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(signed); err != nil {
			b.Fatal(err)
		}
	}
}

func deflate(t testing.TB, data, dict []byte) int {
	var buf bytes.Buffer
	w, err := flate.NewWriterDict(&buf, flate.BestCompression, dict)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	// Check it inflates back.
	r := flate.NewReaderDict(bytes.NewReader(buf.Bytes()), dict)
	back, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("inflate: %v", err)
	}
	return buf.Len()
}

// TestSize reports the size of a typical signed evidence, raw and compressed
// with compress/flate and a preset dictionary made from one other evidence
// (the dictionary is stored once; each evidence is compressed on its own).
// The storage budget is 2 KB per evidence.
func TestSize(t *testing.T) {
	p := getPKI(t)
	for _, kind := range keyKinds {
		s := p.signer(t, kind)
		dictEv := sample(Accepted)
		dictEv.ID = NewID()
		dict, err := s.Sign(dictEv)
		if err != nil {
			t.Fatal(err)
		}
		// A different evidence: other code, id, times, reasons, signature.
		e := sample(NotDelivered)
		e.ID = NewID()
		e.EventTime = time.Now()
		e.Message.Digest = bytes.Repeat([]byte{0x5a}, 32)
		s.Now = time.Now
		signed, err := s.Sign(e)
		if err != nil {
			t.Fatal(err)
		}
		plain := deflate(t, signed, nil)
		withDict := deflate(t, signed, dict)
		t.Logf("%s: signed evidence %d bytes; flate %d bytes; flate with a %d-byte dictionary %d bytes", kind, len(signed), plain, len(dict), withDict)
		if kind == "ecdsa-p256" && withDict > 2048 {
			t.Errorf("%d bytes stored per evidence, budget 2048", withDict)
		}
	}
}
