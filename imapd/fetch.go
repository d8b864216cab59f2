package imapd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/store"
)

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// fetchPlan is what one FETCH command needs, worked out once.
type fetchPlan struct {
	o     *imap.FetchOptions
	bytes bool // the message's bytes are needed (sections)
	info  bool // what is parsed from them (ENVELOPE, BODYSTRUCTURE), maybe cached
	size  bool // RFC822.SIZE
	seen  bool // a body section without PEEK: \Seen (RFC 9051 §6.4.5)
	read  bool // ... of content, not header: read evidence
	body  bool // content, not header, is served, PEEK or not: recorded (mailbox.Service.Serve)
}

func planFetch(o *imap.FetchOptions) fetchPlan {
	p := fetchPlan{o: o, size: o.RFC822Size, info: o.Envelope || o.BodyStructure != nil,
		bytes: len(o.BodySection) > 0 || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0}
	for _, sec := range o.BodySection {
		if len(sec.Part) > 0 || sec.Specifier == imap.PartSpecifierNone || sec.Specifier == imap.PartSpecifierText {
			p.body = true
		}
		if !sec.Peek {
			p.seen = true
			// BODY[], BODY[TEXT], BODY[1], BODY[1.TEXT], RFC822, RFC822.TEXT
			// are content; BODY[HEADER], BODY[HEADER.FIELDS …], BODY[1.MIME]
			// are not (RFC822.HEADER arrives as BODY.PEEK[HEADER]).
			if sec.Specifier == imap.PartSpecifierNone || sec.Specifier == imap.PartSpecifierText {
				p.read = true
			}
		}
	}
	if len(o.BinarySection) > 0 {
		p.body = true
	}
	for _, sec := range o.BinarySection {
		if !sec.Peek { // BINARY[…] is always content (RFC 3516)
			p.seen, p.read = true, true
		}
	}
	return p
}

// Fetch implements FETCH and UID FETCH (RFC 9051 §6.4.5, §6.4.9; BINARY,
// RFC 3516). Reading a KEP message issues its read evidence before the
// body is sent: see the package comment.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, o *imap.FetchOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil {
		return errNoSelected
	}
	if o.ModSeq || o.ChangedSince != 0 {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "CONDSTORE is not supported"}
	}
	idx := s.indexes(numSet)
	rows, err := s.rows(idx)
	if err != nil {
		return err
	}
	plan := planFetch(o)
	var failed []uint32
	for _, i := range idx {
		v := &s.sel.msgs[i]
		m := rows[v.uid]
		if m == nil || s.sel.gone[v.uid] {
			continue // expunged by another session: nothing to send (RFC 9051 §7.5.1)
		}
		err := s.fetchOne(w, uint32(i+1), v, m, plan)
		var ie *imap.Error
		switch {
		case err == nil:
		case errors.As(err, &ie):
			return err
		case errors.Is(err, errUnreadable):
			failed = append(failed, m.UID)
		default:
			return err
		}
	}
	if len(failed) > 0 {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug,
			Text: fmt.Sprintf("The content of %d message(s) could not be read (UID %d…); the others were sent", len(failed), failed[0])}
	}
	return nil
}

var errUnreadable = errors.New("message content unreadable")

func (s *session) fetchOne(w *imapserver.FetchWriter, seq uint32, v *viewMsg, m *mailbox.Message, plan fetchPlan) error {
	o := plan.o
	mb := s.srv.mb
	var f mailbox.ContentReader
	var size int64
	var info *msgInfo
	if (plan.size || plan.info || plan.bytes) && !m.HasContent {
		// An evidence item or notice gets its bytes (and size) once and
		// for all.
		if err := mb.Materialize(s.ctx, m); err != nil {
			if isNotFound(err) {
				return nil // expunged meanwhile
			}
			s.srv.log.Error("imap fetch: render", "message", m.ID, "err", err)
			return errUnreadable
		}
	}
	if plan.info && !plan.bytes {
		// ENVELOPE and BODYSTRUCTURE alone come from the cache when they
		// can: a KEP message's envelope need not be rendered for them.
		info = s.srv.info.get(mailbox.ContentID(m))
		if info != nil && o.BodyStructure != nil && info.bs == nil {
			info = nil
		}
	}
	if plan.bytes || (plan.info && info == nil) {
		var err error
		f, size, err = mb.OpenContent(s.ctx, m)
		if err != nil {
			if isNotFound(err) && !m.HasContent {
				return nil // expunged meanwhile
			}
			s.srv.log.Error("imap fetch: content", "message", m.ID, "err", err)
			return errUnreadable
		}
		defer f.Close()
		info = s.info(m, f, size, o.BodyStructure != nil)
	}

	// Read evidence first: no byte of a KEP message's body leaves the
	// server without its evidence 60 recorded (docs/kep-rules.md, "Evidence"),
	// and a body served under PEEK is recorded, so that a \Seen the client
	// sets afterwards is the retrieval (docs/evidence.md).
	if plan.body || plan.read {
		if err := mb.Serve(s.ctx, s.p, m, !plan.read); err != nil {
			if errors.Is(err, mailbox.ErrNoAccess) {
				return imapErr(err)
			}
			s.srv.log.Error("imap fetch: read evidence", "message", m.ID, "err", err)
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
				Text: "The read evidence could not be recorded, so the message was not sent: try again"}
		}
	}
	flagsChanged := false
	if plan.seen && !s.sel.readOnly && !hasFlag(m.Flags, imap.FlagSeen) {
		nm, err := mb.MarkSeen(s.ctx, s.p, s.sel.folder, m.UID)
		if err != nil {
			return s.mailboxErr(err, "imap fetch: seen")
		}
		if nm != nil {
			m.Flags, v.modseq, flagsChanged = nm.Flags, nm.ModSeq, true
		}
	}

	// Sections whose bytes are not a plain slice of the file are worked
	// out before the response starts (the writer needs their sizes).
	type part struct {
		r io.Reader
		n int64
	}
	bodies := make([]part, len(o.BodySection))
	for i, sec := range o.BodySection {
		r, n := s.section(sec, f, size, info)
		bodies[i] = part{r, n}
	}
	binaries := make([]part, len(o.BinarySection))
	for i, sec := range o.BinarySection {
		var b []byte
		if len(sec.Part) <= maxPartPath {
			b = imapserver.ExtractBinarySection(io.NewSectionReader(f, 0, size), sec)
		}
		binaries[i] = part{bytes.NewReader(b), int64(len(b))}
	}

	rw := w.CreateMessage(seq)
	if o.UID {
		rw.WriteUID(imap.UID(m.UID))
	}
	if o.Flags || flagsChanged {
		rw.WriteFlags(toFlags(m.Flags))
		if !flagsChanged {
			v.modseq = m.ModSeq
		}
	}
	if o.InternalDate {
		rw.WriteInternalDate(m.InternalDate.In(s.srv.location()))
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(max(m.Size, 0))
	}
	if o.Envelope {
		rw.WriteEnvelope(info.env)
	}
	if o.BodyStructure != nil {
		rw.WriteBodyStructure(info.bs)
	}
	var werr error
	for i, sec := range o.BodySection {
		lw := rw.WriteBodySection(sec, bodies[i].n)
		if _, err := io.CopyN(lw, bodies[i].r, bodies[i].n); err != nil && werr == nil {
			werr = err
		}
		if err := lw.Close(); err != nil && werr == nil {
			werr = err
		}
	}
	for i, sec := range o.BinarySection {
		lw := rw.WriteBinarySection(sec, binaries[i].n)
		if _, err := io.CopyN(lw, binaries[i].r, binaries[i].n); err != nil && werr == nil {
			werr = err
		}
		if err := lw.Close(); err != nil && werr == nil {
			werr = err
		}
	}
	for _, sec := range o.BinarySectionSize {
		var n uint32
		if len(sec.Part) <= maxPartPath {
			n = imapserver.ExtractBinarySectionSize(io.NewSectionReader(f, 0, size), sec)
		}
		rw.WriteBinarySectionSize(sec, n)
	}
	if err := rw.Close(); err != nil && werr == nil {
		werr = err
	}
	return werr
}

// section returns a reader over a body section's bytes and their number.
// The whole message, its header and its text, with or without a partial
// range, are slices of the stored bytes streamed from the file; other
// sections are extracted (RFC 9051 §6.4.5 BODY[<section>]<<partial>>).
func (s *session) section(sec *imap.FetchItemBodySection, f io.ReaderAt, size int64, info *msgInfo) (io.Reader, int64) {
	if len(sec.Part) == 0 && len(sec.HeaderFields) == 0 && len(sec.HeaderFieldsNot) == 0 {
		var start, end int64
		ok := true
		switch sec.Specifier {
		case imap.PartSpecifierNone:
			start, end = 0, size
		case imap.PartSpecifierHeader:
			start, end = 0, info.hdrLen
		case imap.PartSpecifierText:
			start, end = info.hdrLen, size
		default:
			ok = false
		}
		if ok {
			if p := sec.Partial; p != nil {
				if p.Offset >= end-start {
					return bytes.NewReader(nil), 0
				}
				start += p.Offset
				end = min(end, start+p.Size)
			}
			return io.NewSectionReader(f, start, end-start), end - start
		}
	}
	if len(sec.Part) > maxPartPath {
		return bytes.NewReader(nil), 0
	}
	b := imapserver.ExtractBodySection(io.NewSectionReader(f, 0, size), sec)
	return bytes.NewReader(b), int64(len(b))
}

// info returns the cached header length and envelope of a message, and its
// body structure when asked.
func (s *session) info(m *mailbox.Message, f io.ReaderAt, size int64, withStructure bool) *msgInfo {
	c := s.srv.info
	key := mailbox.ContentID(m)
	info := c.get(key)
	if info != nil && (info.bs != nil || !withStructure) {
		return info
	}
	next := &msgInfo{}
	if info != nil {
		*next = *info
	} else {
		next.hdrLen = headerLength(io.NewSectionReader(f, 0, size))
		next.env = envelope(readHeader(io.NewSectionReader(f, 0, next.hdrLen)))
	}
	if withStructure {
		bs, parts := bodyStructure(io.NewSectionReader(f, 0, size))
		if parts > maxCachedParts {
			if info == nil {
				c.put(key, next) // the header's part is small
			}
			big := *next
			big.bs = bs
			return &big
		}
		next.bs = bs
	}
	c.put(key, next)
	return next
}

// location is the calendar INTERNALDATE is shown in (the provider's).
func (s *Server) location() *time.Location {
	if l := s.mb.Policy.Location; l != nil {
		return l
	}
	return time.UTC
}
