package account

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/store"
)

// Role is an operator's standing on an account.
type Role string

const (
	MainOperator Role = "main" // ana işlem yetkilisi
	SubOperator  Role = "sub"  // alt işlem yetkilisi
)

// OperatorRequest adds a person as operator of a company or public-body
// account.
type OperatorRequest struct {
	TCKN          string
	Name          string
	Password      string // required when the person is not an operator yet
	Certificate   *x509.Certificate
	Intermediates []*x509.Certificate
	Role          Role
	Grants        Grant // zero: all grants for a main operator, read for a sub-operator
}

// AddOperator makes a person an operator of the account. The person's
// certificate must chain to the trust store and carry their TCKN. The
// database refuses a second main operator.
func (s *Service) AddOperator(ctx context.Context, actor Actor, addr string, req OperatorRequest) (*store.OperatorRole, error) {
	if err := identity.ValidateTCKN(req.TCKN); err != nil {
		return nil, err
	}
	if req.Role == "" {
		req.Role = SubOperator
	}
	if req.Role != MainOperator && req.Role != SubOperator {
		return nil, fmt.Errorf("unknown operator role %q (want main or sub)", req.Role)
	}
	if req.Grants == 0 {
		req.Grants = GrantRead
		if req.Role == MainOperator {
			req.Grants = AllGrants
		}
	}
	now := s.now()
	if req.Certificate != nil {
		if err := s.checkCertificate(req.Certificate, req.Intermediates, now, identity.ID{Scheme: identity.TCKN, Value: req.TCKN}); err != nil {
			return nil, err
		}
	}
	var role *store.OperatorRole
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		a, err := store.GetAccountByAddress(ctx, tx, strings.ToLower(addr))
		if err != nil {
			return fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
		}
		if Kind(a.Kind) == Person {
			return fmt.Errorf("%w: %s is a person's account", ErrOperatorsOnly, a.Address)
		}
		if Status(a.Status) == Closed {
			return fmt.Errorf("%w: %s is closed", ErrBadTransition, a.Address)
		}
		op, err := store.GetOperatorByTCKN(ctx, tx, req.TCKN)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if strings.TrimSpace(req.Name) == "" {
				return errors.New("the operator's name is required (--name)")
			}
			hash, err := HashPassword(req.Password)
			if err != nil {
				return fmt.Errorf("operator password: %w", err)
			}
			op = &store.Operator{TCKN: req.TCKN, Name: req.Name, Password: hash, CreatedAt: now}
			if err := store.InsertOperator(ctx, tx, op); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if req.Certificate != nil {
			if err := store.InsertCertificate(ctx, tx, certRow(req.Certificate, 0, op.ID, now)); err != nil {
				return err
			}
		}
		role = &store.OperatorRole{AccountID: a.ID, OperatorID: op.ID, Role: string(req.Role), Grants: uint32(req.Grants), AddedAt: now,
			TCKN: op.TCKN, Name: op.Name, Address: a.Address}
		if err := store.InsertOperatorRole(ctx, tx, role); err != nil {
			if errors.Is(err, store.ErrConflict) {
				if _, e := store.GetOperatorRole(ctx, tx, a.ID, op.ID); e == nil {
					return fmt.Errorf("%w: TCKN %s on %s", ErrAlreadyOperator, op.TCKN, a.Address)
				}
				return fmt.Errorf("%w: %s (remove it first with kep operator remove)", ErrSecondMainOperator, a.Address)
			}
			return err
		}
		return audit(ctx, tx, actor, now, "operator.add", a.Address, fmt.Sprintf("operator=%s role=%s grants=%s", op.TCKN, req.Role, req.Grants))
	})
	if err != nil {
		return nil, err
	}
	return role, nil
}

func (s *Service) withRole(ctx context.Context, actor Actor, addr, tckn, action string, fn func(tx *store.Tx, r *store.OperatorRole) (string, error)) (*store.OperatorRole, error) {
	now := s.now()
	var role *store.OperatorRole
	err := s.DB.InTx(ctx, func(tx *store.Tx) error {
		a, err := store.GetAccountByAddress(ctx, tx, strings.ToLower(addr))
		if err != nil {
			return fmt.Errorf("%w: %s", ErrNoSuchAccount, addr)
		}
		op, err := store.GetOperatorByTCKN(ctx, tx, tckn)
		if err != nil {
			return fmt.Errorf("%w: TCKN %s on %s", ErrNoSuchOperator, tckn, a.Address)
		}
		r, err := store.GetOperatorRole(ctx, tx, a.ID, op.ID)
		if err != nil {
			return fmt.Errorf("%w: TCKN %s on %s", ErrNoSuchOperator, tckn, a.Address)
		}
		detail, err := fn(tx, r)
		if err != nil {
			return err
		}
		role = r
		return audit(ctx, tx, actor, now, action, a.Address, fmt.Sprintf("operator=%s %s", tckn, detail))
	})
	return role, err
}

// Grant adds grants to an operator's role.
func (s *Service) Grant(ctx context.Context, actor Actor, addr, tckn string, g Grant) (*store.OperatorRole, error) {
	return s.withRole(ctx, actor, addr, tckn, "operator.grant", func(tx *store.Tx, r *store.OperatorRole) (string, error) {
		r.Grants |= uint32(g)
		return "grants=" + Grant(r.Grants).String(), store.SetOperatorGrants(ctx, tx, r.ID, r.Grants)
	})
}

// Revoke removes grants from an operator's role.
func (s *Service) Revoke(ctx context.Context, actor Actor, addr, tckn string, g Grant) (*store.OperatorRole, error) {
	return s.withRole(ctx, actor, addr, tckn, "operator.revoke", func(tx *store.Tx, r *store.OperatorRole) (string, error) {
		r.Grants &^= uint32(g)
		return "grants=" + Grant(r.Grants).String(), store.SetOperatorGrants(ctx, tx, r.ID, r.Grants)
	})
}

// RemoveOperator ends an operator's role on the account (kept as history).
func (s *Service) RemoveOperator(ctx context.Context, actor Actor, addr, tckn string) error {
	_, err := s.withRole(ctx, actor, addr, tckn, "operator.remove", func(tx *store.Tx, r *store.OperatorRole) (string, error) {
		return "role=" + r.Role, store.RemoveOperatorRole(ctx, tx, r.ID, s.now())
	})
	return err
}

// Operators lists the live operators of an account, main first.
func (s *Service) Operators(ctx context.Context, accountID int64) ([]*store.OperatorRole, error) {
	return store.ListOperatorRoles(ctx, s.DB.Q(), accountID)
}

// OperatorCertificates returns the registered certificates of an operator.
func (s *Service) OperatorCertificates(ctx context.Context, operatorID int64) ([]*x509.Certificate, error) {
	return parseCertRows(store.ListCertificates(ctx, s.DB.Q(), 0, operatorID))
}

// AddOperatorCertificate registers another certificate for an operator.
func (s *Service) AddOperatorCertificate(ctx context.Context, actor Actor, tckn string, c *x509.Certificate, inter []*x509.Certificate) error {
	now := s.now()
	if err := s.checkCertificate(c, inter, now, identity.ID{Scheme: identity.TCKN, Value: tckn}); err != nil {
		return err
	}
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		op, err := store.GetOperatorByTCKN(ctx, tx, tckn)
		if err != nil {
			return fmt.Errorf("%w: TCKN %s", ErrNoSuchOperator, tckn)
		}
		if err := store.InsertCertificate(ctx, tx, certRow(c, 0, op.ID, now)); err != nil {
			return err
		}
		return audit(ctx, tx, actor, now, "operator.certificate", "operator:"+tckn, certSummary(c))
	})
}
