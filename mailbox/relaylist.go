package mailbox

// Evidence other providers returned, in evidence lists beside our own
// (evidencelist.go): the sender's timeline shows a foreign 20 or 40 beside
// a 31 of ours, neither withdrawing the other (docs/relay.md, "Time-outs").

import (
	"context"
	"sort"
	"strings"

	"github.com/kephs/kep/account"
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
		ent, err := foreignEntry(seq, bundle)
		if err != nil {
			return nil, err
		}
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
