package mailbox

import (
	"context"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/store"
)

// Usage is what an account sent in a period, for billing: KEP is charged
// per recipient address (docs/kep-rules.md, "Accounts").
type Usage struct {
	From, To   time.Time // [From, To)
	Messages   int64     // messages accepted
	Recipients int64     // recipients of those messages: the billed unit
	Bytes      int64     // their originals' sizes, once per message
	Days       []DayUsage
}

// DayUsage is one day of Usage, by the provider's calendar day
// (Europe/Istanbul).
type DayUsage struct {
	Day        string `json:"day"` // YYYY-MM-DD
	Messages   int64  `json:"messages"`
	Recipients int64  `json:"recipients"`
}

// istanbul is the calendar billing days follow; UTC+3 without daylight
// saving since 2016, fixed here so that no tzdata is needed.
var istanbul = time.FixedZone("Europe/Istanbul", 3*60*60)

// AccountUsage counts what account a sent in [from, to), for a principal
// with the read grant on it.
func (s *Service) AccountUsage(ctx context.Context, p *account.Principal, a *store.Account, from, to time.Time) (*Usage, error) {
	s.init()
	if err := s.RefreshRoles(ctx, p); err != nil {
		return nil, err
	}
	if p.Kind() != account.Staff && !p.Can(a.ID, account.GrantRead) {
		return nil, refuse(NotFound, "No such account: %s", a.Address)
	}
	rows, err := s.DB.Q().Query(ctx, `SELECT m.submitted_at, m.size, (SELECT COUNT(*) FROM deliveries d WHERE d.message_id = m.id)
		FROM messages m WHERE m.sender_account = ? AND m.submitted_at >= ? AND m.submitted_at < ? ORDER BY m.submitted_at`,
		a.ID, store.Millis(from), store.Millis(to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	u := &Usage{From: from, To: to}
	for rows.Next() {
		var at, size, n int64
		if err := rows.Scan(&at, &size, &n); err != nil {
			return nil, err
		}
		u.Messages++
		u.Recipients += n
		u.Bytes += size
		day := store.FromMillis(at).In(istanbul).Format(time.DateOnly)
		if len(u.Days) == 0 || u.Days[len(u.Days)-1].Day != day {
			u.Days = append(u.Days, DayUsage{Day: day})
		}
		d := &u.Days[len(u.Days)-1]
		d.Messages++
		d.Recipients += n
	}
	return u, rows.Err()
}
