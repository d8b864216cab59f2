package account

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kephs/kep/address"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/store"
)

// DefaultQuota is the mailbox quota given when none is asked for: 100 MB.
const DefaultQuota = 100 << 20

// Service applies the account rules over the store.
type Service struct {
	DB       *store.DB
	Trust    *identity.TrustStore // e-signature CAs; required for certificates
	Provider string               // "hs01"
	Domain   string               // "hs01.kep.tr"
	Quota    int64                // default quota; DefaultQuota when 0
	Now      func() time.Time
	Limiter  *Limiter

	verified verifiedCache
	tokenUse tokenUses // tokens.go
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// CreateRequest asks for a new account.
type CreateRequest struct {
	Kind       Kind
	Capability Capability
	Owner      identity.ID // TCKN for persons, VKN or MERSİS for companies, DETSİS or VKN for public bodies
	OwnerName  string      // full name or trade name
	// Persons: the address is made from the names (ad.soyad, .1, .2 … when taken).
	GivenName, Surname string
	// Companies and public bodies: the local part asked for — the MERSİS
	// number or the legal name (transliterated) — and an optional suffix X.
	// Empty means the legal name.
	LocalPart string
	Suffix    string
	// Institutional puts the address under name.hsNN.kep.tr.
	Institutional bool
	Password      string
	// Certificate of the owner (persons), with its intermediates. When it
	// chains to the trust store and is bound to the owner, the application
	// counts as e-signed: verified at once.
	Certificate   *x509.Certificate
	Intermediates []*x509.Certificate
	// VerifiedBy names who checked the identity documents; empty leaves the
	// account "applied" unless a bound certificate verified it.
	VerifiedBy string
	Activate   bool
	QuotaBytes int64
}

func checkKind(k Kind, id identity.ID) error {
	ok := false
	switch k {
	case Person:
		ok = id.Scheme == identity.TCKN
	case Company:
		ok = id.Scheme == identity.VKN || id.Scheme == identity.MERSIS
	case Public:
		ok = id.Scheme == identity.DETSIS || id.Scheme == identity.VKN
	default:
		return fmt.Errorf("unknown account kind %q (want person, company or public)", k)
	}
	if !ok {
		return fmt.Errorf("%w: a %s account cannot be owned by %s", ErrKindIdentity, k, id.Scheme)
	}
	return nil
}

// Create opens an account: it validates the owner's identity, issues the
// address (reserved forever), registers the certificate and, as far as the
// request allows, verifies and activates the account — all in one
// transaction, audited.
func (s *Service) Create(ctx context.Context, actor Actor, req CreateRequest) (*store.Account, error) {
	if err := req.Owner.Validate(); err != nil {
		return nil, err
	}
	if err := checkKind(req.Kind, req.Owner); err != nil {
		return nil, err
	}
	if req.Capability == "" {
		req.Capability = SendReceive
	}
	if req.Capability != SendReceive && req.Capability != ReceiveOnly {
		return nil, fmt.Errorf("unknown capability %q (want send-receive or receive-only)", req.Capability)
	}
	if strings.TrimSpace(req.OwnerName) == "" {
		if req.Kind == Person {
			req.OwnerName = strings.TrimSpace(req.GivenName + " " + req.Surname)
		}
		if req.OwnerName == "" {
			return nil, errors.New("the owner's name is required")
		}
	}
	now := s.now()
	verifiedBy := req.VerifiedBy
	if req.Certificate != nil {
		if req.Kind != Person {
			return nil, fmt.Errorf("%w: certificates of company and public-body accounts belong to their operators (kep operator add --cert)", ErrKindIdentity)
		}
		if err := s.checkCertificate(req.Certificate, req.Intermediates, now, req.Owner); err != nil {
			return nil, err
		}
		if verifiedBy == "" {
			verifiedBy = "e-signature:" + certSummary(req.Certificate)
		}
	} else if req.Kind == Person && req.Capability == SendReceive {
		return nil, ErrNeedsCertificate
	}
	var hash string
	if req.Password != "" {
		var err error
		if hash, err = HashPassword(req.Password); err != nil {
			return nil, err
		}
	} else if req.Kind == Person {
		return nil, errors.New("a person account needs a password (--password)")
	}
	quota := req.QuotaBytes
	if quota == 0 {
		quota = s.Quota
	}
	if quota == 0 {
		quota = DefaultQuota
	}
	acct := &store.Account{
		Kind: string(req.Kind), Capability: string(req.Capability), OwnerID: req.Owner.String(), OwnerName: req.OwnerName,
		Status: string(Applied), QuotaBytes: quota, Password: hash, CreatedAt: now,
	}
	if verifiedBy != "" {
		acct.Status, acct.VerifiedAt, acct.VerifiedBy = string(Verified), now, verifiedBy
		if req.Activate {
			acct.Status = string(Active)
		}
	}
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		addr, err := s.makeAddress(ctx, tx, req)
		if err != nil {
			return err
		}
		acct.Address = addr
		if err := store.IssueAddress(ctx, tx, addr, acct.OwnerID, now); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("%w: %s", ErrAddressReserved, addr)
			}
			return err
		}
		if err := store.InsertAccount(ctx, tx, acct); err != nil {
			return err
		}
		events := []string{string(Applied)}
		if acct.VerifiedBy != "" {
			events = append(events, string(Verified))
		}
		if acct.Status == string(Active) {
			events = append(events, "activated")
		}
		for _, ev := range events {
			if err := store.AddAccountEvent(ctx, tx, &store.AccountEvent{AccountID: acct.ID, At: now, Event: ev}); err != nil {
				return err
			}
		}
		if req.Certificate != nil {
			if err := store.InsertCertificate(ctx, tx, certRow(req.Certificate, acct.ID, 0, now)); err != nil {
				return err
			}
		}
		return audit(ctx, tx, actor, now, "account.create", addr, fmt.Sprintf("kind=%s capability=%s owner=%s status=%s", acct.Kind, acct.Capability, acct.OwnerID, acct.Status))
	})
	if err != nil {
		return nil, err
	}
	return acct, nil
}

// makeAddress chooses the address of a new account (Tebliğ on KEP addresses).
func (s *Service) makeAddress(ctx context.Context, q store.Querier, req CreateRequest) (string, error) {
	domain := s.Domain
	if req.Institutional {
		d, err := address.InstitutionalDomain(req.OwnerName, s.Provider)
		if err != nil {
			return "", err
		}
		domain = d
	}
	if req.Kind == Person && req.LocalPart == "" {
		var lookupErr error
		taken := func(a string) bool {
			t, err := store.AddressTaken(ctx, q, a)
			if err != nil {
				lookupErr = err
				return true
			}
			return t
		}
		a, err := address.ForPerson(req.GivenName, req.Surname, domain, taken)
		if lookupErr != nil {
			return "", lookupErr
		}
		if err != nil {
			return "", err
		}
		return a.String(), nil
	}
	local := req.LocalPart
	if local == "" {
		if req.Owner.Scheme == identity.MERSIS && req.Kind == Company && req.OwnerName == "" {
			local = req.Owner.Value
		} else {
			local = req.OwnerName
		}
	}
	var a address.Address
	var err error
	if identity.ValidateMERSIS(local) == nil {
		a, err = address.ForMERSIS(local, req.Suffix, domain)
	} else {
		a, err = address.ForLegalPerson(local, req.Suffix, domain)
	}
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

func certRow(c *x509.Certificate, accountID, operatorID int64, now time.Time) *store.Certificate {
	sum := sha256.Sum256(c.Raw)
	return &store.Certificate{
		AccountID: accountID, OperatorID: operatorID, Fingerprint: hex.EncodeToString(sum[:]), DER: c.Raw,
		Subject: c.Subject.String(), NotBefore: c.NotBefore, NotAfter: c.NotAfter, AddedAt: now,
	}
}

// checkCertificate requires a certificate that chains to the e-signature
// trust store now and is bound to want.
func (s *Service) checkCertificate(c *x509.Certificate, inter []*x509.Certificate, at time.Time, want identity.ID) error {
	if s.Trust == nil {
		return errors.New("no e-signature trust store is configured (esign.trust_anchors)")
	}
	return s.Trust.CheckSigner(c, inter, at, want)
}

func audit(ctx context.Context, q store.Querier, actor Actor, at time.Time, action, target, detail string) error {
	return store.Audit(ctx, q, &store.AuditRecord{At: at, Actor: actor.Name, Action: action, Target: target, Detail: detail, Remote: actor.Remote})
}

// Get loads an account by address.
func (s *Service) Get(ctx context.Context, addr string) (*store.Account, error) {
	a, err := store.GetAccountByAddress(ctx, s.DB.Q(), strings.ToLower(strings.TrimSpace(addr)))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
	}
	return a, err
}

// transition changes an account's status under the lifecycle rules, with an
// event and an audit record, in one transaction. mutate may adjust fields.
func (s *Service) transition(ctx context.Context, actor Actor, addr string, action string, from []Status, to Status, detail string, mutate func(tx *store.Tx, a *store.Account, now time.Time) (feeDays int, err error)) (*store.Account, error) {
	now := s.now()
	var out *store.Account
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		a, err := store.GetAccountByAddress(ctx, tx, strings.ToLower(strings.TrimSpace(addr)))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
		}
		if err != nil {
			return err
		}
		ok := false
		for _, f := range from {
			ok = ok || Status(a.Status) == f
		}
		if !ok {
			return fmt.Errorf("%w: %s is %s; %s needs it to be %s", ErrBadTransition, a.Address, a.Status, action, joinStatus(from))
		}
		fee := 0
		if mutate != nil {
			if fee, err = mutate(tx, a, now); err != nil {
				return err
			}
		}
		a.Status = string(to)
		if err := store.UpdateAccountState(ctx, tx, a); err != nil {
			return err
		}
		if err := store.AddAccountEvent(ctx, tx, &store.AccountEvent{AccountID: a.ID, At: now, Event: action, Detail: detail, FeeDays: fee}); err != nil {
			return err
		}
		if fee > 0 {
			detail = strings.TrimSpace(detail + fmt.Sprintf(" fee_days=%d", fee))
		}
		out = a
		return audit(ctx, tx, actor, now, "account."+action, a.Address, detail)
	})
	return out, err
}

func joinStatus(ss []Status) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, string(s))
	}
	return strings.Join(parts, " or ")
}

// Verify records that the owner's identity was checked (documents reviewed
// by `by`).
func (s *Service) Verify(ctx context.Context, actor Actor, addr, by string) (*store.Account, error) {
	if strings.TrimSpace(by) == "" {
		return nil, fmt.Errorf("%w: say who checked the identity documents", ErrNotVerified)
	}
	return s.transition(ctx, actor, addr, "verified", []Status{Applied}, Verified, "by="+by, func(_ *store.Tx, a *store.Account, now time.Time) (int, error) {
		a.VerifiedAt, a.VerifiedBy = now, by
		return 0, nil
	})
}

// Activate opens a verified account for use.
func (s *Service) Activate(ctx context.Context, actor Actor, addr string) (*store.Account, error) {
	return s.transition(ctx, actor, addr, "activated", []Status{Verified}, Active, "", nil)
}

// Suspend stops an active account temporarily (it receives nothing and
// cannot log in); Resume undoes it.
func (s *Service) Suspend(ctx context.Context, actor Actor, addr, reason string) (*store.Account, error) {
	return s.transition(ctx, actor, addr, "suspended", []Status{Active}, Suspended, reason, nil)
}

// Resume reactivates a suspended account.
func (s *Service) Resume(ctx context.Context, actor Actor, addr string) (*store.Account, error) {
	return s.transition(ctx, actor, addr, "resumed", []Status{Suspended}, Active, "", nil)
}

// Close closes an account. The address stays reserved for its owner; the
// evidence stays in the log; credentials are revoked.
func (s *Service) Close(ctx context.Context, actor Actor, addr, reason string) (*store.Account, error) {
	return s.transition(ctx, actor, addr, "closed", []Status{Applied, Verified, Active, Suspended}, Closed, reason, func(tx *store.Tx, a *store.Account, now time.Time) (int, error) {
		a.ClosedAt = now
		_, err := store.RevokeCredentials(ctx, tx, store.Principal{AccountID: a.ID}, now)
		return 0, err
	})
}

// FeeDays is the number of started days between closure and reopening, for
// which fees are owed (Tebliğ: reopening after payment of the fees since
// closure).
func FeeDays(closed, reopened time.Time) int {
	if closed.IsZero() || !reopened.After(closed) {
		return 0
	}
	d := reopened.Sub(closed)
	days := int(d / (24 * time.Hour))
	if d%(24*time.Hour) != 0 {
		days++
	}
	return days
}

// Reopen reopens a closed account for its owner only, after the owner's
// identity was verified again (by names who checked it), and records the
// fees owed since closure.
func (s *Service) Reopen(ctx context.Context, actor Actor, addr string, presented identity.ID, by string) (*store.Account, error) {
	if err := presented.Validate(); err != nil {
		return nil, err
	}
	if strings.TrimSpace(by) == "" {
		return nil, fmt.Errorf("%w: reopening needs the owner's identity checked again (--verified-by)", ErrNotVerified)
	}
	return s.transition(ctx, actor, addr, "reopened", []Status{Closed}, Active, "by="+by, func(_ *store.Tx, a *store.Account, now time.Time) (int, error) {
		if a.OwnerID != presented.String() {
			return 0, fmt.Errorf("%w: %s belongs to another identity and can never be issued to %s", ErrNotOwner, a.Address, presented)
		}
		fee := FeeDays(a.ClosedAt, now)
		a.ReopenedAt, a.VerifiedAt, a.VerifiedBy = now, now, by
		return fee, nil
	})
}

// Recover sets a new password after the owner's identity was verified
// again, revoking every session and app password. For company accounts the
// presented identity is the company's and the new password belongs to the
// operator named by operatorTCKN (empty for persons).
func (s *Service) Recover(ctx context.Context, actor Actor, addr string, presented identity.ID, by, operatorTCKN, newPassword string) (revoked int64, err error) {
	if err := presented.Validate(); err != nil {
		return 0, err
	}
	if strings.TrimSpace(by) == "" {
		return 0, fmt.Errorf("%w: password recovery needs the identity checked again (--verified-by)", ErrNotVerified)
	}
	hash, err := HashPassword(newPassword)
	if err != nil {
		return 0, err
	}
	now := s.now()
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		a, err := store.GetAccountByAddress(ctx, tx, strings.ToLower(strings.TrimSpace(addr)))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
		}
		if err != nil {
			return err
		}
		if a.OwnerID != presented.String() {
			return fmt.Errorf("%w: %s does not own %s", ErrNotOwner, presented, a.Address)
		}
		target := a.Address
		var p store.Principal
		if operatorTCKN != "" {
			op, err := store.GetOperatorByTCKN(ctx, tx, operatorTCKN)
			if err != nil {
				return fmt.Errorf("%w: TCKN %s", ErrNoSuchOperator, operatorTCKN)
			}
			if _, err := store.GetOperatorRole(ctx, tx, a.ID, op.ID); err != nil {
				return fmt.Errorf("%w: TCKN %s on %s", ErrNoSuchOperator, operatorTCKN, a.Address)
			}
			if err := store.SetOperatorPassword(ctx, tx, op.ID, hash); err != nil {
				return err
			}
			p, target = store.Principal{OperatorID: op.ID}, a.Address+" operator "+operatorTCKN
		} else {
			if Kind(a.Kind) != Person {
				return fmt.Errorf("%s is used through its operators: name the operator whose password is reset (--operator TCKN)", a.Address)
			}
			if err := store.SetAccountPassword(ctx, tx, a.ID, hash); err != nil {
				return err
			}
			p = store.Principal{AccountID: a.ID}
		}
		if revoked, err = store.RevokeCredentials(ctx, tx, p, now); err != nil {
			return err
		}
		if err := removeTOTP(ctx, tx, p); err != nil { // a lost phone is a reason to recover
			return err
		}
		return audit(ctx, tx, actor, now, "account.recover", target, fmt.Sprintf("verified_by=%s revoked=%d", by, revoked))
	})
	return revoked, err
}

// SetPassword replaces an account's password (the owner changing it).
func (s *Service) SetPassword(ctx context.Context, actor Actor, addr, newPassword string) error {
	hash, err := HashPassword(newPassword)
	if err != nil {
		return err
	}
	now := s.now()
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		a, err := store.GetAccountByAddress(ctx, tx, addr)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
		}
		if err := store.SetAccountPassword(ctx, tx, a.ID, hash); err != nil {
			return err
		}
		return audit(ctx, tx, actor, now, "account.password", a.Address, "")
	})
}

// AddCertificate registers another certificate for a person account's owner.
func (s *Service) AddCertificate(ctx context.Context, actor Actor, addr string, c *x509.Certificate, inter []*x509.Certificate) error {
	now := s.now()
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		a, err := store.GetAccountByAddress(ctx, tx, addr)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
		}
		if Kind(a.Kind) != Person {
			return fmt.Errorf("%w: add the certificate to an operator instead", ErrKindIdentity)
		}
		owner, err := identity.ParseID(a.OwnerID)
		if err != nil {
			return err
		}
		if err := s.checkCertificate(c, inter, now, owner); err != nil {
			return err
		}
		if err := store.InsertCertificate(ctx, tx, certRow(c, a.ID, 0, now)); err != nil {
			return err
		}
		return audit(ctx, tx, actor, now, "account.certificate", a.Address, certSummary(c))
	})
}

// Certificates returns the registered certificates of an account's owner.
func (s *Service) Certificates(ctx context.Context, accountID int64) ([]*x509.Certificate, error) {
	return parseCertRows(store.ListCertificates(ctx, s.DB.Q(), accountID, 0))
}

func parseCertRows(rows []*store.Certificate, err error) ([]*x509.Certificate, error) {
	if err != nil {
		return nil, err
	}
	out := make([]*x509.Certificate, 0, len(rows))
	for _, r := range rows {
		c, err := x509.ParseCertificate(r.DER)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// AddAppPassword creates a password for one mail client and returns it;
// only its hash is kept.
func (s *Service) AddAppPassword(ctx context.Context, actor Actor, p store.Principal, name string) (string, error) {
	pw := GeneratePassword(20)
	hash, err := HashPassword(pw)
	if err != nil {
		return "", err
	}
	now := s.now()
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		if err := store.InsertAppPassword(ctx, tx, &store.AppPassword{Principal: p, Name: name, Password: hash, CreatedAt: now}); err != nil {
			return err
		}
		return audit(ctx, tx, actor, now, "app-password.create", principalName(ctx, tx, p), name)
	})
	return pw, err
}

func principalName(ctx context.Context, q store.Querier, p store.Principal) string {
	if p.OperatorID != 0 {
		if o, err := store.GetOperator(ctx, q, p.OperatorID); err == nil {
			return "operator:" + o.TCKN
		}
		return fmt.Sprintf("operator#%d", p.OperatorID)
	}
	if a, err := store.GetAccount(ctx, q, p.AccountID); err == nil {
		return a.Address
	}
	return fmt.Sprintf("account#%d", p.AccountID)
}
