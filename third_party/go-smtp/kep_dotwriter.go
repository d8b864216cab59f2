package smtp

import (
	"bytes"
	"io"
)

// [kep patch] dotWriter is the client's DATA writer in place of
// net/textproto's DotWriter, with the same output: a leading dot doubled,
// a bare LF sent as CRLF, and ".\r\n" (after a CRLF, added when the
// message does not end with one) at Close. textproto's writer handled the
// message a byte at a time (bufio.Writer.WriteByte per byte), and its
// 4 KB buffer sent a 10 KB message as three TLS records and three writes;
// this one copies the runs of bytes between line ends, and keeps the
// stuffed message, up to maxDotBuffer, to send it with its terminator in
// one write (one TLS record up to 16 KB).
type dotWriter struct {
	w     io.Writer // the connection (the client's textproto writer's bufio.Writer)
	flush func() error
	buf   []byte
	state int
}

const maxDotBuffer = 64 << 10

// The states of textproto's dotWriter.
const (
	wstateBegin     = iota // initial state; must be zero
	wstateBeginLine        // beginning of line
	wstateCR               // wrote \r (possibly at end of line)
	wstateData             // writing data in middle of line
)

func (d *dotWriter) Write(b []byte) (n int, err error) {
	if d.buf == nil { // room for the usual message, written whole, and its line ends
		c := len(b) + len(b)/32 + 8
		if c > maxDotBuffer+4096 {
			c = maxDotBuffer + 4096
		}
		d.buf = make([]byte, 0, c)
	}
	for n < len(b) {
		switch d.state {
		case wstateBegin, wstateBeginLine:
			d.state = wstateData
			if b[n] == '.' {
				d.buf = append(d.buf, '.') // escape a leading dot
			}
			continue
		case wstateCR:
			// As textproto: the byte after a CR is written as it is (a
			// second CR too, which leaves the CR state), and an LF ends
			// the line.
			d.state = wstateData
			if b[n] == '\n' {
				d.state = wstateBeginLine
			}
			d.buf = append(d.buf, b[n])
			n++
			continue
		}
		// wstateData: copy up to the next CR or LF.
		rest := b[n:]
		i := bytes.IndexAny(rest, "\r\n")
		if i < 0 {
			d.buf = append(d.buf, rest...)
			n = len(b)
			break
		}
		d.buf = append(d.buf, rest[:i]...)
		if rest[i] == '\r' {
			d.buf = append(d.buf, '\r')
			d.state = wstateCR
		} else {
			d.buf = append(d.buf, '\r', '\n')
			d.state = wstateBeginLine
		}
		n += i + 1
		if len(d.buf) >= maxDotBuffer {
			if err := d.send(); err != nil {
				return n, err
			}
		}
	}
	if len(d.buf) >= maxDotBuffer {
		if err := d.send(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (d *dotWriter) send() error {
	_, err := d.w.Write(d.buf)
	d.buf = d.buf[:0]
	return err
}

func (d *dotWriter) Close() error {
	switch d.state {
	default:
		d.buf = append(d.buf, '\r')
		fallthrough
	case wstateCR:
		d.buf = append(d.buf, '\n')
		fallthrough
	case wstateBeginLine:
		d.buf = append(d.buf, ".\r\n"...)
	}
	if err := d.send(); err != nil {
		return err
	}
	return d.flush()
}
