package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kephs/kep/store"
)

// Principal is whoever logged in: the holder of a person account, or an
// operator acting for the accounts they hold roles on.
type Principal struct {
	Account  *store.Account        // set when an account's own credentials were used
	Operator *store.Operator       // set when an operator logged in
	Roles    []*store.OperatorRole // the operator's live roles
	// AppPassword is the name of the app password used, empty for the main
	// password.
	AppPassword string
}

// Name identifies the principal in audit records and evidence.
func (p *Principal) Name() string {
	if p.Operator != nil {
		return "operator:" + p.Operator.TCKN
	}
	return "account:" + p.Account.Address
}

// StorePrincipal is the principal's key in the credential tables.
func (p *Principal) StorePrincipal() store.Principal {
	if p.Operator != nil {
		return store.Principal{OperatorID: p.Operator.ID}
	}
	return store.Principal{AccountID: p.Account.ID}
}

// Can reports whether the principal may act on the account with the grant.
// An account's holder may do everything on their own account.
func (p *Principal) Can(accountID int64, g Grant) bool {
	if p.Account != nil {
		return p.Account.ID == accountID
	}
	for _, r := range p.Roles {
		if r.AccountID == accountID && Grant(r.Grants)&g == g {
			return true
		}
	}
	return false
}

// RoleOn returns the operator's role on an account, or nil.
func (p *Principal) RoleOn(accountID int64) *store.OperatorRole {
	for _, r := range p.Roles {
		if r.AccountID == accountID {
			return r
		}
	}
	return nil
}

// Authenticate checks a user name and password. The user name is a KEP
// address (an account's holder) or an operator's TCKN; the password is the
// main password or one of the live app passwords. Failed attempts are
// throttled by the Limiter (per user and source address, see Limiter); a
// throttled attempt returns a *ThrottledError saying how long to wait. The
// error never says which part was wrong.
func (s *Service) Authenticate(ctx context.Context, username, password, remote string) (*Principal, error) {
	username = strings.ToLower(strings.TrimSpace(username))
	var keys limitKeys
	var g gate
	if s.Limiter != nil {
		keys = makeKeys(username, Source(remote))
		var err error
		if g, err = s.Limiter.check(ctx, keys); err != nil {
			return nil, err
		}
		if g.wait > 0 {
			return nil, &ThrottledError{Wait: g.wait}
		}
	}
	p, err := s.authenticate(ctx, username, password)
	if err != nil {
		if s.Limiter != nil && errors.Is(err, ErrBadCredentials) {
			if ferr := s.Limiter.fail(ctx, keys, g); ferr != nil {
				return nil, ferr
			}
		}
		return nil, err
	}
	if s.Limiter != nil {
		if err := s.Limiter.succeed(ctx, keys, g); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (s *Service) authenticate(ctx context.Context, username, password string) (*Principal, error) {
	q := s.DB.Q()
	var p Principal
	var mainHash string
	if strings.Contains(username, "@") {
		a, err := store.GetAccountByAddress(ctx, q, username)
		if errors.Is(err, store.ErrNotFound) {
			CheckPassword(dummyHash, password) // same cost as a real check
			return nil, ErrBadCredentials
		}
		if err != nil {
			return nil, err
		}
		p.Account, mainHash = a, a.Password
	} else {
		o, err := store.GetOperatorByTCKN(ctx, q, username)
		if errors.Is(err, store.ErrNotFound) {
			CheckPassword(dummyHash, password)
			return nil, ErrBadCredentials
		}
		if err != nil {
			return nil, err
		}
		p.Operator, mainHash = o, o.Password
	}
	ok := false
	if mainHash != "" {
		m, err := s.verified.check(username, password, mainHash, s.now())
		if err != nil {
			return nil, err
		}
		ok = m
	}
	if !ok {
		aps, err := store.ListAppPasswords(ctx, q, p.StorePrincipal())
		if err != nil {
			return nil, err
		}
		for _, ap := range aps {
			if m, _ := s.verified.check(username, password, ap.Password, s.now()); m {
				ok, p.AppPassword = true, ap.Name
				break
			}
		}
	}
	if !ok {
		return nil, ErrBadCredentials
	}
	if p.Account != nil && Status(p.Account.Status) != Active {
		return nil, fmt.Errorf("%w: %s is %s", ErrAccountNotActive, p.Account.Address, p.Account.Status)
	}
	if p.Operator != nil {
		roles, err := store.ListRolesOfOperator(ctx, q, p.Operator.ID)
		if err != nil {
			return nil, err
		}
		for _, r := range roles {
			if a, err := store.GetAccount(ctx, q, r.AccountID); err == nil && Status(a.Status) == Active {
				p.Roles = append(p.Roles, r)
			}
		}
	}
	return &p, nil
}

var dummyHash, _ = HashPassword("a password nobody has, for timing")
