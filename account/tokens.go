package account

// API tokens (issue 13; docs/api.md, "Tokens"). A token acts as exactly one
// principal, so that evidence names the right person: the holder of one
// account, or one operator confined to their role on that account
// (Principal.Within), within that role's grants as they stand at each
// request. The account's holder and its main operator make tokens for the
// account (the holder for itself or any of its operators, the main
// operator for any operator of it, itself included); the provider's own
// tools make any. A token is shown once; only its SHA-256 is kept.
//
// Why SHA-256 and not argon2id as for passwords: a password is chosen by a
// person and can be guessed, so its hash must make every guess expensive. A
// token is 256 bits from crypto/rand: no guess list exists, and one
// SHA-256 preimage costs 2^256 work, so a slow hash would add nothing but
// a per-request cost (argon2id costs tens of milliseconds and 64 MB, per
// call of a bulk client).

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kephs/kep/store"
)

// TokenPrefix starts every API token, so that secret scanners and people
// recognise one.
const TokenPrefix = "kep_"

// Errors of API tokens.
var (
	ErrBadToken       = errors.New("the API token is not valid: it is unknown, revoked, or its account or operator is no longer active")
	ErrNoSuchToken    = errors.New("no such API token on this account")
	ErrTokenNotMaking = errors.New("only the account's holder, its main operator or the provider may manage its API tokens")
)

// TokenRecord is an API token as lists show it (never the secret).
type TokenRecord struct {
	ID         int64
	Name       string
	Hint       string // the token's first characters
	AccountID  int64
	Address    string // the account's address
	OperatorID int64  // 0: acts as the account's holder
	OperatorTC string // the operator's TCKN, for the provider's tools and the main operator
	CreatedBy  string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero: never used
	RevokedAt  time.Time // zero: live
}

// ActsAs names the principal the token acts as.
func (t *TokenRecord) ActsAs() string {
	if t.OperatorID != 0 {
		return "operator"
	}
	return "holder"
}

// TokenRequest asks for a token on an account.
type TokenRequest struct {
	Name string
	// OperatorTCKN, when set, makes the token act as that operator of the
	// account; empty, as the account's holder.
	OperatorTCKN string
}

// tokenHash is what the store keeps of a token.
func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// MayManage reports whether p may manage account a's API tokens and its
// operators' grants through the API: its holder, its main operator, or
// the provider's staff.
func MayManage(p *Principal, a *store.Account) bool {
	switch p.Kind() {
	case Staff:
		return true
	case Holder:
		return p.Account != nil && p.Account.ID == a.ID
	case Operator:
		r := p.RoleOn(a.ID)
		return r != nil && Role(r.Role) == MainOperator && (p.Within == 0 || p.Within == a.ID)
	}
	return false
}

// CreateToken makes a token on account addr for by (who must be allowed to,
// MayManage) and returns it with the secret, which is never shown
// again.
func (s *Service) CreateToken(ctx context.Context, actor Actor, by *Principal, addr string, req TokenRequest) (*TokenRecord, string, error) {
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || len(req.Name) > 100 {
		return nil, "", errors.New("a token needs a name of 1 to 100 characters, saying what uses it")
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, "", err
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.now()
	t := &TokenRecord{Name: req.Name, Hint: secret[:len(TokenPrefix)+6], CreatedBy: actor.Name, CreatedAt: now}
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		a, err := store.GetAccountByAddress(ctx, tx, strings.ToLower(strings.TrimSpace(addr)))
		if err != nil {
			return fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
		}
		if !MayManage(by, a) {
			return fmt.Errorf("%w (%s)", ErrTokenNotMaking, a.Address)
		}
		if Status(a.Status) != Active {
			return fmt.Errorf("%w: %s is %s", ErrAccountNotActive, a.Address, a.Status)
		}
		t.AccountID, t.Address = a.ID, a.Address
		if req.OperatorTCKN != "" {
			op, err := store.GetOperatorByTCKN(ctx, tx, req.OperatorTCKN)
			if err == nil {
				_, err = store.GetOperatorRole(ctx, tx, a.ID, op.ID)
			}
			if err != nil {
				return fmt.Errorf("%w: TCKN %s on %s", ErrNoSuchOperator, req.OperatorTCKN, a.Address)
			}
			t.OperatorID, t.OperatorTC = op.ID, op.TCKN
		} else if by.Kind() == Operator {
			// An operator's tokens act as an operator: evidence must never
			// name the company where a person acted.
			return errors.New("an operator makes tokens that act as an operator: name one (--operator TCKN)")
		}
		id, err := store.InsertID(ctx, tx, `INSERT INTO api_tokens (hash, hint, name, account_id, operator_id, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			tokenHash(secret), t.Hint, t.Name, a.ID, nullID(t.OperatorID), actor.Name, store.Millis(now))
		if err != nil {
			return err
		}
		t.ID = id
		return audit(ctx, tx, actor, now, "token.create", a.Address, fmt.Sprintf("token=%d name=%q acts-as=%s", id, t.Name, t.ActsAs()))
	})
	if err != nil {
		return nil, "", err
	}
	return t, secret, nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

const tokenCols = `t.id, t.name, t.hint, t.account_id, a.address, COALESCE(t.operator_id, 0), COALESCE(o.tckn, ''), t.created_by, t.created_at, COALESCE(t.last_used_at, 0), COALESCE(t.revoked_at, 0)
	FROM api_tokens t JOIN accounts a ON a.id = t.account_id LEFT JOIN operators o ON o.id = t.operator_id`

func scanToken(r interface{ Scan(...any) error }) (*TokenRecord, error) {
	var t TokenRecord
	var created, used, revoked int64
	if err := r.Scan(&t.ID, &t.Name, &t.Hint, &t.AccountID, &t.Address, &t.OperatorID, &t.OperatorTC, &t.CreatedBy, &created, &used, &revoked); err != nil {
		return nil, store.MapErr(err)
	}
	t.CreatedAt, t.LastUsedAt, t.RevokedAt = store.FromMillis(created), store.FromMillis(used), store.FromMillis(revoked)
	return &t, nil
}

// Tokens lists the tokens of account addr, live and revoked, that by may
// see: all of them for whoever may manage them; an operator's own
// otherwise.
func (s *Service) Tokens(ctx context.Context, by *Principal, addr string) ([]*TokenRecord, error) {
	q := s.DB.Q()
	a, err := store.GetAccountByAddress(ctx, q, strings.ToLower(strings.TrimSpace(addr)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
	}
	where, args := `WHERE t.account_id = ?`, []any{a.ID}
	if !MayManage(by, a) {
		if by.Kind() != Operator || by.RoleOn(a.ID) == nil {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
		}
		where, args = where+` AND t.operator_id = ?`, append(args, by.Operator.ID)
	}
	rows, err := q.Query(ctx, `SELECT `+tokenCols+` `+where+` ORDER BY t.id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*TokenRecord
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes token id of account addr; from the next request on
// it authenticates nobody. Revoking twice is not an error.
func (s *Service) RevokeToken(ctx context.Context, actor Actor, by *Principal, addr string, id int64) (*TokenRecord, error) {
	now := s.now()
	var t *TokenRecord
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		a, err := store.GetAccountByAddress(ctx, tx, strings.ToLower(strings.TrimSpace(addr)))
		if err != nil {
			return fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
		}
		t, err = scanToken(tx.QueryRow(ctx, `SELECT `+tokenCols+` WHERE t.id = ? AND t.account_id = ?`, id, a.ID))
		if err != nil {
			return fmt.Errorf("%w: %d on %s", ErrNoSuchToken, id, a.Address)
		}
		own := by.Kind() == Operator && t.OperatorID == by.Operator.ID
		if !MayManage(by, a) && !own {
			return fmt.Errorf("%w: %d on %s", ErrNoSuchToken, id, a.Address)
		}
		if !t.RevokedAt.IsZero() {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = ?`, store.Millis(now), id); err != nil {
			return err
		}
		t.RevokedAt = now
		return audit(ctx, tx, actor, now, "token.revoke", a.Address, fmt.Sprintf("token=%d name=%q", id, t.Name))
	})
	return t, err
}

// AuthenticateToken turns a token into the principal it acts as, with
// Method AuthToken, and records its use (at most once a minute). Every
// failure is ErrBadToken, saying nothing of which check failed.
func (s *Service) AuthenticateToken(ctx context.Context, secret string) (*Principal, *TokenRecord, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 200 {
		return nil, nil, ErrBadToken
	}
	q := s.DB.Q()
	t, err := scanToken(q.QueryRow(ctx, `SELECT `+tokenCols+` WHERE t.hash = ?`, tokenHash(secret)))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrBadToken
	}
	if err != nil {
		return nil, nil, err
	}
	if !t.RevokedAt.IsZero() {
		return nil, nil, ErrBadToken
	}
	a, err := store.GetAccount(ctx, q, t.AccountID)
	if err != nil {
		return nil, nil, err
	}
	if Status(a.Status) != Active {
		return nil, nil, ErrBadToken
	}
	p := &Principal{Method: AuthToken}
	if t.OperatorID == 0 {
		p.Account = a
	} else {
		op, err := store.GetOperator(ctx, q, t.OperatorID)
		if err != nil {
			return nil, nil, ErrBadToken
		}
		r, err := store.GetOperatorRole(ctx, q, a.ID, op.ID)
		if err != nil {
			return nil, nil, ErrBadToken // the operator left the account: the token died with the role
		}
		p.Operator, p.Roles, p.Within = op, []*store.OperatorRole{r}, a.ID
	}
	now := s.now()
	if s.tokenUse.due(t.ID, now) {
		if _, err := q.Exec(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, store.Millis(now), t.ID); err != nil {
			return nil, nil, err
		}
		t.LastUsedAt = now
	}
	return p, t, nil
}

// tokenUses spares a write per request: a token's last use is written at
// most once a minute per node.
type tokenUses struct {
	mu   sync.Mutex
	last map[int64]time.Time
}

func (u *tokenUses) due(id int64, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		u.last = map[int64]time.Time{}
	}
	if now.Sub(u.last[id]) < time.Minute {
		return false
	}
	if len(u.last) > 100000 {
		clear(u.last)
	}
	u.last[id] = now
	return true
}
