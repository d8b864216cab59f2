package mailbox

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/store"
)

// Evidence listing and retrieval for every front-end (`kep evidence`, the
// REST API and the web later). Evidence is never deleted by anyone within
// the retention period: these methods only read. Who may read what:
//   - the provider's staff and tools (account.Staff): every evidence;
//   - an account's holder, and an operator or token with the read grant on
//     it: the evidence in the account's Delil (what it sent, account_id)
//     and the evidence about deliveries to it (the evidence's subject is
//     its address).

// EvidenceQuery selects evidence; at least one of Account, HeaderID and
// Recipient is given, and all that are given apply.
type EvidenceQuery struct {
	Account   *store.Account // evidence in this account's Delil (what it sent)
	HeaderID  string         // about the message with this RFC 5322 Message-ID, rejections (11) included
	Recipient string         // about this recipient address
	Limit     int            // most recent N; 0 means 50
}

// EvidenceEntry is one evidence as a list shows it.
type EvidenceEntry struct {
	Seq       int64
	ID        string
	Code      evidence.Code
	Concerns  string // the recipient it concerns, "" for the whole message
	EventTime time.Time
	MessageID int64  // the KEP message (messages.id), 0 for a rejection
	HeaderID  string // the message's Message-ID as the evidence records it
	// Reason is, for negative evidence (11, 21, 31, 41) and deemed read
	// (61), the reasons the evidence gives, as a person reads them; for
	// read (60), how the retrieval was seen.
	Reason string
	// Foreign is set for evidence another provider issued and returned
	// (foreign_evidence); Seq is then its receipt's leaf in our log.
	Foreign bool
}

// maxRejectionScan bounds how many rejections (which have no message row)
// a Message-ID search reads.
const maxRejectionScan = 10000

// mayReadEvidence reports whether p may read an evidence of account
// accountID concerning address subject.
func (s *Service) mayReadEvidence(ctx context.Context, p *account.Principal, st *evidence.Stored) bool {
	if p.Kind() == account.Staff {
		return true
	}
	if st.AccountID != 0 && p.Can(st.AccountID, account.GrantRead) {
		return true
	}
	if st.Subject != "" {
		a, err := store.GetAccountByAddress(ctx, s.DB.Q(), st.Subject)
		if err == nil && p.Can(a.ID, account.GrantRead) {
			return true
		}
	}
	return false
}

// ListEvidence lists evidence, newest first, that p may read.
func (s *Service) ListEvidence(ctx context.Context, p *account.Principal, eq EvidenceQuery) ([]*EvidenceEntry, error) {
	s.init()
	if eq.Account == nil && eq.HeaderID == "" && eq.Recipient == "" {
		return nil, refuse(NotPossible, "Say which evidence: an account, a Message-ID or a recipient")
	}
	if err := s.RefreshRoles(ctx, p); err != nil {
		return nil, err
	}
	if eq.Account != nil && p.Kind() != account.Staff && !p.Can(eq.Account.ID, account.GrantRead) {
		return nil, refuse(NotFound, "No such account: %s", eq.Account.Address)
	}
	limit := eq.Limit
	if limit <= 0 {
		limit = 50
	}
	var where []string
	var args []any
	if eq.Account != nil {
		where, args = append(where, "account_id = ?"), append(args, eq.Account.ID)
	}
	if eq.Recipient != "" {
		where, args = append(where, "subject = ?"), append(args, strings.ToLower(strings.TrimSpace(eq.Recipient)))
	}
	bare := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(eq.HeaderID), "<"), ">")
	if eq.HeaderID != "" {
		where = append(where, "(message_id IN (SELECT id FROM messages WHERE header_id IN (?, ?)) OR (message_id IS NULL AND code = ?))")
		args = append(args, "<"+bare+">", bare, int(evidence.Rejected))
	}
	scan := limit
	if eq.HeaderID != "" {
		scan = maxRejectionScan
	}
	seqs, err := evidenceSeqs(ctx, s.DB.Q(), `SELECT seq FROM evidence WHERE `+strings.Join(where, " AND ")+` ORDER BY seq DESC LIMIT ?`, append(args, scan)...)
	if err != nil {
		return nil, err
	}
	var out []*EvidenceEntry
	for _, seq := range seqs {
		if len(out) >= limit {
			break
		}
		st, err := evidence.GetSeq(ctx, s.DB.Q(), seq)
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
		if eq.HeaderID != "" && strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(e.Message.MessageID), "<"), ">") != bare {
			continue // a rejection of another message
		}
		out = append(out, &EvidenceEntry{Seq: st.Seq, ID: st.ID, Code: st.Code, Concerns: st.Subject, EventTime: st.EventTime,
			MessageID: st.MessageID, HeaderID: e.Message.MessageID, Reason: reasonText(e)})
	}
	return s.withForeign(ctx, p, eq, bare, limit, out) // relaylist.go
}

// GetEvidence returns one evidence by its identifier, when p may read it;
// otherwise it is not found, so that the two cannot be told apart.
func (s *Service) GetEvidence(ctx context.Context, p *account.Principal, id string) (*evidence.Stored, error) {
	s.init()
	if err := s.RefreshRoles(ctx, p); err != nil {
		return nil, err
	}
	st, err := evidence.Get(ctx, s.DB.Q(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !s.mayReadEvidence(ctx, p, st)) {
		return nil, refuse(NotFound, "No evidence %s", id)
	}
	return st, err
}

// evidenceSeqs runs query, which selects evidence leaf indexes, and
// returns them in its order.
func evidenceSeqs(ctx context.Context, q store.Querier, query string, args ...any) ([]int64, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var seqs []int64
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return nil, err
		}
		seqs = append(seqs, seq)
	}
	return seqs, rows.Err()
}
