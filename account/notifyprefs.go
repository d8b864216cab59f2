package account

// Notice preferences (issue 13.5, docs/notices.md): where the owner of an
// account and each of its operators want to be told of a new message or of
// a deadline about to fall — a mobile number for SMS and/or an ordinary
// e-mail address. Package notice reads them (NoticeTargets) when it queues
// a notice and again when it sends one, so that a preference removed, an
// operator removed or a grant revoked stops the notices still queued.

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/kephs/kep/store"
)

// NoticePrefs is where one principal of an account wants notices. An empty
// SMS or Email turns that channel off.
type NoticePrefs struct {
	OperatorID int64  // 0: the account's owner
	TCKN       string // the operator's, for display (empty for the owner)
	Name       string // the operator's name, for display
	SMS        string // E.164 mobile number, +90…
	Email      string // an ordinary (non-KEP) e-mail address
	UpdatedAt  time.Time
}

// NoticeChange changes a principal's preferences: a nil field keeps the
// value, an empty one turns the channel off.
type NoticeChange struct {
	SMS   *string
	Email *string
}

// ErrNoticeGrant is returned when an operator chooses a channel without the
// grant for it (sms-notice, email-notice).
var ErrNoticeGrant = errors.New("the operator lacks the notice grant")

// NormalizePhone reads a mobile number as E.164 (+ and 8 to 15 digits);
// spaces, dashes, dots and parentheses are dropped, and a Turkish number
// written 05XX… is read as +905XX….
func NormalizePhone(s string) (string, error) {
	var b strings.Builder
	for i, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", fmt.Errorf("the mobile number has %q in it: write it as +905XXXXXXXXX", r)
		}
	}
	n := b.String()
	if strings.HasPrefix(n, "0") && !strings.HasPrefix(n, "00") && len(n) == 11 {
		n = "+9" + n
	} else if strings.HasPrefix(n, "00") {
		n = "+" + n[2:]
	}
	if !strings.HasPrefix(n, "+") || len(n) < 9 || len(n) > 16 || n[1] == '0' {
		return "", fmt.Errorf("%s is not a mobile number in international form: write it as +905XXXXXXXXX", MaskPhone(n))
	}
	return n, nil
}

// normalizeNoticeEmail reads an ordinary e-mail address. A KEP address is
// refused: a notice is plain mail, and a KEP mailbox takes only signed
// KEP messages.
func normalizeNoticeEmail(s, kepDomain string) (string, error) {
	a, err := mail.ParseAddress(strings.TrimSpace(s))
	if err != nil || a.Name != "" {
		return "", fmt.Errorf("the notice e-mail address is not one bare address such as name@example.com (%v)", err)
	}
	at := strings.LastIndexByte(a.Address, '@')
	dom := strings.ToLower(a.Address[at+1:])
	if dom == "kep.tr" || strings.HasSuffix(dom, ".kep.tr") || (kepDomain != "" && (dom == kepDomain || strings.HasSuffix(dom, "."+kepDomain))) {
		return "", fmt.Errorf("notices go to an ordinary e-mail address, not a KEP address (%s): KEP mailboxes take only signed KEP messages", MaskEmail(a.Address))
	}
	return a.Address[:at+1] + dom, nil
}

// MaskPhone shows a mobile number in logs and audit records: the country
// code's first digits and the last two, "+90*******67".
func MaskPhone(s string) string {
	if len(s) <= 5 {
		return strings.Repeat("*", len(s))
	}
	return s[:3] + strings.Repeat("*", len(s)-5) + s[len(s)-2:]
}

// MaskEmail shows an e-mail address in logs and audit records: the first
// letter of the local part and the domain's last label, "a***@***.com".
func MaskEmail(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return "***"
	}
	tld := s[at+1:]
	if i := strings.LastIndexByte(tld, '.'); i >= 0 {
		tld = tld[i:]
	} else {
		tld = ""
	}
	return s[:1] + "***@***" + tld
}

// SetNoticePrefs changes where the owner of addr (tckn empty) or its
// operator tckn wants notices. An operator choosing a channel needs the
// grant for it (sms-notice, email-notice): ErrNoticeGrant says which.
func (s *Service) SetNoticePrefs(ctx context.Context, actor Actor, addr, tckn string, ch NoticeChange) (*NoticePrefs, error) {
	var sms, email string
	var err error
	if ch.SMS != nil && *ch.SMS != "" {
		if sms, err = NormalizePhone(*ch.SMS); err != nil {
			return nil, err
		}
		ch.SMS = &sms
	}
	if ch.Email != nil && *ch.Email != "" {
		if email, err = normalizeNoticeEmail(*ch.Email, s.Domain); err != nil {
			return nil, err
		}
		ch.Email = &email
	}
	now := s.now()
	var p *NoticePrefs
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		a, err := store.GetAccountByAddress(ctx, tx, strings.ToLower(strings.TrimSpace(addr)))
		if err != nil {
			return fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
		}
		if Status(a.Status) == Closed {
			return fmt.Errorf("%w: %s is closed", ErrBadTransition, a.Address)
		}
		p = &NoticePrefs{UpdatedAt: now}
		var grants Grant = AllGrants
		if tckn != "" {
			op, err := store.GetOperatorByTCKN(ctx, tx, tckn)
			if err != nil {
				return fmt.Errorf("%w: TCKN %s on %s", ErrNoSuchOperator, tckn, a.Address)
			}
			r, err := store.GetOperatorRole(ctx, tx, a.ID, op.ID)
			if err != nil {
				return fmt.Errorf("%w: TCKN %s on %s", ErrNoSuchOperator, tckn, a.Address)
			}
			p.OperatorID, p.TCKN, p.Name, grants = op.ID, op.TCKN, op.Name, Grant(r.Grants)
		}
		old, err := noticePrefs(ctx, tx, a.ID, p.OperatorID)
		if err != nil {
			return err
		}
		p.SMS, p.Email = old.SMS, old.Email
		if ch.SMS != nil {
			p.SMS = *ch.SMS
		}
		if ch.Email != nil {
			p.Email = *ch.Email
		}
		if p.SMS != "" && grants&GrantSMSNotice == 0 {
			return fmt.Errorf("%w: TCKN %s has no sms-notice grant on %s (kep operator grant %s %s sms-notice)", ErrNoticeGrant, tckn, a.Address, a.Address, tckn)
		}
		if p.Email != "" && grants&GrantEmailNotice == 0 {
			return fmt.Errorf("%w: TCKN %s has no email-notice grant on %s (kep operator grant %s %s email-notice)", ErrNoticeGrant, tckn, a.Address, a.Address, tckn)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM notice_prefs WHERE account_id = ? AND operator_id = ?`, a.ID, p.OperatorID); err != nil {
			return err
		}
		if p.SMS != "" || p.Email != "" {
			if _, err := tx.Exec(ctx, `INSERT INTO notice_prefs (account_id, operator_id, sms, email, updated_at) VALUES (?, ?, ?, ?, ?)`,
				a.ID, p.OperatorID, p.SMS, p.Email, store.Millis(now)); err != nil {
				return err
			}
		}
		who := "owner"
		if tckn != "" {
			who = "operator=" + tckn
		}
		return audit(ctx, tx, actor, now, "account.notices", a.Address, fmt.Sprintf("%s sms=%s email=%s", who, maskOr(p.SMS, MaskPhone), maskOr(p.Email, MaskEmail)))
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func maskOr(s string, mask func(string) string) string {
	if s == "" {
		return "off"
	}
	return mask(s)
}

func noticePrefs(ctx context.Context, q store.Querier, accountID, operatorID int64) (*NoticePrefs, error) {
	p := &NoticePrefs{OperatorID: operatorID}
	var at int64
	err := q.QueryRow(ctx, `SELECT sms, email, updated_at FROM notice_prefs WHERE account_id = ? AND operator_id = ?`, accountID, operatorID).Scan(&p.SMS, &p.Email, &at)
	if errors.Is(store.MapErr(err), store.ErrNotFound) {
		return p, nil
	}
	p.UpdatedAt = store.FromMillis(at)
	return p, err
}

// NoticePrefsOf lists the notice preferences set on an account: the
// owner's first, then the operators' (those no longer operators included,
// marked by an empty TCKN and Name; their notices stopped).
func (s *Service) NoticePrefsOf(ctx context.Context, addr string) ([]*NoticePrefs, error) {
	a, err := s.Get(ctx, addr)
	if err != nil {
		return nil, err
	}
	rows, err := s.DB.Q().Query(ctx, `SELECT p.operator_id, COALESCE(o.tckn, ''), COALESCE(o.name, ''), p.sms, p.email, p.updated_at
		FROM notice_prefs p LEFT JOIN operators o ON o.id = p.operator_id WHERE p.account_id = ? ORDER BY p.operator_id`, a.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*NoticePrefs
	for rows.Next() {
		p := &NoticePrefs{}
		var at int64
		if err := rows.Scan(&p.OperatorID, &p.TCKN, &p.Name, &p.SMS, &p.Email, &at); err != nil {
			return nil, err
		}
		p.UpdatedAt = store.FromMillis(at)
		out = append(out, p)
	}
	return out, rows.Err()
}

// NoticeTarget is a principal that receives notices now, with the channels
// it may receive them on: an operator's channel is empty without its grant,
// and an operator whose role ended is left out.
type NoticeTarget struct {
	OperatorID int64 // 0: the owner
	SMS        string
	Email      string
}

// NoticeTargets returns who of an account receives notices now, and where
// (q may be the delivery's transaction).
func NoticeTargets(ctx context.Context, q store.Querier, accountID int64) ([]NoticeTarget, error) {
	rows, err := q.Query(ctx, `SELECT p.operator_id, p.sms, p.email, COALESCE(r.grants, -1)
		FROM notice_prefs p LEFT JOIN operator_roles r ON p.operator_id <> 0 AND r.account_id = p.account_id AND r.operator_id = p.operator_id AND r.removed_at IS NULL
		WHERE p.account_id = ? ORDER BY p.operator_id`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []NoticeTarget
	for rows.Next() {
		var t NoticeTarget
		var grants int64
		if err := rows.Scan(&t.OperatorID, &t.SMS, &t.Email, &grants); err != nil {
			return nil, err
		}
		if t.OperatorID != 0 {
			if grants < 0 {
				continue // no longer an operator of the account
			}
			if Grant(grants)&GrantSMSNotice == 0 {
				t.SMS = ""
			}
			if Grant(grants)&GrantEmailNotice == 0 {
				t.Email = ""
			}
		}
		if t.SMS != "" || t.Email != "" {
			out = append(out, t)
		}
	}
	return out, rows.Err()
}
