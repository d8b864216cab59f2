package imapd

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kephs/kep/mailbox"
)

const maxFlags = mailbox.MaxFlags

var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
	Text: "The mailbox is open read-only (EXAMINE)"}

// checkFlags validates flags a client asks to store (RFC 9051 §2.3.2):
// system flags in their canonical spelling, keywords as they are; \Recent
// and \* cannot be stored.
func checkFlags(in []imap.Flag) ([]string, error) {
	var out []string
	for _, f := range in {
		s := string(f)
		if strings.HasPrefix(s, `\`) {
			canon := ""
			for _, sf := range systemFlags {
				if strings.EqualFold(s, string(sf)) {
					canon = string(sf)
				}
			}
			if canon == "" {
				return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug,
					Text: fmt.Sprintf("Flag %s cannot be stored (system flags: \\Seen \\Answered \\Flagged \\Deleted \\Draft)", s)}
			}
			s = canon
		} else if len(s) > 100 {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Keywords are limited to 100 characters"}
		}
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) > maxFlags {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: fmt.Sprintf("A message carries at most %d flags", maxFlags)}
	}
	return out, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Store implements STORE and UID STORE of flags (RFC 9051 §6.4.6) through
// mailbox.Service.StoreFlags, which checks the grant of every flag changed
// and treats \Seen after a download as the retrieval (evidence 60).
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, sf *imap.StoreFlags, _ *imap.StoreOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.sel
	if sel == nil {
		return errNoSelected
	}
	if sel.readOnly {
		return errReadOnly
	}
	flags, err := checkFlags(sf.Flags)
	if err != nil {
		return err
	}
	idx := s.indexes(numSet)
	var uids []uint32
	at := map[uint32]int{}
	for _, i := range idx {
		uid := sel.msgs[i].uid
		if sel.gone[uid] {
			continue
		}
		uids = append(uids, uid)
		at[uid] = i
	}
	op := mailbox.FlagsReplace
	switch sf.Op {
	case imap.StoreFlagsAdd:
		op = mailbox.FlagsAdd
	case imap.StoreFlagsDel:
		op = mailbox.FlagsRemove
	}
	ms, _, err := s.srv.mb.StoreFlags(s.ctx, s.p, sel.folder, uids, op, flags)
	if err != nil {
		return s.mailboxErr(err, "imap store")
	}
	_, withUID := numSet.(imap.UIDSet)
	for _, m := range ms {
		i, ok := at[m.UID]
		if !ok {
			continue
		}
		sel.msgs[i].modseq = m.ModSeq
		if sf.Silent {
			continue
		}
		rw := w.CreateMessage(uint32(i + 1))
		if withUID {
			rw.WriteUID(imap.UID(m.UID))
		}
		rw.WriteFlags(toFlags(m.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// mailboxErr translates a mailbox error: refusals become NO with their
// reason; anything else is logged and answered without internal detail.
func (s *session) mailboxErr(err error, what string) error {
	var r *mailbox.Refusal
	if errors.As(err, &r) {
		return imapErr(err)
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return err
	}
	s.srv.log.Error(what, "err", err)
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
		Text: "The mailbox could not be changed just now: try again"}
}

// Copy implements COPY and UID COPY (RFC 9051 §6.4.7, COPYUID: RFC 4315
// §3), within one account, through mailbox.Service.Copy.
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, _, err := s.copyMessages(numSet, dest, false)
	return data, err
}

// Move implements MOVE and UID MOVE (RFC 6851 §3; RFC 9051 §6.4.8) through
// mailbox.Service.Move: the copy and the removal commit together.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, moved, err := s.copyMessages(numSet, dest, true)
	if err != nil || data == nil {
		return err
	}
	if err := w.WriteCopyData(data); err != nil {
		return err
	}
	return s.writeExpunged(moved, w.WriteExpunge)
}

// writeExpunged sends EXPUNGE for the given view indexes, highest first, and
// drops them from the view.
func (s *session) writeExpunged(idx []int, write func(uint32) error) error {
	sel := s.sel
	for j := len(idx) - 1; j >= 0; j-- {
		i := idx[j]
		if err := write(uint32(i + 1)); err != nil {
			return err
		}
		sel.msgs = append(sel.msgs[:i], sel.msgs[i+1:]...)
	}
	return nil
}

func (s *session) copyMessages(numSet imap.NumSet, dest string, move bool) (*imap.CopyData, []int, error) {
	sel := s.sel
	if sel == nil {
		return nil, nil, errNoSelected
	}
	if move && sel.readOnly {
		return nil, nil, errReadOnly
	}
	dt, err := s.resolve(dest)
	if err != nil {
		return nil, nil, err
	}
	if dt.placeholder() {
		return nil, nil, errPlaceholder
	}
	idx := s.indexes(numSet)
	var uids []uint32
	at := map[uint32]int{}
	for _, i := range idx {
		uid := sel.msgs[i].uid
		if sel.gone[uid] {
			continue
		}
		uids = append(uids, uid)
		at[uid] = i
	}
	if len(uids) == 0 || sel.t.placeholder() {
		return nil, nil, nil
	}
	df, err := s.srv.mb.OpenFolder(s.ctx, s.p, dt.acct, dt.folder)
	if err != nil {
		return nil, nil, imapErr(err)
	}
	var res *mailbox.CopyResult
	if move {
		res, err = s.srv.mb.Move(s.ctx, s.p, sel.folder, uids, df)
	} else {
		res, err = s.srv.mb.Copy(s.ctx, s.p, sel.folder, uids, df)
	}
	if err != nil {
		return nil, nil, s.mailboxErr(err, "imap copy")
	}
	if len(res.SourceUIDs) == 0 {
		return nil, nil, nil
	}
	var srcUIDs, destUIDs imap.UIDSet
	var srcIdx []int
	for k, uid := range res.SourceUIDs {
		srcUIDs.AddNum(imap.UID(uid))
		destUIDs.AddNum(imap.UID(res.DestUIDs[k]))
		srcIdx = append(srcIdx, at[uid])
	}
	sort.Ints(srcIdx)
	return &imap.CopyData{UIDValidity: res.Dest.UIDValidity, SourceUIDs: srcUIDs, DestUIDs: destUIDs}, srcIdx, nil
}

// Expunge implements EXPUNGE, UID EXPUNGE (RFC 4315 §2.1) and the expunge
// of CLOSE (RFC 9051 §6.4.3, §6.4.1): the messages flagged \Deleted leave the
// folder through mailbox.Service.RemoveMessages, which checks the delete
// grant and deletes content no folder holds any more; evidence stays.
func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.sel
	if sel == nil {
		return errNoSelected
	}
	// CLOSE passes a writer that writes nothing (the zero ExpungeWriter):
	// it removes silently, or not at all on a read-only mailbox.
	isClose := *w == (imapserver.ExpungeWriter{})
	if sel.readOnly {
		if isClose {
			return nil
		}
		return errReadOnly
	}
	var in map[int]bool
	if uids != nil {
		in = map[int]bool{}
		for _, i := range s.indexes(*uids) {
			in[i] = true
		}
	}
	ms, err := s.srv.mb.Messages(s.ctx, s.p, sel.folder)
	if err != nil {
		return imapErr(err)
	}
	var idx []int
	var remove []uint32
	for _, m := range ms {
		if !hasFlag(m.Flags, imap.FlagDeleted) || sel.gone[m.UID] {
			continue
		}
		seq := sel.seqOf(m.UID)
		if seq == 0 || (in != nil && !in[int(seq-1)]) {
			continue // not in the client's view yet, or not asked for
		}
		idx, remove = append(idx, int(seq-1)), append(remove, m.UID)
	}
	if len(remove) == 0 {
		return nil
	}
	if err := s.srv.mb.RemoveMessages(s.ctx, s.p, sel.folder, remove); err != nil {
		if isClose && errors.Is(err, mailbox.ErrNoAccess) {
			return nil // CLOSE without the delete grant closes without expunging
		}
		return s.mailboxErr(err, "imap expunge")
	}
	return s.writeExpunged(idx, w.WriteExpunge)
}

// Append implements APPEND (RFC 9051 §6.3.12, APPENDUID: RFC 4315 §3)
// through mailbox.Service.AppendMessage, which says which folders take it
// (Drafts, Sent with deduplication against the provider's Sent copy, user
// folders). The literal's size is checked against the APPENDLIMIT (by
// imapserver, before the client sends it) and the quota before a byte is
// stored.
func (s *session) Append(name string, r imap.LiteralReader, o *imap.AppendOptions) (*imap.AppendData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.resolve(name)
	if err != nil {
		return nil, err
	}
	if t.placeholder() {
		return nil, errPlaceholder
	}
	size := r.Size()
	if size > s.srv.opts.MaxMessageBytes {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig,
			Text: fmt.Sprintf("Messages are limited to %d bytes", s.srv.opts.MaxMessageBytes)}
	}
	flags, err := checkFlags(o.Flags)
	if err != nil {
		return nil, err
	}
	f, err := s.srv.mb.OpenFolder(s.ctx, s.p, t.acct, t.folder)
	if err != nil {
		return nil, imapErr(err)
	}
	res, err := s.srv.mb.AppendMessage(s.ctx, s.p, f, mailbox.AppendRequest{Content: r, Size: size, Flags: flags, Date: o.Time})
	if err != nil {
		return nil, s.mailboxErr(err, "imap append")
	}
	return &imap.AppendData{UID: imap.UID(res.UID), UIDValidity: res.Folder.UIDValidity}, nil
}
