package imapd

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/store"
)

// maxFlags bounds the flags and keywords one message may carry.
const maxFlags = 64

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

// Store implements STORE and UID STORE of flags (RFC 9051 §6.4.6). It never
// counts as reading: \Seen set by STORE issues no evidence.
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
	rows, err := s.rows(idx)
	if err != nil {
		return err
	}
	type result struct {
		i int
		m *mailbox.Message
	}
	var results []result
	changed := false
	err = s.srv.mb.DB.InTx(s.ctx, func(tx *store.Tx) error {
		results, changed = results[:0], false
		for _, i := range idx {
			uid := sel.msgs[i].uid
			if rows[uid] == nil || sel.gone[uid] {
				continue
			}
			m, err := mailbox.GetMessage(s.ctx, tx, sel.folder.ID, uid)
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			next := applyFlags(m.Flags, flags, sf.Op)
			if len(next) > maxFlags {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: fmt.Sprintf("A message carries at most %d flags", maxFlags)}
			}
			if !sameFlags(next, m.Flags) {
				if err := mailbox.SetFlags(s.ctx, tx, sel.folder.ID, uid, next); err != nil {
					return err
				}
				if m, err = mailbox.GetMessage(s.ctx, tx, sel.folder.ID, uid); err != nil {
					return err
				}
				changed = true
			}
			results = append(results, result{i, m})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if changed {
		s.srv.mb.Notifications().Notify(sel.t.acct.ID, sel.folder.ID)
	}
	_, withUID := numSet.(imap.UIDSet)
	for _, r := range results {
		sel.msgs[r.i].modseq = r.m.ModSeq
		if sf.Silent {
			continue
		}
		rw := w.CreateMessage(uint32(r.i + 1))
		if withUID {
			rw.WriteUID(imap.UID(r.m.UID))
		}
		rw.WriteFlags(toFlags(r.m.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func applyFlags(cur, flags []string, op imap.StoreFlagsOp) []string {
	switch op {
	case imap.StoreFlagsSet:
		return append([]string{}, flags...)
	case imap.StoreFlagsAdd:
		out := append([]string{}, cur...)
		for _, f := range flags {
			if !contains(out, f) {
				out = append(out, f)
			}
		}
		return out
	default: // imap.StoreFlagsDel
		var out []string
		for _, f := range cur {
			if !contains(flags, f) {
				out = append(out, f)
			}
		}
		return out
	}
}

func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !contains(b, f) {
			return false
		}
	}
	return true
}

// Copy implements COPY and UID COPY (RFC 9051 §6.4.7, COPYUID: RFC 4315
// §3), within one account.
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, _, err := s.copyMessages(numSet, dest, false)
	return data, err
}

// Move implements MOVE and UID MOVE (RFC 6851 §3; RFC 9051 §6.4.8): the
// copy and the removal commit together. Moving is not deleting: the content
// stays (in the destination), so it needs no delete grant unless the
// destination is Trash.
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

// canHold says whether a folder may receive a message of kind k: evidence
// items live in Delil, Archive and Trash, and nothing else enters Delil
// (kep-domain.md: evidence is "not mixed into the inbox").
func canHold(folder string, k mailbox.Kind) bool {
	if k == mailbox.KindEvidence {
		return folder == mailbox.Delil || folder == mailbox.Archive || folder == mailbox.Trash
	}
	return folder != mailbox.Delil
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
	if dt.acct.ID != sel.t.acct.ID {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "Messages cannot be copied or moved between KEP accounts"}
	}
	verb := "Copying"
	if move {
		verb = "Moving"
	}
	if dt.folder == mailbox.Trash {
		err = s.needGrant(dt.acct, account.GrantDelete, verb+" messages to Trash")
	} else {
		err = s.needGrant(dt.acct, account.GrantArchive, verb+" messages between folders")
	}
	if err != nil {
		return nil, nil, err
	}
	idx := s.indexes(numSet)
	rows, err := s.rows(idx)
	if err != nil {
		return nil, nil, err
	}
	var srcIdx []int
	var msgs []*mailbox.Message
	var charge int64
	for _, i := range idx {
		m := rows[sel.msgs[i].uid]
		if m == nil || sel.gone[m.UID] {
			continue
		}
		if !canHold(dt.folder, m.Kind) {
			return nil, nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
				Text: fmt.Sprintf("%s cannot hold this message (UID %d): evidence items stay in Delil, Archive or Trash, and only evidence enters Delil", dt.name, m.UID)}
		}
		if m.Kind.CountsToQuota() {
			charge += m.Size
		}
		srcIdx, msgs = append(srcIdx, i), append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil, nil, nil
	}
	if move {
		charge = 0 // the sizes leave the source as they enter the destination
	}
	var destF *mailbox.Folder
	var srcUIDs, destUIDs imap.UIDSet
	var unused []blob.Digest
	err = s.srv.mb.DB.InTx(s.ctx, func(tx *store.Tx) error {
		srcUIDs, destUIDs, unused = nil, nil, nil
		if err := checkQuota(s, tx, dt.acct.ID, charge); err != nil {
			return err
		}
		f, err := mailbox.GetFolder(s.ctx, tx, dt.acct.ID, dt.folder)
		if err != nil {
			return err
		}
		destF = f
		var uids []uint32
		for _, m := range msgs {
			uid, err := mailbox.CopyMessage(s.ctx, tx, m, f)
			if err != nil {
				return err
			}
			srcUIDs.AddNum(imap.UID(m.UID))
			destUIDs.AddNum(imap.UID(uid))
			uids = append(uids, m.UID)
		}
		if move {
			unused, err = mailbox.Remove(s.ctx, tx, sel.folder, uids)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, d := range unused { // none in practice: the copies hold the content
		if err := s.srv.mb.Blobs.Delete(d); err != nil {
			s.srv.log.Error("imap move: delete content", "err", err)
		}
	}
	s.srv.mb.Notifications().Notify(dt.acct.ID, destF.ID)
	if move {
		s.srv.mb.Notifications().Notify(dt.acct.ID, sel.folder.ID)
	}
	return &imap.CopyData{UIDValidity: destF.UIDValidity, SourceUIDs: srcUIDs, DestUIDs: destUIDs}, srcIdx, nil
}

// checkQuota refuses to add bytes beyond the account's quota — the same
// figures delivery enforces (store.Account UsedBytes, QuotaBytes) — with NO
// [OVERQUOTA] (the response code of RFC 9208).
func checkQuota(s *session, q store.Querier, accountID, add int64) error {
	if add <= 0 {
		return nil
	}
	a, err := store.GetAccount(s.ctx, q, accountID)
	if err != nil {
		return err
	}
	if a.QuotaBytes > 0 && a.UsedBytes+add > a.QuotaBytes {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota,
			Text: fmt.Sprintf("Over quota: %s uses %d of %d KiB, this needs %d KiB more", a.Address, a.UsedBytes/1024, a.QuotaBytes/1024, (add+1023)/1024)}
	}
	return nil
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
	ms, err := mailbox.ListMessages(s.ctx, s.srv.mb.DB.Q(), sel.folder.ID)
	if err != nil {
		return err
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
	if !s.p.Can(sel.t.acct.ID, account.GrantDelete) {
		if isClose {
			return nil
		}
		return s.needGrant(sel.t.acct, account.GrantDelete, "Deleting messages (EXPUNGE)")
	}
	if err := s.srv.mb.RemoveMessages(s.ctx, s.p, sel.folder, remove); err != nil {
		if errors.Is(err, mailbox.ErrNoAccess) {
			return s.needGrant(sel.t.acct, account.GrantDelete, "Deleting messages (EXPUNGE)")
		}
		return err
	}
	return s.writeExpunged(idx, w.WriteExpunge)
}

// Append implements APPEND (RFC 9051 §6.3.12, APPENDUID: RFC 4315 §3) into
// Drafts, the only folder that takes it. The literal's size is checked
// against the APPENDLIMIT (by imapserver, before the client sends it) and
// the quota before a byte is stored.
func (s *session) Append(name string, r imap.LiteralReader, o *imap.AppendOptions) (*imap.AppendData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.resolve(name)
	if err != nil {
		return nil, err
	}
	if t.folder != mailbox.Drafts {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "Only Drafts accepts APPEND: KEP messages and evidence reach a mailbox only through the provider"}
	}
	if err := s.needGrant(t.acct, account.GrantSend, "Saving drafts"); err != nil {
		return nil, err
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
	if err := checkQuota(s, s.srv.mb.DB.Q(), t.acct.ID, size); err != nil {
		return nil, err
	}
	bw, err := s.srv.mb.Blobs.Create()
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(bw, io.LimitReader(r, size))
	if err != nil || n != size {
		bw.Abort()
		return nil, fmt.Errorf("append: read %d of %d bytes: %v", n, size, err)
	}
	d, gen, err := bw.CommitDeferred()
	if err != nil {
		return nil, err
	}
	if err := s.srv.mb.Blobs.Sync(gen); err != nil {
		return nil, err
	}
	date := o.Time
	if date.IsZero() {
		date = s.srv.now()
	}
	var uid uint32
	var f *mailbox.Folder
	err = s.srv.mb.DB.InTx(s.ctx, func(tx *store.Tx) error {
		if err := checkQuota(s, tx, t.acct.ID, size); err != nil {
			return err
		}
		if f, err = mailbox.GetFolder(s.ctx, tx, t.acct.ID, mailbox.Drafts); err != nil {
			return err
		}
		uid, err = mailbox.Append(s.ctx, tx, f, mailbox.New{Kind: mailbox.KindDraft, Ref: -1, Content: &d, Size: n, InternalDate: date.UTC(), Flags: flags})
		return err
	})
	if err != nil {
		// The stored bytes stay unreferenced: deleting them could race with
		// another APPEND of the same bytes.
		return nil, err
	}
	s.srv.mb.Notifications().Notify(t.acct.ID, f.ID)
	return &imap.AppendData{UID: imap.UID(uid), UIDValidity: f.UIDValidity}, nil
}
