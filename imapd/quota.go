package imapd

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kephs/kep/store"
)

// QUOTA (RFC 9208): one quota root per account, the account's storage
// quota (store.Account QuotaBytes / UsedBytes, what the mailbox charges
// and enforces). An account holder's root is "" (RFC 9208 §3.1's usual
// name for a user's own storage); an operator's roots are the addresses of
// the accounts they hold the read grant on, the same names as the
// accounts' parents in their shared namespace. The operator's placeholder
// INBOX has no quota root. STORAGE is reported in units of 1024 octets
// (RFC 9208 §5.1), usage rounded up. An account without a quota
// (QuotaBytes 0) reports its root with no resources.

var _ imapserver.SessionQuota = (*session)(nil)

// QuotaResourceTypes implements imapserver.SessionQuota.
func (s *session) QuotaResourceTypes() []imap.QuotaResourceType {
	return []imap.QuotaResourceType{imap.QuotaResourceStorage}
}

// GetQuotaRoot implements GETQUOTAROOT (RFC 9208 §4.3).
func (s *session) GetQuotaRoot(name string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.resolve(name)
	if err != nil {
		return nil, err
	}
	if t.placeholder() {
		return nil, nil
	}
	return []string{s.quotaRoot(t.acct)}, nil
}

// GetQuota implements GETQUOTA (RFC 9208 §4.2).
func (s *session) GetQuota(root string) (*imapserver.QuotaData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.quotaAccount(root)
	if err != nil {
		return nil, err
	}
	d := &imapserver.QuotaData{Root: root}
	if a.QuotaBytes > 0 {
		d.Resources = []imapserver.QuotaResource{{Type: imap.QuotaResourceStorage,
			Usage: (a.UsedBytes + 1023) / 1024, Limit: a.QuotaBytes / 1024}}
	}
	return d, nil
}

// quotaRoot names an account's quota root for this session's principal.
func (s *session) quotaRoot(a *store.Account) string {
	if s.isOperator() {
		return a.Address
	}
	return ""
}

// quotaAccount returns the account of a quota root, re-read (with the
// principal's grants) through the mailbox, so that the figures are
// current and an account the principal may not read is not found.
func (s *session) quotaAccount(root string) (*store.Account, error) {
	noRoot := &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent,
		Text: "No such quota root: GETQUOTAROOT names the root of a mailbox"}
	if s.p == nil {
		return nil, noRoot
	}
	addr := root
	if !s.isOperator() {
		if root != "" && !strings.EqualFold(root, s.p.Account.Address) {
			return nil, noRoot
		}
		addr = s.p.Account.Address
	} else if root == "" {
		return nil, noRoot
	}
	a, err := s.srv.mb.Account(s.ctx, s.p, addr)
	if err != nil {
		if e := imapErr(err); e == errNoMailbox {
			return nil, noRoot
		}
		return nil, imapErr(err)
	}
	return a, nil
}
