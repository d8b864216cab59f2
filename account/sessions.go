package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/kephs/kep/store"
)

// Web sessions, kept in the store (sessions table) so that they can be
// revoked: logging out ends one, password recovery (Recover) and closing an
// account end all of a principal's (store.RevokeCredentials). The browser
// holds a random token; the store holds only its SHA-256, so that a copy of
// the database opens no session.

// ErrNoSession is returned for a token that names no live session.
var ErrNoSession = errors.New("the session has ended: log in again")

// DefaultSessionTTL is how long a web session lasts without logging in
// again.
const DefaultSessionTTL = 12 * time.Hour

func sessionID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewSession starts a session for a principal that just logged in and
// returns its token (for a cookie) and when it ends.
func (s *Service) NewSession(ctx context.Context, p *Principal, ttl time.Duration) (token string, expires time.Time, err error) {
	if p.Account == nil && p.Operator == nil {
		return "", time.Time{}, fmt.Errorf("account: only holders and operators have web sessions")
	}
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	b := make([]byte, 32)
	rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	now := s.now()
	expires = now.Add(ttl)
	err = store.InsertSession(ctx, s.DB.Q(), &store.Session{ID: sessionID(token), Principal: p.StorePrincipal(), CreatedAt: now, ExpiresAt: expires})
	return token, expires, err
}

// Session returns the principal of a live session: not revoked, not
// expired, its account still active (an operator: their roles on active
// accounts, read again now, so that a grant revoked since login applies).
func (s *Service) Session(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, ErrNoSession
	}
	q := s.DB.Q()
	ss, err := store.GetSession(ctx, q, sessionID(token))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	if !ss.RevokedAt.IsZero() || !s.now().Before(ss.ExpiresAt) {
		return nil, ErrNoSession
	}
	p := &Principal{Method: AuthPassword}
	if ss.Principal.OperatorID != 0 {
		if p.Operator, err = store.GetOperator(ctx, q, ss.Principal.OperatorID); err != nil {
			return nil, err
		}
		roles, err := store.ListRolesOfOperator(ctx, q, p.Operator.ID)
		if err != nil {
			return nil, err
		}
		for _, r := range roles {
			if a, err := store.GetAccount(ctx, q, r.AccountID); err == nil && Status(a.Status) == Active {
				p.Roles = append(p.Roles, r)
			}
		}
		return p, nil
	}
	if p.Account, err = store.GetAccount(ctx, q, ss.Principal.AccountID); err != nil {
		return nil, err
	}
	if Status(p.Account.Status) != Active {
		return nil, fmt.Errorf("%w: %s is %s", ErrAccountNotActive, p.Account.Address, p.Account.Status)
	}
	return p, nil
}

// EndSession revokes one session (logging out). An unknown token is not an
// error.
func (s *Service) EndSession(ctx context.Context, token string) error {
	_, err := s.DB.Q().Exec(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, store.Millis(s.now()), sessionID(token))
	return err
}

// EndSessions revokes every session of a principal, as recovery does, and
// says how many ended ("log out everywhere").
func (s *Service) EndSessions(ctx context.Context, actor Actor, p store.Principal) (int64, error) {
	col, id := principalCol(p)
	now := s.now()
	var n int64
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = ? WHERE `+col+` = ? AND revoked_at IS NULL`, store.Millis(now), id)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return audit(ctx, tx, actor, now, "sessions.end", principalName(ctx, tx, p), fmt.Sprintf("ended=%d", n))
	})
	return n, err
}

// AppPasswords lists a principal's live app passwords (names and dates;
// the passwords themselves are kept only as hashes).
func (s *Service) AppPasswords(ctx context.Context, p store.Principal) ([]*store.AppPassword, error) {
	return store.ListAppPasswords(ctx, s.DB.Q(), p)
}

// ErrNoAppPassword is returned for an app password that is not the
// principal's or was revoked already.
var ErrNoAppPassword = errors.New("no such app password: it was revoked already")

// RevokeAppPassword revokes one of the principal's app passwords: the mail
// client using it can no longer log in.
func (s *Service) RevokeAppPassword(ctx context.Context, actor Actor, p store.Principal, id int64) error {
	col, pid := principalCol(p)
	now := s.now()
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE app_passwords SET revoked_at = ? WHERE id = ? AND `+col+` = ? AND revoked_at IS NULL`, store.Millis(now), id, pid)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoAppPassword
		}
		return audit(ctx, tx, actor, now, "app-password.revoke", principalName(ctx, tx, p), fmt.Sprint(id))
	})
}
