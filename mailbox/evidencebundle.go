package mailbox

import (
	"context"
	"errors"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/store"
)

// EvidenceBundle returns the bundle of the evidence at leaf seq — ours, or
// one another provider returned (relaylist.go) — when p may read it, for
// front-ends that link each step of a timeline to its bundle (the web).
// Evidence p may not read is not found, as in GetEvidence.
func (s *Service) EvidenceBundle(ctx context.Context, p *account.Principal, seq int64) ([]byte, error) {
	s.init()
	if err := s.RefreshRoles(ctx, p); err != nil {
		return nil, err
	}
	st, err := evidence.GetSeq(ctx, s.DB.Q(), seq)
	if err == nil {
		if !s.mayReadEvidence(ctx, p, st) || s.Bundle == nil {
			return nil, refuse(NotFound, "No evidence at %d", seq)
		}
		return s.Bundle(ctx, seq)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	fst, bundle, err := s.foreignItem(ctx, seq)
	if errors.Is(err, store.ErrNotFound) || (err == nil && p.Kind() != account.Staff && !p.Can(fst.AccountID, account.GrantRead)) {
		return nil, refuse(NotFound, "No evidence at %d", seq)
	}
	return bundle, err
}
