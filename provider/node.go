package provider

import (
	"context"
	"fmt"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/store"
)

// Node is one provider node: its configuration, store and services.
type Node struct {
	Config   *config.Config
	DB       *store.DB
	ESign    *identity.TrustStore
	Accounts *account.Service
}

// OpenAdmin opens what administrative commands need: the store, the
// e-signature trust store and the account service.
func OpenAdmin(ctx context.Context, cfg *config.Config) (*Node, error) {
	db, err := store.Open(ctx, cfg.DSN())
	if err != nil {
		return nil, err
	}
	trust, err := identity.LoadTrustStore(cfg.Paths(cfg.ESign.TrustAnchors)...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("esign.trust_anchors: %w", err)
	}
	n := &Node{Config: cfg, DB: db, ESign: trust}
	n.Accounts = &account.Service{DB: db, Trust: trust, Provider: cfg.Provider.ID, Domain: cfg.Provider.Domain,
		Quota: cfg.Accounts.DefaultQuota, Limiter: account.NewLimiter(nil)}
	return n, nil
}

// Close releases the node's resources.
func (n *Node) Close() error {
	return n.DB.Close()
}
