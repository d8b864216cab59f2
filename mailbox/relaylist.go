package mailbox

// Evidence other providers returned, in evidence lists beside our own
// (evidencelist.go): the sender's timeline shows a foreign 20 or 40 beside
// a 31 of ours, neither withdrawing the other (docs/relay.md, "Time-outs").

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/store"
)

// foreignEntries lists returned evidence matching eq that p may read (the
// sender's account's: the recipient is at another provider), newest first.
func (s *Service) foreignEntries(ctx context.Context, p *account.Principal, eq EvidenceQuery, bare string, limit int) ([]*EvidenceEntry, error) {
	var where []string
	var args []any
	if eq.Account != nil {
		where, args = append(where, "account_id = ?"), append(args, eq.Account.ID)
	}
	if eq.Recipient != "" {
		where, args = append(where, "recipient = ?"), append(args, strings.ToLower(strings.TrimSpace(eq.Recipient)))
	}
	if eq.HeaderID != "" {
		where, args = append(where, "message_id IN (SELECT id FROM messages WHERE header_id IN (?, ?))"), append(args, "<"+bare+">", bare)
	}
	rows, err := s.DB.Q().Query(ctx, `SELECT seq, account_id, bundle FROM foreign_evidence WHERE `+strings.Join(where, " AND ")+` ORDER BY seq DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*EvidenceEntry
	for rows.Next() {
		var seq, acct int64
		var bundle []byte
		if err := rows.Scan(&seq, &acct, &bundle); err != nil {
			return nil, err
		}
		if p.Kind() != account.Staff && !p.Can(acct, account.GrantRead) {
			continue
		}
		b, err := evidence.ParseBundle(bundle)
		if err != nil {
			return nil, err
		}
		e, err := evidence.Parse(b.Evidence)
		if err != nil {
			return nil, err
		}
		ent := &EvidenceEntry{Seq: seq, ID: e.ID, Code: e.Code, EventTime: e.EventTime, HeaderID: e.Message.MessageID}
		if len(e.Recipients) == 1 {
			ent.Concerns = e.Recipients[0].Address
		}
		var reasons []string
		for _, r := range e.Reasons {
			text := r.Text
			if text == "" {
				text = strings.TrimPrefix(r.Code, evidence.ReasonKEPBase)
			}
			reasons = append(reasons, text)
		}
		ent.Reason = strings.Join(reasons, "; ")
		out = append(out, ent)
	}
	return out, rows.Err()
}

// withForeign merges returned evidence into a list of our own, newest
// (highest leaf) first, at most limit.
func (s *Service) withForeign(ctx context.Context, p *account.Principal, eq EvidenceQuery, bare string, limit int, own []*EvidenceEntry) ([]*EvidenceEntry, error) {
	more, err := s.foreignEntries(ctx, p, eq, bare, limit)
	if err != nil || len(more) == 0 {
		return own, err
	}
	all := append(own, more...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Seq > all[j].Seq })
	if len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// ForeignBundle returns a returned evidence's bundle, unchanged as the
// other provider sent it, when p may read it (the sender's account's);
// otherwise it is not found, as GetEvidence.
func (s *Service) ForeignBundle(ctx context.Context, p *account.Principal, id string) ([]byte, error) {
	s.init()
	if err := s.RefreshRoles(ctx, p); err != nil {
		return nil, err
	}
	var acct int64
	var bundle []byte
	err := s.DB.Q().QueryRow(ctx, `SELECT account_id, bundle FROM foreign_evidence WHERE evidence_id = ?`, id).Scan(&acct, &bundle)
	if errors.Is(store.MapErr(err), store.ErrNotFound) || (err == nil && p.Kind() != account.Staff && !p.Can(acct, account.GrantRead)) {
		return nil, refuse(NotFound, "No evidence %s", id)
	}
	return bundle, err
}
