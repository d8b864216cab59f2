package node

import (
	"context"
	"crypto/x509"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/publicweb"
	"github.com/kephs/kep/tlog"
)

// publicSite is the node's public verification and audit pages
// (docs/report.md): its own anchors — the provider CA at the top of its
// certificate chains (current and retired), the TSA CAs, the log's keys —
// and the federation directory when the node has one, so that bundles
// from other providers verify too.
func publicSite(n *provider.Node) *publicweb.Site {
	cas := x509.NewCertPool()
	for _, c := range append(append([]*x509.Certificate{}, n.Cert.Chain...), n.Retired...) {
		if c.CheckSignatureFrom(c) == nil && string(c.RawIssuer) == string(c.RawSubject) {
			cas.AddCert(c)
		}
	}
	s := &publicweb.Site{DB: n.DB, ProviderID: n.Config.Provider.ID, Domain: n.Config.Provider.Domain, Now: n.Now,
		Anchors: evidence.Anchors{ProviderCAs: cas, TSACAs: n.TSARoots, LogKeys: tlog.SplitKeys(n.LogKey)},
		Entries: func(ctx context.Context, start, end int64) ([][]byte, error) {
			return mailbox.LogEntries(ctx, n.DB.Q(), start, end)
		}}
	if n.Directory != nil {
		s.Directory = n.Directory.Current
	}
	return s
}
