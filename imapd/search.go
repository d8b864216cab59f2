package imapd

import (
	"bytes"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/kephs/kep/mailbox"
)

// Search implements SEARCH and UID SEARCH (RFC 9051 §6.4.4; ESEARCH,
// RFC 4731; SEARCHRES, RFC 5182). Text criteria (BODY, TEXT, HEADER and the
// address keys) match case-insensitively on the stored bytes, header values
// decoded from RFC 2047 words; bodies are not decoded from base64 or
// quoted-printable. Searching is not reading: it issues no evidence.
func (s *session) Search(kind imapserver.NumKind, crit *imap.SearchCriteria, o *imap.SearchOptions) (*imap.SearchData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.sel
	if sel == nil {
		return nil, errNoSelected
	}
	if hasModSeq(crit) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "CONDSTORE (MODSEQ) is not supported"}
	}
	rows, err := mailbox.ListMessages(s.ctx, s.srv.mb.DB.Q(), sel.folder.ID)
	if err != nil {
		return nil, err
	}
	byUID := make(map[uint32]*mailbox.Message, len(rows))
	for _, m := range rows {
		byUID[m.UID] = m
	}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	var saved []uint32
	data := &imap.SearchData{}
	for i, v := range sel.msgs {
		m := byUID[v.uid]
		if m == nil || sel.gone[v.uid] {
			continue
		}
		c := &candidate{s: s, m: m, seq: uint32(i + 1), max: uint32(len(sel.msgs))}
		ok := c.match(crit)
		c.close()
		if !ok {
			continue
		}
		saved = append(saved, v.uid)
		n := uint32(i + 1)
		if kind == imapserver.NumKindUID {
			n = v.uid
			uids.AddNum(imap.UID(n))
		} else {
			seqs.AddNum(n)
		}
		if data.Min == 0 {
			data.Min = n
		}
		data.Max = n
		data.Count++
	}
	if kind == imapserver.NumKindUID {
		data.All = uids
	} else {
		data.All = seqs
	}
	if o.ReturnSave {
		s.searchRes = saved
	}
	return data, nil
}

func hasModSeq(c *imap.SearchCriteria) bool {
	if c.ModSeq != nil {
		return true
	}
	for i := range c.Not {
		if hasModSeq(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if hasModSeq(&c.Or[i][0]) || hasModSeq(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

// candidate is one message being matched; its bytes are read only when a
// criterion needs them, and at most once.
type candidate struct {
	s        *session
	m        *mailbox.Message
	seq, max uint32

	f      mailbox.ContentReader
	size   int64
	failed bool
	hdr    *textproto.Header
	hdrLen int64
	// the header and body, folded (see fold)
	foldedHdr, foldedBody []byte
}

func (c *candidate) close() {
	if c.f != nil {
		c.f.Close()
	}
}

// open makes the message's bytes available; false when they cannot be
// read (then text criteria do not match).
func (c *candidate) open() bool {
	if c.f != nil || c.failed {
		return !c.failed
	}
	f, size, err := c.s.srv.mb.OpenContent(c.s.ctx, c.m)
	if err != nil {
		c.failed = true
		return false
	}
	c.f, c.size = f, size
	c.hdrLen = headerLength(io.NewSectionReader(f, 0, c.size))
	return true
}

func (c *candidate) header() *textproto.Header {
	if c.hdr == nil {
		h := textproto.Header{}
		if c.open() {
			h = readHeader(io.NewSectionReader(c.f, 0, c.hdrLen))
		}
		c.hdr = &h
	}
	return c.hdr
}

// texts returns the message's header and body, folded.
func (c *candidate) texts() (hdr, body []byte) {
	if c.foldedHdr == nil {
		c.foldedHdr, c.foldedBody = []byte{}, []byte{}
		if c.open() {
			b, err := io.ReadAll(io.NewSectionReader(c.f, 0, c.size))
			if err == nil && int64(len(b)) >= c.hdrLen {
				c.foldedHdr, c.foldedBody = fold(b[:c.hdrLen]), fold(b[c.hdrLen:])
			}
		}
	}
	return c.foldedHdr, c.foldedBody
}

// match evaluates search criteria (RFC 9051 §6.4.4): every key must hold.
func (c *candidate) match(cr *imap.SearchCriteria) bool {
	for _, set := range cr.SeqNum {
		if !inRanges(seqRanges(set), c.seq, c.max) {
			return false
		}
	}
	for _, set := range cr.UID {
		if imap.IsSearchRes(set) {
			if !contains32(c.s.searchRes, c.m.UID) {
				return false
			}
			continue
		}
		if !inRanges(uidRanges(set), c.m.UID, c.s.sel.msgs[len(c.s.sel.msgs)-1].uid) {
			return false
		}
	}
	for _, f := range cr.Flag {
		if !hasFlag(c.m.Flags, f) { // \Recent is never set
			return false
		}
	}
	for _, f := range cr.NotFlag {
		if hasFlag(c.m.Flags, f) {
			return false
		}
	}
	// Dates compare calendar days, disregarding time and time zone
	// (RFC 9051 §6.4.4): INTERNALDATE on the provider's calendar, the
	// Date header in its own zone.
	if !cr.Since.IsZero() || !cr.Before.IsZero() {
		if !inDays(day(c.m.InternalDate.In(c.s.srv.location())), cr.Since, cr.Before) {
			return false
		}
	}
	if !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		sent, ok := sentDate(c.header())
		if !ok || !inDays(day(sent), cr.SentSince, cr.SentBefore) {
			return false
		}
	}
	if cr.Larger > 0 || cr.Smaller > 0 {
		if c.m.Size < 0 && !c.open() {
			return false
		}
		if cr.Larger > 0 && c.m.Size <= cr.Larger {
			return false
		}
		if cr.Smaller > 0 && c.m.Size >= cr.Smaller {
			return false
		}
	}
	for _, hf := range cr.Header {
		if !headerMatch(c.header(), hf.Key, hf.Value) {
			return false
		}
	}
	for _, b := range cr.Body {
		_, body := c.texts()
		if !bytes.Contains(body, fold([]byte(b))) {
			return false
		}
	}
	for _, b := range cr.Text {
		hdr, body := c.texts()
		if f := fold([]byte(b)); !bytes.Contains(hdr, f) && !bytes.Contains(body, f) {
			return false
		}
	}
	for i := range cr.Not {
		if c.match(&cr.Not[i]) {
			return false
		}
	}
	for i := range cr.Or {
		if !c.match(&cr.Or[i][0]) && !c.match(&cr.Or[i][1]) {
			return false
		}
	}
	return true
}

type numRange struct{ start, stop uint32 }

func seqRanges(s imap.SeqSet) []numRange {
	out := make([]numRange, len(s))
	for i, r := range s {
		out[i] = numRange{r.Start, r.Stop}
	}
	return out
}

func uidRanges(s imap.UIDSet) []numRange {
	out := make([]numRange, len(s))
	for i, r := range s {
		out[i] = numRange{uint32(r.Start), uint32(r.Stop)}
	}
	return out
}

// inRanges reports whether n is in a set whose "*" is last.
func inRanges(rs []numRange, n, last uint32) bool {
	for _, r := range rs {
		start, stop := r.start, r.stop
		if start == 0 {
			start = last
		}
		if stop == 0 {
			stop = last
		}
		if start > stop {
			start, stop = stop, start
		}
		if n >= start && n <= stop {
			return true
		}
	}
	return false
}

func contains32(l []uint32, n uint32) bool {
	for _, x := range l {
		if x == n {
			return true
		}
	}
	return false
}

func day(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// inDays: since ≤ d < before, each bound when set (the library gives
// midnight UTC of the day named).
func inDays(d, since, before time.Time) bool {
	if !since.IsZero() && d.Before(day(since)) {
		return false
	}
	if !before.IsZero() && !d.Before(day(before)) {
		return false
	}
	return true
}

func sentDate(h *textproto.Header) (time.Time, bool) {
	v := h.Get("Date")
	if v == "" {
		return time.Time{}, false
	}
	t, err := mail.ParseDate(v)
	return t, err == nil
}

var wordDecoder = new(mime.WordDecoder)

func headerMatch(h *textproto.Header, key, value string) bool {
	value = string(fold([]byte(value)))
	fields := h.FieldsByKey(key)
	for fields.Next() {
		v := fields.Value()
		if d, err := wordDecoder.DecodeHeader(v); err == nil {
			v = d
		}
		if strings.Contains(string(fold([]byte(v))), value) {
			return true
		}
	}
	return false
}

// fold maps text to a form where case does not matter, Turkish included:
// I, ı, İ and i are all i (so that "ZEYTİNYAĞI" finds "zeytinyağı", which
// plain Unicode lower-casing would not). Byte lengths may change, so only
// folded texts are compared with each other.
func fold(b []byte) []byte {
	return bytes.Map(func(r rune) rune {
		r = unicode.ToLower(r)
		if r == 'ı' {
			return 'i'
		}
		return r
	}, b)
}
