package imapd

import (
	"bufio"
	"container/list"
	"io"
	"math"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// Limits on what a message can make the server do. Senders control KEP
// content (the original travels inside the provider's envelope) and users
// control drafts, so parsing is bounded: a deeply nested or part-heavy MIME
// tree would otherwise cost stack, memory and time without bound.
const (
	maxHeaderBytes = 1 << 20 // a header parsed for ENVELOPE, SEARCH (the rest is ignored)
	maxMIMEDepth   = 32      // nesting of multiparts and message/rfc822 described by BODYSTRUCTURE
	maxMIMEParts   = 10000   // parts described by one BODYSTRUCTURE
	maxPartPath    = 32      // numbers in a section part specifier (BODY[1.2.3…])
	maxCachedParts = 256     // larger structures are not kept in the cache
)

// msgInfo is what FETCH needs from a message's bytes besides the bytes
// themselves. It is keyed by mailbox.ContentID, so it never goes stale: the
// same ID is the same bytes.
type msgInfo struct {
	hdrLen int64          // length of the header, blank line included
	env    *imap.Envelope // RFC 9051 §7.5.2 ENVELOPE
	bs     imap.BodyStructure
}

// infoCache is a small LRU of msgInfo by content ID.
type infoCache struct {
	mu  sync.Mutex
	max int
	l   *list.List
	m   map[string]*list.Element
}

type infoEntry struct {
	key  string
	info *msgInfo
}

func newInfoCache(max int) *infoCache {
	return &infoCache{max: max, l: list.New(), m: map[string]*list.Element{}}
}

func (c *infoCache) get(key string) *msgInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[key]; e != nil && key != "" {
		c.l.MoveToFront(e)
		return e.Value.(*infoEntry).info
	}
	return nil
}

// put stores info; entries are never modified once stored (readers share
// them), so callers store a new value to add to one.
func (c *infoCache) put(key string, info *msgInfo) {
	if key == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[key]; e != nil {
		e.Value.(*infoEntry).info = info
		c.l.MoveToFront(e)
		return
	}
	c.m[key] = c.l.PushFront(&infoEntry{key: key, info: info})
	for c.l.Len() > c.max {
		e := c.l.Back()
		c.l.Remove(e)
		delete(c.m, e.Value.(*infoEntry).key)
	}
}

// headerLength returns the length of a message's header section, the
// blank line that ends it included (RFC 5322 §2.1); a message without a
// blank line is all header.
func headerLength(r io.Reader) int64 {
	br := bufio.NewReaderSize(r, 32<<10)
	var n int64
	lineStart := true
	for {
		line, err := br.ReadSlice('\n')
		n += int64(len(line))
		if err == bufio.ErrBufferFull {
			lineStart = false
			continue
		}
		if err != nil {
			return n
		}
		if lineStart && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return n
		}
		lineStart = true
	}
}

// readHeader parses a header from at most maxHeaderBytes of r.
func readHeader(r io.Reader) textproto.Header {
	h, _ := textproto.ReadHeader(bufio.NewReader(io.LimitReader(r, maxHeaderBytes)))
	return h
}

// envelope builds the ENVELOPE of a header.
func envelope(h textproto.Header) *imap.Envelope {
	return imapserver.ExtractEnvelope(h)
}

// countReader counts the bytes and lines read through it.
type countReader struct {
	r     io.Reader
	n     int64
	lines int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	for _, b := range p[:n] {
		if b == '\n' {
			c.lines++
		}
	}
	return n, err
}

// bodyStructure describes a message for BODY and BODYSTRUCTURE (RFC 9051
// §7.5.2), streaming: unlike imapserver.ExtractBodyStructure it does not
// hold parts in memory, it stops describing below maxMIMEDepth and after
// maxMIMEParts (deeper or later content is described as one opaque part),
// and it never returns a multipart without children, which the library's
// writer cannot encode (it panics).
func bodyStructure(r io.Reader) (bs imap.BodyStructure, parts int) {
	budget := maxMIMEParts
	h, body := splitHeader(r)
	bs = describe(h, body, "", 0, &budget)
	return bs, maxMIMEParts - budget
}

// splitHeader reads a header (at most maxHeaderBytes of it) and returns it
// with a reader over what follows.
func splitHeader(r io.Reader) (textproto.Header, io.Reader) {
	br := bufio.NewReader(io.LimitReader(r, maxHeaderBytes))
	h, _ := textproto.ReadHeader(br)
	return h, io.MultiReader(br, r)
}

func describe(rawHeader textproto.Header, r io.Reader, parentType string, depth int, budget *int) imap.BodyStructure {
	*budget--
	header := gomessage.Header{Header: rawHeader}
	mediaType, params, err := header.ContentType()
	if err != nil || !strings.Contains(mediaType, "/") {
		// RFC 2045 §5.2: no (valid) Content-Type means text/plain, except in
		// a multipart/digest, where it means message/rfc822 (RFC 2046 §5.1.5).
		mediaType, params = "text/plain", map[string]string{"charset": "us-ascii"}
		if parentType == "multipart/digest" && !header.Has("Content-Type") {
			mediaType, params = "message/rfc822", nil
		}
	}
	mediaType = strings.ToLower(mediaType)
	primary, sub, _ := strings.Cut(mediaType, "/")
	disposition := func() *imap.BodyStructureDisposition {
		d, dp, _ := header.ContentDisposition()
		if d == "" {
			return nil
		}
		return &imap.BodyStructureDisposition{Value: d, Params: dp}
	}
	language := func() []string {
		v := header.Get("Content-Language")
		if v == "" {
			return nil
		}
		l := strings.Split(v, ",")
		for i := range l {
			l[i] = strings.TrimSpace(l[i])
		}
		return l
	}
	deeper := depth < maxMIMEDepth && *budget > 0
	if primary == "multipart" && deeper && params["boundary"] != "" {
		mp := &imap.BodyStructureMultiPart{Subtype: sub, Extended: &imap.BodyStructureMultiPartExt{
			Params: params, Disposition: disposition(), Language: language(), Location: header.Get("Content-Location")}}
		mr := textproto.NewMultipartReader(r, params["boundary"])
		for *budget > 0 {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			mp.Children = append(mp.Children, describe(p.Header, p, mediaType, depth+1, budget))
		}
		_, _ = io.Copy(io.Discard, r)
		if len(mp.Children) > 0 {
			return mp
		}
		// No part could be read (no boundary line): describe the body as
		// one text part, so that the structure stays encodable.
		return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Params: map[string]string{"charset": "us-ascii"},
			Encoding: "7bit", Text: &imap.BodyStructureText{}, Extended: &imap.BodyStructureSinglePartExt{}}
	}
	cr := &countReader{r: r}
	bs := &imap.BodyStructureSinglePart{
		Type: primary, Subtype: sub, Params: params,
		ID: header.Get("Content-Id"), Description: header.Get("Content-Description"),
		Encoding: header.Get("Content-Transfer-Encoding"),
		Extended: &imap.BodyStructureSinglePartExt{Disposition: disposition(), Language: language(), Location: header.Get("Content-Location")},
	}
	if (mediaType == "message/rfc822" || mediaType == "message/global") && deeper {
		ch, body := splitHeader(cr)
		inner := describe(ch, body, mediaType, depth+1, budget)
		_, _ = io.Copy(io.Discard, body)
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{Envelope: envelope(ch), BodyStructure: inner, NumLines: cr.lines}
	} else {
		_, _ = io.Copy(io.Discard, cr)
		if mediaType == "message/rfc822" || mediaType == "message/global" {
			// Too deep to describe: an opaque part (the writer needs an
			// envelope and a structure for message/rfc822).
			bs.Type, bs.Subtype = "application", "octet-stream"
		}
	}
	bs.Size = uint32(min(cr.n, math.MaxUint32))
	if primary == "text" {
		bs.Text = &imap.BodyStructureText{NumLines: cr.lines}
	}
	if bs.MessageRFC822 != nil {
		bs.MessageRFC822.NumLines = cr.lines
	}
	return bs
}
