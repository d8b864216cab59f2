package cms

import (
	"errors"
	"fmt"
)

// Limits of the BER normaliser. Real CMS nests about 20 deep (a time-stamp
// token inside an unsigned attribute reaches about 30) and holds at most a few
// hundred thousand constructed elements (a large CRL); the limits stop a
// hostile signature from exhausting the stack or memory.
const (
	maxBERDepth       = 64
	maxBERConstructed = 1 << 22
)

var errBERDepth = errors.New("BER nested too deep")

// normalizeBER turns a BER encoding into one that encoding/asn1 accepts: definite
// lengths in minimal form, and constructed OCTET STRINGs (the chunks of a
// streamed eContent, RFC 5652 §5.2) merged into one primitive OCTET STRING.
// It does not sort SET OF or otherwise make the encoding strict DER.
//
// Input that needs none of this (the common DER case) is returned as is,
// without a copy; otherwise the result is written in one allocation.
//
// It exists because github.com/digitorus/pkcs7's BER conversion keeps
// constructed OCTET STRINGs (Parse then sees only the first 4 KiB chunk of an
// `openssl cms -sign -stream` message and reports a digest mismatch), recurses
// without a depth limit (a few MB of "30 80" overflow the goroutine stack,
// which is fatal, not a panic) and looks for end-of-contents with a scan to the
// end of the input for every element (quadratic).
func normalizeBER(in []byte) ([]byte, error) {
	n := berNormalizer{in: in}
	end, total, err := n.measure(0, 0)
	if err != nil {
		return nil, err
	}
	if end != len(in) {
		return nil, fmt.Errorf("%d bytes of trailing data after the CMS structure", len(in)-end)
	}
	if !n.rewrite {
		return in, nil
	}
	out := make([]byte, 0, total)
	n.next = 0
	out, _ = n.write(out, 0)
	return out, nil
}

type berNormalizer struct {
	in      []byte
	lens    []int // content length of each constructed element, pre-order
	next    int   // index into lens while writing
	rewrite bool  // input is not already acceptable DER
}

// berHeader is one element's identifier and length octets.
type berHeader struct {
	tag         []byte // identifier octets
	constructed bool
	indefinite  bool
	length      int // content length when definite
	content     int // offset of the first content octet
}

func (n *berNormalizer) header(off int) (berHeader, error) {
	in := n.in
	var h berHeader
	if off >= len(in) {
		return h, errors.New("BER truncated")
	}
	start := off
	h.constructed = in[off]&0x20 != 0
	if in[off]&0x1f == 0x1f { // high tag number form
		off++
		for {
			if off >= len(in) || off-start > 5 {
				return h, errors.New("BER tag truncated or too long")
			}
			b := in[off]
			off++
			if b&0x80 == 0 {
				break
			}
		}
	} else {
		off++
	}
	h.tag = in[start:off]
	if off >= len(in) {
		return h, errors.New("BER length truncated")
	}
	l := int(in[off])
	off++
	switch {
	case l < 0x80:
		h.length = l
	case l == 0x80:
		if !h.constructed {
			return h, errors.New("BER indefinite length on a primitive element")
		}
		h.indefinite = true
		n.rewrite = true
	default:
		k := l & 0x7f
		if k > 4 {
			return h, errors.New("BER length too large")
		}
		if off+k > len(in) {
			return h, errors.New("BER length truncated")
		}
		for _, b := range in[off : off+k] {
			h.length = h.length<<8 | int(b)
		}
		off += k
		if h.length < 0x80 || in[off-k] == 0 { // not minimal: fine in BER, not in DER
			n.rewrite = true
		}
	}
	h.content = off
	if !h.indefinite && h.length > len(in)-off {
		return h, errors.New("BER length exceeds the data")
	}
	return h, nil
}

func isConstructedOctetString(h berHeader) bool {
	return len(h.tag) == 1 && h.tag[0] == 0x24
}

func isEOC(in []byte, off int) bool {
	return off+1 < len(in) && in[off] == 0 && in[off+1] == 0
}

// lengthSize is the size of the DER length octets for a content of n bytes.
func lengthSize(n int) int {
	if n < 0x80 {
		return 1
	}
	s := 1
	for ; n > 0; n >>= 8 {
		s++
	}
	return s
}

func appendLength(out []byte, n int) []byte {
	if n < 0x80 {
		return append(out, byte(n))
	}
	k := lengthSize(n) - 1
	out = append(out, 0x80|byte(k))
	for i := k - 1; i >= 0; i-- {
		out = append(out, byte(n>>(8*i)))
	}
	return out
}

// measure walks the element at off and returns the offset just after it and
// the size of its normalised encoding. It records the content length of every
// constructed element in n.lens, in the order write will need them.
func (n *berNormalizer) measure(off, depth int) (end, size int, err error) {
	if depth > maxBERDepth {
		return 0, 0, errBERDepth
	}
	h, err := n.header(off)
	if err != nil {
		return 0, 0, err
	}
	if len(h.tag) == 1 && h.tag[0] == 0 {
		return 0, 0, errors.New("BER end-of-contents outside an indefinite length")
	}
	if !h.constructed {
		end = h.content + h.length
		return end, len(h.tag) + lengthSize(h.length) + h.length, nil
	}
	if len(n.lens) >= maxBERConstructed {
		return 0, 0, errors.New("BER has too many elements")
	}
	idx := len(n.lens)
	n.lens = append(n.lens, 0)
	octets := isConstructedOctetString(h)
	if octets {
		n.rewrite = true
	}
	contentLen := 0
	p := h.content
	limit := h.content + h.length
	for {
		if h.indefinite {
			if isEOC(n.in, p) {
				p += 2
				break
			}
		} else if p >= limit {
			break
		}
		var childEnd, childSize int
		if octets {
			childEnd, childSize, err = n.measureOctets(p, depth+1)
		} else {
			childEnd, childSize, err = n.measure(p, depth+1)
		}
		if err != nil {
			return 0, 0, err
		}
		if !h.indefinite && childEnd > limit {
			return 0, 0, errors.New("BER element overruns its parent")
		}
		contentLen += childSize
		p = childEnd
	}
	n.lens[idx] = contentLen
	return p, len(h.tag) + lengthSize(contentLen) + contentLen, nil
}

// measureOctets measures one segment of a constructed OCTET STRING: a
// primitive OCTET STRING, or (BER allows it) a constructed one, recursively.
// size is the number of content octets it contributes.
func (n *berNormalizer) measureOctets(off, depth int) (end, size int, err error) {
	if depth > maxBERDepth {
		return 0, 0, errBERDepth
	}
	h, err := n.header(off)
	if err != nil {
		return 0, 0, err
	}
	switch {
	case len(h.tag) == 1 && h.tag[0] == 0x04:
		return h.content + h.length, h.length, nil
	case isConstructedOctetString(h):
		p, limit := h.content, h.content+h.length
		for {
			if h.indefinite {
				if isEOC(n.in, p) {
					return p + 2, size, nil
				}
			} else if p >= limit {
				return p, size, nil
			}
			var childEnd, childSize int
			childEnd, childSize, err = n.measureOctets(p, depth+1)
			if err != nil {
				return 0, 0, err
			}
			if !h.indefinite && childEnd > limit {
				return 0, 0, errors.New("BER element overruns its parent")
			}
			size += childSize
			p = childEnd
		}
	}
	return 0, 0, fmt.Errorf("BER constructed OCTET STRING holds tag %#x", h.tag[0])
}

// write appends the normalised encoding of the element at off (already
// validated by measure) and returns the offset just after it.
func (n *berNormalizer) write(out []byte, off int) ([]byte, int) {
	h, _ := n.header(off)
	if !h.constructed {
		end := h.content + h.length
		out = append(out, h.tag...)
		out = appendLength(out, h.length)
		return append(out, n.in[h.content:end]...), end
	}
	contentLen := n.lens[n.next]
	n.next++
	octets := isConstructedOctetString(h)
	if octets {
		out = append(out, 0x04) // merged into one primitive OCTET STRING
	} else {
		out = append(out, h.tag...)
	}
	out = appendLength(out, contentLen)
	p, limit := h.content, h.content+h.length
	for {
		if h.indefinite {
			if isEOC(n.in, p) {
				return out, p + 2
			}
		} else if p >= limit {
			return out, p
		}
		if octets {
			out, p = n.writeOctets(out, p)
		} else {
			out, p = n.write(out, p)
		}
	}
}

// writeOctets appends the content octets of one segment of a constructed
// OCTET STRING.
func (n *berNormalizer) writeOctets(out []byte, off int) ([]byte, int) {
	h, _ := n.header(off)
	if !h.constructed {
		end := h.content + h.length
		return append(out, n.in[h.content:end]...), end
	}
	p, limit := h.content, h.content+h.length
	for {
		if h.indefinite {
			if isEOC(n.in, p) {
				return out, p + 2
			}
		} else if p >= limit {
			return out, p
		}
		out, p = n.writeOctets(out, p)
	}
}
