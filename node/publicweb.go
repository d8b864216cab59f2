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
// (docs/report.md): its own anchors (trustAnchors) and the federation
// directory when the node has one, so that bundles from other providers
// verify too.
func publicSite(n *provider.Node) *publicweb.Site {
	s := &publicweb.Site{DB: n.DB, ProviderID: n.Config.Provider.ID, Domain: n.Config.Provider.Domain, Now: n.Now,
		Anchors: trustAnchors(n),
		Entries: func(ctx context.Context, start, end int64) ([][]byte, error) {
			return mailbox.LogEntries(ctx, n.DB.Q(), start, end)
		}}
	if n.Directory != nil {
		s.Directory = n.Directory.Current
	}
	return s
}

// trustAnchors are what the node verifies a bundle of its own evidence
// against, on the public page and in the API alike: the provider CA at the
// top of its certificate chains (current and retired), the TSA CAs, the
// log's keys. A bundle another provider issued is verified against the
// federation directory instead (evidence.VerifyTrusted).
func trustAnchors(n *provider.Node) evidence.Anchors {
	cas := x509.NewCertPool()
	var certs []*x509.Certificate
	if n.Cert != nil {
		certs = append(certs, n.Cert.Chain...)
	}
	for _, c := range append(certs, n.Retired...) {
		if c.CheckSignatureFrom(c) == nil && string(c.RawIssuer) == string(c.RawSubject) {
			cas.AddCert(c)
		}
	}
	return evidence.Anchors{ProviderCAs: cas, TSACAs: n.TSARoots, LogKeys: tlog.SplitKeys(n.LogKey)}
}
