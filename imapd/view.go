package imapd

import (
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"

	"github.com/kephs/kep/mailbox"
)

// errNoSelected guards commands the library only sends in the selected
// state; it should never reach a client.
var errNoSelected = &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "No mailbox selected"}

// indexes resolves a sequence set or UID set against the session's view
// (RFC 9051 §9 "sequence-set") and returns the indexes into sel.msgs, in
// order, without duplicates. "*" is the last message (its sequence number
// or UID); a UID range n:* includes the last message even when n is larger
// than its UID (RFC 9051 §6.4.8). "$" is the saved search result (RFC 5182).
// Numbers that name no message are skipped. The work is proportional to the
// number of ranges and of messages named, not to the numbers' size, so 1:*
// and 1:4294967295 cost the same as the mailbox.
func (s *session) indexes(numSet imap.NumSet) []int {
	sel := s.sel
	n := len(sel.msgs)
	if n == 0 {
		return nil
	}
	var out []int
	switch set := numSet.(type) {
	case imap.SeqSet:
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = uint32(n)
			}
			if stop == 0 {
				stop = uint32(n)
			}
			if start > stop {
				start, stop = stop, start
			}
			for seq := uint64(start); seq <= uint64(stop) && seq <= uint64(n); seq++ {
				out = append(out, int(seq-1))
			}
		}
	case imap.UIDSet:
		if imap.IsSearchRes(set) {
			for _, uid := range s.searchRes {
				if seq := sel.seqOf(uid); seq != 0 {
					out = append(out, int(seq-1))
				}
			}
			break
		}
		last := sel.msgs[n-1].uid
		for _, r := range set {
			start, stop := uint32(r.Start), uint32(r.Stop)
			if start == 0 {
				start = last
			}
			if stop == 0 {
				stop = last
			}
			if start > stop {
				start, stop = stop, start
			}
			i := sort.Search(n, func(i int) bool { return sel.msgs[i].uid >= start })
			for ; i < n && sel.msgs[i].uid <= stop; i++ {
				out = append(out, i)
			}
		}
	}
	if len(out) > 1 && !slices.IsSorted(out) {
		slices.Sort(out)
	}
	return slices.Compact(out)
}

// rows loads the store's rows of the messages at the given view indexes,
// by UID. A message expunged by another session since the view was last
// updated has no row.
func (s *session) rows(idx []int) (map[uint32]*mailbox.Message, error) {
	sel := s.sel
	out := make(map[uint32]*mailbox.Message, len(idx))
	if len(idx) == 0 {
		return out, nil
	}
	q := s.srv.mb.DB.Q()
	if len(idx) <= 16 {
		for _, i := range idx {
			m, err := mailbox.GetMessage(s.ctx, q, sel.folder.ID, sel.msgs[i].uid)
			if err != nil {
				if isNotFound(err) {
					continue
				}
				return nil, err
			}
			out[m.UID] = m
		}
		return out, nil
	}
	// One range query: the view's UIDs are sorted, and so are idx.
	ms, err := mailbox.ListMessagesBetween(s.ctx, q, sel.folder.ID, sel.msgs[idx[0]].uid, sel.msgs[idx[len(idx)-1]].uid)
	if err != nil {
		return nil, err
	}
	want := make(map[uint32]bool, len(idx))
	for _, i := range idx {
		want[sel.msgs[i].uid] = true
	}
	for _, m := range ms {
		if want[m.UID] {
			out[m.UID] = m
		}
	}
	return out, nil
}
