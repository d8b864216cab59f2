package smtp

// [kep patch] Tests for the patched DATA reader (data.go) and line-length
// limit (lengthlimit_reader.go): the patched readers must give the same
// result as upstream v0.25.1's for every input, so upstream's code is kept
// here, unchanged but for the type names, as the reference.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"
)

// upstreamDataReader is dataReader.Read of go-smtp v0.25.1, unchanged.
type upstreamDataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64 // Maximum bytes remaining
}

func (r *upstreamDataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	// Code below is taken from net/textproto with only one modification to
	// not rewrite CRLF -> LF.

	// Run data through a simple state machine to
	// elide leading dots and detect End-of-Data (<CR><LF>.<CR><LF>) line.
	const (
		stateBeginLine = iota // beginning of line; initial state; must be zero
		stateDot              // read . at beginning of line
		stateDotCR            // read .\r at beginning of line
		stateCR               // read \r (possibly at end of line)
		stateData             // reading data in middle of line
		stateEOF              // reached .\r\n end marker line
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}

// upstreamLineLimitReader is lineLimitReader of go-smtp v0.25.1, unchanged.
type upstreamLineLimitReader struct {
	R         io.Reader
	LineLimit int

	curLineLength int
}

func (r *upstreamLineLimitReader) Read(b []byte) (int, error) {
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

	for _, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
		}
		r.curLineLength++

		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
	}

	return n, nil
}

var errBrokenConn = errors.New("test: connection broken")

// chunkReader stands for the network: it hands out data in chunks whose
// sizes come from rnd (0 to maxChunk bytes, so empty reads happen too),
// then end, which is io.EOF or errBrokenConn; the last chunk may come with
// end (as some readers do).
type chunkReader struct {
	data     []byte
	rnd      *rand.Rand
	maxChunk int
	end      error
}

func (r *chunkReader) Read(b []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.end
	}
	k := r.rnd.Intn(r.maxChunk + 1)
	if k > len(b) {
		k = len(b)
	}
	if k > len(r.data) {
		k = len(r.data)
	}
	n := copy(b, r.data[:k])
	r.data = r.data[n:]
	if len(r.data) == 0 && r.rnd.Intn(2) == 0 {
		return n, r.end
	}
	return n, nil
}

// pipeline is what a Conn reads DATA through: the network, the line limit,
// the bufio.Reader of textproto, then the DATA reader.
type pipeline struct {
	data     []byte
	seed     int64 // chunk sizes of the network and read sizes of the caller
	maxChunk int   // largest network read
	maxRead  int   // largest caller read
	bufSize  int   // bufio.Reader size (at least 16)
	lineMax  int   // Server.MaxLineLength; 0 is no limit
	msgMax   int64 // Server.MaxMessageBytes; 0 is no limit
	broken   bool  // the connection ends with an error, not EOF
}

type readResult struct {
	n    int
	data string
	err  error
}

func (rr readResult) String() string { return fmt.Sprintf("(%d, %q, %v)", rr.n, rr.data, rr.err) }

// run reads the message with upstream's readers or the patched ones and
// returns every Read's result up to the first error, then what conn.go does
// after the session's Data returns (lifts the size limit and drains the
// reader), then what is left in the bufio.Reader for the next command.
func (p pipeline) run(patched bool) (reads []readResult, drained string, drainErr error, rest string, restErr error) {
	end := io.EOF
	if p.broken {
		end = errBrokenConn
	}
	net := &chunkReader{data: p.data, rnd: rand.New(rand.NewSource(p.seed)), maxChunk: p.maxChunk, end: end}
	var lines io.Reader
	if patched {
		lines = &lineLimitReader{R: net, LineLimit: p.lineMax}
	} else {
		lines = &upstreamLineLimitReader{R: net, LineLimit: p.lineMax}
	}
	br := bufio.NewReaderSize(lines, p.bufSize)
	var r io.Reader
	var unlimit func()
	if patched {
		dr := &dataReader{r: br, limited: p.msgMax > 0, n: p.msgMax}
		r, unlimit = dr, func() { dr.limited = false }
	} else {
		dr := &upstreamDataReader{r: br, limited: p.msgMax > 0, n: p.msgMax}
		r, unlimit = dr, func() { dr.limited = false }
	}

	sizes := rand.New(rand.NewSource(^p.seed))
	buf := make([]byte, p.maxRead)
	for i := 0; i < 100000; i++ {
		b := buf[:sizes.Intn(p.maxRead+1)]
		n, err := r.Read(b)
		reads = append(reads, readResult{n, string(b[:n]), err})
		if err != nil {
			break
		}
	}
	unlimit()
	var d bytes.Buffer
	_, drainErr = io.Copy(&d, r)
	var rb bytes.Buffer
	_, restErr = io.Copy(&rb, br)
	return reads, d.String(), drainErr, rb.String(), restErr
}

// same runs both and reports the first difference.
func (p pipeline) same(t *testing.T) {
	t.Helper()
	wantReads, wantDrained, wantDrainErr, wantRest, wantRestErr := p.run(false)
	gotReads, gotDrained, gotDrainErr, gotRest, gotRestErr := p.run(true)
	for i := 0; i < len(wantReads) || i < len(gotReads); i++ {
		var w, g readResult
		if i < len(wantReads) {
			w = wantReads[i]
		}
		if i < len(gotReads) {
			g = gotReads[i]
		}
		if w != g {
			t.Fatalf("%+v: Read %d = %v, upstream %v", p, i, g, w)
		}
	}
	if gotDrained != wantDrained || gotDrainErr != wantDrainErr {
		t.Fatalf("%+v: drained %q, %v; upstream %q, %v", p, gotDrained, gotDrainErr, wantDrained, wantDrainErr)
	}
	if gotRest != wantRest || gotRestErr != wantRestErr {
		t.Fatalf("%+v: left %q, %v; upstream %q, %v", p, gotRest, gotRestErr, wantRest, wantRestErr)
	}
}

func TestKepDataReaderEdgeCases(t *testing.T) {
	long := strings.Repeat("x", 30)
	tests := []struct {
		name    string
		in      string
		lineMax int
		msgMax  int64
		broken  bool
		only    int // 1: expectations only when the input comes in one network read; 2: byte by byte

		want    string // what Data reads, before the first error
		wantErr error
		rest    string // left for the next command
	}{
		{name: "empty message", in: ".\r\nQUIT\r\n", want: "", wantErr: io.EOF, rest: "QUIT\r\n"},
		{name: "plain", in: "Subject: a\r\n\r\nbody\r\n.\r\n", want: "Subject: a\r\n\r\nbody\r\n", wantErr: io.EOF},
		{name: "dot at line start is unstuffed", in: "a\r\n..b\r\n.c\r\n..\r\n.\r\n", want: "a\r\n.b\r\nc\r\n.\r\n", wantErr: io.EOF},
		{name: "dot in mid-line kept", in: "a.b\r\n.\r\n", want: "a.b\r\n", wantErr: io.EOF},
		{name: "terminator split across reads", in: "a\r\n.\r\nNOOP\r\n", want: "a\r\n", wantErr: io.EOF, rest: "NOOP\r\n"},
		{name: "bare CR", in: "a\rb\r\r\n\r.\r\n.\r\n", want: "a\rb\r\r\n\r.\r\n", wantErr: io.EOF},
		{name: "bare LF ends no line", in: "a\n.\r\nb\r\n.\r\n", want: "a\n.\r\nb\r\n", wantErr: io.EOF},
		{name: "bare LF after CRLF", in: "a\r\n\n.\r\n.\r\n", want: "a\r\n\n.\r\n", wantErr: io.EOF},
		{name: "dot CR then not LF (upstream drops the dot and the CR)", in: ".\rX\r\n.\r\n", want: "X\r\n", wantErr: io.EOF},
		{name: "no CRLF rewriting", in: "a\r\nb\r\n\r\n.\r\n", want: "a\r\nb\r\n\r\n", wantErr: io.EOF},
		{name: "limit hit mid-line", in: "abcdefghij\r\n.\r\n", msgMax: 5, want: "abcde", wantErr: ErrDataTooLarge},
		// Upstream refuses a message of exactly MaxMessageBytes: the
		// terminator is not read once the limit is reached. Kept as is.
		{name: "limit exactly the message", in: "abc\r\n.\r\nQUIT\r\n", msgMax: 5, want: "abc\r\n", wantErr: ErrDataTooLarge},
		{name: "limit a byte over the message", in: "abc\r\n.\r\nQUIT\r\n", msgMax: 6, want: "abc\r\n", wantErr: io.EOF, rest: "QUIT\r\n"},
		{name: "EOF without terminator", in: "abc\r\n", want: "abc\r\n", wantErr: io.ErrUnexpectedEOF},
		{name: "EOF mid-line", in: "abc", want: "abc", wantErr: io.ErrUnexpectedEOF},
		{name: "EOF after dot", in: "a\r\n.", want: "a\r\n", wantErr: io.ErrUnexpectedEOF},
		{name: "connection error", in: "abc\r\n", broken: true, want: "abc\r\n", wantErr: errBrokenConn},
		{name: "line at the limit", in: long[:9] + "\r\n" + long[:8] + "\r\n.\r\n", lineMax: 10, want: long[:9] + "\r\n" + long[:8] + "\r\n", wantErr: io.EOF},
		{name: "line over the limit", in: "ab\r\n" + long + "\r\n.\r\n", lineMax: 10, only: 1, want: "", wantErr: ErrTooLongLine},
		{name: "line over the limit across network reads", in: "ab\r\n" + long + "\r\n.\r\n", lineMax: 10, only: 2, want: "ab\r\n" + long[:9], wantErr: ErrTooLongLine},
	}
	for _, tt := range tests {
		for _, patched := range []bool{false, true} {
			// Byte by byte from the network, a byte per Read, and the
			// smallest bufio.Reader: every state change on its own.
			p := pipeline{data: []byte(tt.in), seed: 1, maxChunk: 1, maxRead: 1, bufSize: 16, lineMax: tt.lineMax, msgMax: tt.msgMax, broken: tt.broken}
			ps := []pipeline{p, {data: p.data, seed: 1, maxChunk: 4096, maxRead: 4096, bufSize: 4096, lineMax: tt.lineMax, msgMax: tt.msgMax, broken: tt.broken}}
			switch tt.only {
			case 1:
				ps = ps[1:]
			case 2:
				ps = ps[:1]
			}
			for _, p := range ps {
				reads, _, _, rest, _ := p.run(patched)
				var got strings.Builder
				for _, r := range reads {
					got.WriteString(r.data)
				}
				gotErr := reads[len(reads)-1].err
				if got.String() != tt.want || gotErr != tt.wantErr {
					t.Errorf("%s (patched %v, chunk %d): read %q, %v; want %q, %v", tt.name, patched, p.maxChunk, got.String(), gotErr, tt.want, tt.wantErr)
				}
				if tt.wantErr == io.EOF && rest != tt.rest {
					t.Errorf("%s (patched %v, chunk %d): left %q, want %q", tt.name, patched, p.maxChunk, rest, tt.rest)
				}
			}
		}
		for seed := int64(0); seed < 20; seed++ {
			pipeline{data: []byte(tt.in), seed: seed, maxChunk: 1 + int(seed%7), maxRead: 1 + int(seed%5), bufSize: 16, lineMax: tt.lineMax, msgMax: tt.msgMax, broken: tt.broken}.same(t)
		}
	}
}

// FuzzKepDataReader runs upstream's readers and the patched ones on the same
// input with the same network chunk sizes, caller read sizes and bufio size,
// and requires every Read's result, the drain and what is left over to be
// the same.
func FuzzKepDataReader(f *testing.F) {
	for _, s := range []string{
		".\r\n", "a\r\n..b\r\n.\r\nQUIT\r\n", "a\rb\n.\r\n\r\n.\r\n", ".\rX\r\n.", "abc",
		strings.Repeat("0123456789abcdef", 40) + "\r\n.\r\n", "\r\r\n\n..\r\n.\r\r\n.\r\n",
	} {
		f.Add([]byte(s), int64(1), uint16(3), uint16(7), uint16(16), uint16(0), uint16(0), false)
		f.Add([]byte(s), int64(2), uint16(4096), uint16(4096), uint16(4096), uint16(20), uint16(9), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, seed int64, maxChunk, maxRead, bufSize, lineMax, msgMax uint16, broken bool) {
		p := pipeline{
			data:     data,
			seed:     seed,
			maxChunk: 1 + int(maxChunk%5000),
			maxRead:  1 + int(maxRead%5000),
			bufSize:  16 + int(bufSize%5000),
			lineMax:  int(lineMax % 1100),
			msgMax:   int64(msgMax),
			broken:   broken,
		}
		p.same(t)
	})
}

// FuzzKepLineLimitReader compares the line limits alone, with the limit
// switched off and on between reads as BDAT does.
func FuzzKepLineLimitReader(f *testing.F) {
	f.Add([]byte("abc\ndefghijkl\n\nxyz"), int64(1), uint16(3), uint16(4))
	f.Add([]byte(strings.Repeat("a\r\n", 100)), int64(2), uint16(64), uint16(3))
	f.Fuzz(func(t *testing.T, data []byte, seed int64, maxChunk, lineMax uint16) {
		limit := int(lineMax%300) - 2 // negative limits too
		mk := func() (*chunkReader, *rand.Rand) {
			return &chunkReader{data: data, rnd: rand.New(rand.NewSource(seed)), maxChunk: 1 + int(maxChunk%500), end: io.EOF}, rand.New(rand.NewSource(^seed))
		}
		netA, rndA := mk()
		netB, rndB := mk()
		up := &upstreamLineLimitReader{R: netA, LineLimit: limit}
		ours := &lineLimitReader{R: netB, LineLimit: limit}
		bufA, bufB := make([]byte, 600), make([]byte, 600)
		for i := 0; i < 10000; i++ {
			if rndA.Intn(8) == 0 {
				up.LineLimit = 0
			} else {
				up.LineLimit = limit
			}
			if rndB.Intn(8) == 0 {
				ours.LineLimit = 0
			} else {
				ours.LineLimit = limit
			}
			size := rndA.Intn(len(bufA) + 1)
			rndB.Intn(len(bufB) + 1)
			na, ea := up.Read(bufA[:size])
			nb, eb := ours.Read(bufB[:size])
			if na != nb || ea != eb || !bytes.Equal(bufA[:na], bufB[:nb]) {
				t.Fatalf("Read %d (limit %d): %d, %q, %v; upstream %d, %q, %v", i, limit, nb, bufB[:nb], eb, na, bufA[:na], ea)
			}
			if limit > 0 && up.curLineLength != ours.curLineLength {
				t.Fatalf("Read %d: line length %d, upstream %d", i, ours.curLineLength, up.curLineLength)
			}
			if ea == io.EOF {
				break
			}
		}
	})
}

// benchMessage is a 10 KB message of 76-character lines, as a mail client
// sends base64 or quoted-printable text, with its terminator.
func benchMessage() []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: benchmark\r\n\r\n")
	line := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0", 1)[:76]
	for b.Len() < 10*1024 {
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// BenchmarkKepDataReader reads a 10 KB message through the line limit, a
// 4096-byte bufio.Reader (textproto's) and the DATA reader, with
// upstream's readers and the patched ones, as the server does (io.Copy's
// 32 KB buffer).
func BenchmarkKepDataReader(b *testing.B) {
	msg := benchMessage()
	for _, patched := range []bool{false, true} {
		name := "upstream"
		if patched {
			name = "patched"
		}
		b.Run(name, func(b *testing.B) {
			src := bytes.NewReader(msg)
			buf := make([]byte, 32*1024)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				src.Reset(msg)
				var r io.Reader
				if patched {
					r = &dataReader{r: bufio.NewReader(&lineLimitReader{R: src, LineLimit: 2000}), limited: true, n: 1 << 20}
				} else {
					r = &upstreamDataReader{r: bufio.NewReader(&upstreamLineLimitReader{R: src, LineLimit: 2000}), limited: true, n: 1 << 20}
				}
				for {
					_, err := r.Read(buf)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
