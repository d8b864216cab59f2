package mailbox

// A message's status for every front-end (the REST API's
// /messages/{id}/status, the web's evidence timeline): per recipient,
// here or at another provider, where it stands and the evidence that
// says so. Who may read it: the sender's side (the holder, an operator
// with the read grant on the sending account, staff) sees every
// recipient; a recipient's side sees only its own recipients. Anyone
// else is told the message does not exist.

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/address"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// RecipientState is where one recipient's copy stands, as a sender follows
// it; each state is named by the evidence that put it there.
type RecipientState string

const (
	StateAccepted           RecipientState = "accepted"             // accepted here (10), not yet placed or relayed
	StateRelayed            RecipientState = "relayed"              // handed to the recipient's provider, its evidence awaited
	StateAcceptedByProvider RecipientState = "accepted-by-provider" // the recipient's provider accepted it (20)
	StateDelivered          RecipientState = "delivered"            // placed in the recipient's mailbox (40)
	StateRead               RecipientState = "read"                 // read by the recipient (60)
	StateDeemedRead         RecipientState = "deemed-read"          // not opened within the policy period (61)
	StateFailed             RecipientState = "failed"               // refused or undeliverable (21, 31, 41)
)

// RecipientStatus is one recipient of a message.
type RecipientStatus struct {
	Address  string
	Local    bool   // an account at this provider
	Provider string // the recipient's provider domain (hsNN.kep.tr)
	State    RecipientState
	Since    time.Time // the time of the evidence that set State (acceptance for StateAccepted)
	Reason   string    // for StateFailed and StateDeemedRead, the evidence's reasons
	Evidence []*EvidenceEntry
}

// MessageStatus is a message and where each of its recipients stands.
type MessageStatus struct {
	Message    *KEPMessage
	Recipients []*RecipientStatus
	// Evidence is about the whole message (the acceptance, 10), oldest
	// first; each recipient's is in its RecipientStatus.
	Evidence []*EvidenceEntry
}

// FindMessage resolves ref, a message's number (messages.id), its
// Message-ID (with or without angle brackets) or its X-TR-REM-iletiID, to
// a message p may see, and says whether p sees it as its sender (every
// recipient) or only as a recipient. A message p may not see is not
// found, so that the two cannot be told apart.
func (s *Service) FindMessage(ctx context.Context, p *account.Principal, ref string) (*KEPMessage, bool, error) {
	s.init()
	if err := s.RefreshRoles(ctx, p); err != nil {
		return nil, false, err
	}
	ref = strings.TrimSpace(ref)
	var cands []*KEPMessage
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		m, err := GetKEPMessage(ctx, s.DB.Q(), id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, false, err
		}
		if m != nil {
			cands = append(cands, m)
		}
	} else if ref != "" {
		bare := strings.TrimSuffix(strings.TrimPrefix(ref, "<"), ">")
		rows, err := s.DB.Q().Query(ctx, `SELECT `+kepMsgCols+` WHERE header_id IN (?, ?) OR ileti_id = ? ORDER BY id DESC LIMIT 100`, "<"+bare+">", bare, ref)
		if err != nil {
			return nil, false, err
		}
		for rows.Next() {
			m, err := scanKEPMessage(rows)
			if err != nil {
				rows.Close()
				return nil, false, err
			}
			cands = append(cands, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, false, err
		}
	}
	for _, m := range cands {
		if p.Kind() == account.Staff || p.Can(m.SenderAccount, account.GrantRead) {
			return m, true, nil
		}
	}
	for _, m := range cands {
		ds, err := Deliveries(ctx, s.DB.Q(), m.ID)
		if err != nil {
			return nil, false, err
		}
		for _, d := range ds {
			if d.AccountID != 0 && p.Can(d.AccountID, account.GrantRead) {
				return m, false, nil
			}
		}
	}
	return nil, false, refuse(NotFound, "No message %s", ref)
}

// MessageStatus returns where each recipient of the message ref (see
// FindMessage) stands, with its evidence, here and at other providers.
func (s *Service) MessageStatus(ctx context.Context, p *account.Principal, ref string) (*MessageStatus, error) {
	m, asSender, err := s.FindMessage(ctx, p, ref)
	if err != nil {
		return nil, err
	}
	ds, err := Deliveries(ctx, s.DB.Q(), m.ID)
	if err != nil {
		return nil, err
	}
	entries, err := s.messageEvidence(ctx, p, m)
	if err != nil {
		return nil, err
	}
	st := &MessageStatus{Message: m}
	for _, e := range entries {
		if e.Concerns == "" {
			st.Evidence = append(st.Evidence, e)
		}
	}
	for _, d := range ds {
		if !asSender && !(d.AccountID != 0 && p.Can(d.AccountID, account.GrantRead)) {
			continue
		}
		rs := &RecipientStatus{Address: d.Recipient, Local: d.AccountID != 0, State: StateAccepted, Since: m.SubmittedAt}
		if a, err := address.Parse(d.Recipient); err == nil {
			rs.Provider = address.ProviderDomain(a.Provider)
			rs.Local = rs.Local || strings.EqualFold(rs.Provider, s.Domain)
		}
		for _, e := range entries {
			if e.Concerns == d.Recipient {
				rs.Evidence = append(rs.Evidence, e)
			}
		}
		rs.settle(d)
		st.Recipients = append(st.Recipients, rs)
	}
	return st, nil
}

// stateRank orders the states a recipient passes through: a later
// evidence of a lower rank does not undo a higher one (a 40 returned after
// our 31 shows the message arrived after all; docs/relay.md, "Time-outs").
var stateRank = map[RecipientState]int{StateAccepted: 0, StateRelayed: 1, StateAcceptedByProvider: 2, StateFailed: 3, StateDelivered: 4, StateRead: 5, StateDeemedRead: 5}

// settle sets the recipient's state from its delivery row and its
// evidence.
func (rs *RecipientStatus) settle(d *Delivery) {
	set := func(st RecipientState, at time.Time, reason string) {
		if stateRank[st] >= stateRank[rs.State] {
			rs.State, rs.Reason = st, reason
			if !at.IsZero() {
				rs.Since = at
			}
		}
	}
	if d.Transport == queue.Awaiting {
		set(StateRelayed, time.Time{}, "")
	}
	for _, e := range rs.Evidence {
		switch e.Code {
		case evidence.RelayAccepted:
			set(StateAcceptedByProvider, e.EventTime, "")
		case evidence.RelayRejected, evidence.RelayFailure, evidence.NotDelivered:
			set(StateFailed, e.EventTime, e.Reason)
		case evidence.Delivered:
			set(StateDelivered, e.EventTime, "")
		case evidence.Read:
			set(StateRead, e.EventTime, "")
		case evidence.DeemedRead:
			set(StateDeemedRead, e.EventTime, e.Reason)
		}
	}
	switch {
	case d.State == ReadBy && stateRank[rs.State] < stateRank[StateRead]:
		set(StateRead, time.Time{}, "")
	case d.State == Deemed && stateRank[rs.State] < stateRank[StateDeemedRead]:
		set(StateDeemedRead, d.DeemedAt, d.Reason)
	case d.Transport == queue.Delivered && stateRank[rs.State] < stateRank[StateDelivered]:
		set(StateDelivered, d.DeliveredAt, "")
	case d.Transport == queue.Failed && stateRank[rs.State] < stateRank[StateFailed]:
		set(StateFailed, time.Time{}, d.Reason)
	}
}

// messageEvidence lists the evidence about message m that p may read, ours
// and that other providers returned, oldest first.
func (s *Service) messageEvidence(ctx context.Context, p *account.Principal, m *KEPMessage) ([]*EvidenceEntry, error) {
	q := s.DB.Q()
	seqs, err := evidenceSeqs(ctx, q, `SELECT seq FROM evidence WHERE message_id = ? ORDER BY seq`, m.ID)
	if err != nil {
		return nil, err
	}
	var out []*EvidenceEntry
	for _, seq := range seqs {
		st, err := evidence.GetSeq(ctx, q, seq)
		if err != nil {
			return nil, err
		}
		if !s.mayReadEvidence(ctx, p, st) {
			continue
		}
		e, err := evidence.Parse(st.Document)
		if err != nil {
			return nil, err
		}
		out = append(out, &EvidenceEntry{Seq: st.Seq, ID: st.ID, Code: st.Code, Concerns: st.Subject, EventTime: st.EventTime,
			MessageID: st.MessageID, HeaderID: e.Message.MessageID, Reason: reasonText(e)})
	}
	// Evidence other providers returned: the sender's side reads it.
	if p.Kind() == account.Staff || p.Can(m.SenderAccount, account.GrantRead) {
		frows, err := q.Query(ctx, `SELECT seq, bundle FROM foreign_evidence WHERE message_id = ? ORDER BY seq`, m.ID)
		if err != nil {
			return nil, err
		}
		defer frows.Close()
		for frows.Next() {
			var seq int64
			var bundle []byte
			if err := frows.Scan(&seq, &bundle); err != nil {
				return nil, err
			}
			ent, err := foreignEntry(seq, bundle)
			if err != nil {
				return nil, err
			}
			ent.MessageID = m.ID
			out = append(out, ent)
		}
		if err := frows.Err(); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// foreignEntry lists a bundle another provider returned (foreign_evidence).
func foreignEntry(seq int64, bundle []byte) (*EvidenceEntry, error) {
	b, err := evidence.ParseBundle(bundle)
	if err != nil {
		return nil, err
	}
	e, err := evidence.Parse(b.Evidence)
	if err != nil {
		return nil, err
	}
	ent := &EvidenceEntry{Seq: seq, ID: e.ID, Code: e.Code, EventTime: e.EventTime, HeaderID: e.Message.MessageID, Reason: reasonText(e), Foreign: true}
	if len(e.Recipients) == 1 {
		ent.Concerns = e.Recipients[0].Address
	}
	return ent, nil
}

// reasonText is an evidence's reasons as a person reads them.
func reasonText(e *evidence.Evidence) string {
	var reasons []string
	for _, r := range e.Reasons {
		text := r.Text
		if text == "" {
			text = strings.TrimPrefix(r.Code, evidence.ReasonKEPBase)
		}
		reasons = append(reasons, text)
	}
	return strings.Join(reasons, "; ")
}

// Original returns the signed original of message m, which FindMessage
// gave p. To the sender's side it is a copy of what it sent; to a
// recipient it is the message's content, so taking it is a retrieval
// (evidence 60, through Serve as an IMAP body fetch is) of p's copy.
func (s *Service) Original(ctx context.Context, p *account.Principal, m *KEPMessage, asSender bool) ([]byte, error) {
	if !asSender {
		rows, err := s.DB.Q().Query(ctx, `SELECT `+msgCols+` WHERE message_id = ? AND delivery_id IS NOT NULL ORDER BY id`, m.ID)
		if err != nil {
			return nil, err
		}
		var copies []*Message
		for rows.Next() {
			c, err := scanMessage(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			copies = append(copies, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		served := false
		for _, c := range copies {
			f, err := GetFolderByID(ctx, s.DB.Q(), c.FolderID)
			if err != nil || !p.Can(f.AccountID, account.GrantRead) {
				continue
			}
			if err := s.Serve(ctx, p, c, false); err != nil {
				return nil, err
			}
			served = true
			break
		}
		if !served {
			return nil, refuse(NotFound, "The recipient's copy of message %d was deleted; its evidence remains", m.ID)
		}
	}
	data, err := s.Blobs.ReadAll(m.Digest)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, refuse(NotFound, "The content of message %d was deleted by its owners; its evidence and digests remain", m.ID)
	}
	return data, err
}

// ForeignBundle returns, as received, the bundle of evidence id that
// another provider returned for a message p may see as its sender.
func (s *Service) ForeignBundle(ctx context.Context, p *account.Principal, id string) ([]byte, error) {
	s.init()
	if err := s.RefreshRoles(ctx, p); err != nil {
		return nil, err
	}
	var acct int64
	var bundle []byte
	err := s.DB.Q().QueryRow(ctx, `SELECT account_id, bundle FROM foreign_evidence WHERE evidence_id = ?`, id).Scan(&acct, &bundle)
	if errors.Is(store.MapErr(err), store.ErrNotFound) || err == nil && p.Kind() != account.Staff && !p.Can(acct, account.GrantRead) {
		return nil, refuse(NotFound, "No evidence %s", id)
	}
	return bundle, err
}
