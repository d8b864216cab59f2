package evidence

import (
	"bytes"
	"compress/flate"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Stored evidence is encoded to save space: a provider keeps billions of
// evidences for 20 years, so bytes at rest matter more than CPU. The format
// number is stored beside each row; formats are never changed once used,
// only added.
//
//	0  the signed document as it is
//	1  raw DEFLATE (RFC 1951) with the preset dictionary dict-v1.xml: a
//	   sample evidence of each kind, so that the names, namespaces,
//	   algorithm URIs and the provider's certificate that every evidence
//	   repeats cost almost nothing
const (
	FormatRaw     = 0
	FormatDeflate = 1
)

//go:embed dict-v1.xml
var dictV1 []byte

var (
	writerPool = sync.Pool{New: func() any {
		w, err := flate.NewWriterDict(io.Discard, flate.BestCompression, dictV1)
		if err != nil {
			panic(err)
		}
		return w
	}}
)

// Encode returns the stored form of a signed evidence document.
func Encode(doc []byte) (format int, data []byte) {
	var buf bytes.Buffer
	buf.Grow(len(doc) / 2)
	w := writerPool.Get().(*flate.Writer)
	w.Reset(&buf)
	w.Write(doc)
	if err := w.Close(); err != nil {
		writerPool.Put(w)
		return FormatRaw, doc
	}
	writerPool.Put(w)
	return FormatDeflate, buf.Bytes()
}

// maxDocument bounds a decoded evidence document.
const maxDocument = 1 << 20

// Decode returns the signed evidence document from its stored form.
func Decode(format int, data []byte) ([]byte, error) {
	switch format {
	case FormatRaw:
		return data, nil
	case FormatDeflate:
		r := flate.NewReaderDict(bytes.NewReader(data), dictV1)
		defer r.Close()
		out, err := io.ReadAll(io.LimitReader(r, maxDocument+1))
		if err != nil {
			return nil, fmt.Errorf("evidence: stored evidence is damaged: %w", err)
		}
		if len(out) > maxDocument {
			return nil, errors.New("evidence: stored evidence is too large")
		}
		return out, nil
	}
	return nil, fmt.Errorf("evidence: unknown storage format %d", format)
}
