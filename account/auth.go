package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kephs/kep/store"
)

// PrincipalKind says what sort of party a Principal is. Every front-end
// (IMAP, SMTP submission, the REST API, the web, the relay between
// providers, the provider's own tools) turns its authentication into one
// Principal, and the mailbox's rules (mailbox.Service methods that take a
// principal) decide from it alone.
type PrincipalKind string

const (
	Holder   PrincipalKind = "holder"   // the holder of an account, with the account's own credentials
	Operator PrincipalKind = "operator" // a person acting for company/public-body accounts, within their grants
	Token    PrincipalKind = "token"    // an API token, within its scope on one account
	Peer     PrincipalKind = "peer"     // another KEP provider (relay); no mailbox rights
	Staff    PrincipalKind = "staff"    // the provider's own staff and tools (kep CLI); no mailbox rights, evidence read-only
)

// AuthMethod is how the principal proved who they are. It feeds the
// evidence's SenderAuthenticationDetails (ETSI EN 319 532-3 §5.2.2) and the
// audit.
type AuthMethod string

const (
	AuthPassword    AuthMethod = "password"     // the main password
	AuthAppPassword AuthMethod = "app-password" // a named app password
	AuthToken       AuthMethod = "token"        // an API bearer token
	AuthCertificate AuthMethod = "certificate"  // a client certificate (mutual TLS) or a qualified e-signature
	AuthLocal       AuthMethod = "local"        // the provider's own command line, on the node
)

// APIToken is the scope of an API token: one account, some grants.
type APIToken struct {
	Name      string
	AccountID int64
	Scope     Grant
}

// Principal is whoever acts: the holder of an account, an operator acting
// for the accounts they hold roles on, an API token, a peer provider or the
// provider's staff. Exactly one of Account (holder), Operator, Token, Peer
// and Staff says which; Kind returns it.
type Principal struct {
	Account  *store.Account        // set when an account's own credentials were used
	Operator *store.Operator       // set when an operator logged in
	Roles    []*store.OperatorRole // the operator's live roles
	Token    *APIToken             // set for an API token
	Peer     string                // a peer provider's domain, for the relay
	Staff    string                // a staff member or tool name, for the provider's own tools
	// Method is how the principal authenticated; empty means a password
	// for holders and operators.
	Method AuthMethod
	// AppPassword is the name of the app password used, empty for the main
	// password.
	AppPassword string
	// Within, when set, confines an operator to their role on this one
	// account: an API token made for it (tokens.go) carries no grant on
	// the operator's other accounts.
	Within int64
}

// Kind says what sort of party the principal is.
func (p *Principal) Kind() PrincipalKind {
	switch {
	case p.Operator != nil:
		return Operator
	case p.Token != nil:
		return Token
	case p.Peer != "":
		return Peer
	case p.Staff != "":
		return Staff
	}
	return Holder
}

// AuthMethod returns how the principal authenticated.
func (p *Principal) AuthMethod() AuthMethod {
	switch {
	case p.Method != "":
		return p.Method
	case p.AppPassword != "":
		return AuthAppPassword
	case p.Token != nil:
		return AuthToken
	case p.Peer != "":
		return AuthCertificate
	case p.Staff != "":
		return AuthLocal
	}
	return AuthPassword
}

// Name identifies the principal in audit records and evidence.
func (p *Principal) Name() string {
	switch p.Kind() {
	case Operator:
		return "operator:" + p.Operator.TCKN
	case Token:
		return "token:" + p.Token.Name
	case Peer:
		return "peer:" + p.Peer
	case Staff:
		return "staff:" + p.Staff
	}
	return "account:" + p.Account.Address
}

// StorePrincipal is the principal's key in the credential tables.
func (p *Principal) StorePrincipal() store.Principal {
	if p.Operator != nil {
		return store.Principal{OperatorID: p.Operator.ID}
	}
	if p.Account != nil {
		return store.Principal{AccountID: p.Account.ID}
	}
	return store.Principal{}
}

// Can reports whether the principal may act on the account with the grant.
// An account's holder may do everything on their own account; an operator
// what their role's grants allow; a token what its scope allows. Peers and
// staff hold no grant on any mailbox.
func (p *Principal) Can(accountID int64, g Grant) bool {
	switch p.Kind() {
	case Holder:
		return p.Account != nil && p.Account.ID == accountID
	case Operator:
		for _, r := range p.Roles {
			if r.AccountID == accountID && (p.Within == 0 || p.Within == accountID) && Grant(r.Grants)&g == g {
				return true
			}
		}
	case Token:
		return p.Token.AccountID == accountID && p.Token.Scope&g == g
	}
	return false
}

// Grants returns what the principal holds on the account, for messages
// that say what is missing ("your grants: read").
func (p *Principal) Grants(accountID int64) Grant {
	switch p.Kind() {
	case Holder:
		if p.Account != nil && p.Account.ID == accountID {
			return AllGrants
		}
	case Operator:
		if r := p.RoleOn(accountID); r != nil {
			return Grant(r.Grants)
		}
	case Token:
		if p.Token.AccountID == accountID {
			return p.Token.Scope
		}
	}
	return 0
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
	return s.limited(ctx, username, remote, func() (*Principal, error) { return s.authenticate(ctx, username, password, false) })
}

// limited runs one login attempt under the Limiter: a throttled attempt
// does not run; a failure (ErrBadCredentials, ErrBadSecondFactor) counts.
func (s *Service) limited(ctx context.Context, username, remote string, attempt func() (*Principal, error)) (*Principal, error) {
	if s.Limiter == nil {
		return attempt()
	}
	keys := makeKeys(username, Source(remote))
	g, err := s.Limiter.check(ctx, keys)
	if err != nil {
		return nil, err
	}
	if g.wait > 0 {
		return nil, &ThrottledError{Wait: g.wait}
	}
	p, err := attempt()
	if err != nil {
		if errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrBadSecondFactor) {
			if ferr := s.Limiter.fail(ctx, keys, g); ferr != nil {
				return nil, ferr
			}
		}
		return nil, err
	}
	if err := s.Limiter.succeed(ctx, keys, g); err != nil {
		return nil, err
	}
	return p, nil
}

// authenticate checks the password. For the web (web true) that is the
// main password, or an app password the caller then refuses; for mail
// clients, when the principal's second factor is on (totp.go), only an app
// password: the main password alone would bypass the second factor.
func (s *Service) authenticate(ctx context.Context, username, password string, web bool) (*Principal, error) {
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
	secondFactor := false
	if ok && !web {
		on, err := totpEnabled(ctx, q, p.StorePrincipal())
		if err != nil {
			return nil, err
		}
		ok, secondFactor = !on, on
	}
	if !ok {
		aps, err := store.ListAppPasswords(ctx, q, p.StorePrincipal())
		if err != nil {
			return nil, err
		}
		for _, ap := range aps {
			if m, _ := s.verified.check(username, password, ap.Password, s.now()); m {
				ok, p.AppPassword, p.Method = true, ap.Name, AuthAppPassword
				break
			}
		}
	}
	if !ok && secondFactor {
		return nil, fmt.Errorf("%w: two-step verification is on for this user, so mail clients log in with an app password (made on the web mail's security page)", ErrBadCredentials)
	}
	if !ok {
		return nil, ErrBadCredentials
	}
	if p.Method == "" {
		p.Method = AuthPassword
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
