package smtp

import (
	"bytes"
	"errors"
	"io"
)

var ErrTooLongLine = errors.New("smtp: too long a line in input stream")

// lineLimitReader reads from the underlying Reader but restricts
// line length of lines in input stream to a certain length.
//
// If line length exceeds the limit - Read returns ErrTooLongLine
type lineLimitReader struct {
	R         io.Reader
	LineLimit int

	curLineLength int
}

func (r *lineLimitReader) Read(b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}

	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}

	if r.LineLimit == 0 {
		return n, nil
	}

	// [kep patch] Count line lengths a line at a time (bytes.IndexByte)
	// instead of a byte at a time. The count is the same as upstream's: a
	// line's length includes the LF that ends the line before it, and the
	// first count over the limit (LineLimit+1) is kept, so that every
	// later Read fails too.
	cur := r.curLineLength
	for p := b[:n]; len(p) > 0; {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			i = len(p)
		}
		cur += i
		if cur > r.LineLimit {
			r.curLineLength = r.LineLimit + 1
			return 0, ErrTooLongLine
		}
		if i == len(p) {
			break
		}
		cur = 1 // the LF counts towards the next line
		if cur > r.LineLimit {
			r.curLineLength = r.LineLimit + 1
			return 0, ErrTooLongLine
		}
		p = p[i+1:]
	}
	r.curLineLength = cur

	return n, nil
}
