package submission

import (
	"errors"
	"slices"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/address"
	"github.com/kephs/kep/evidence"
)

// Recipients are checked twice with the same words (issue 10.4): at RCPT,
// so that a client learns before it uploads the message that an address
// can never be accepted, and again in DATA (inspect), where the refusal
// becomes rejection evidence (11). A refusal at RCPT issues no evidence:
// one per RCPT would let an authenticated client flood the log. Instead a
// refused RCPT poisons the transaction: a message whose To or Cc still
// names a refused address is refused whole in DATA, with that refusal and
// one 11 carrying its digest (clients such as smtplib and swaks go on to
// DATA with the recipients that were accepted).
//
// The same address twice (in any letter case: KEP addresses are lower
// case, address.Parse) is one recipient: the second RCPT is answered 250
// again and kept once (issue 9.6).

// knownDomain says whether a KEP provider domain (hsNN.kep.tr) belongs to a
// provider messages can go to: this provider's own, or one the node's
// provider directory knows (Options.KnownDomain).
func (s *AccessPoint) knownDomain(domain string) bool {
	domain = strings.ToLower(domain)
	switch {
	case strings.EqualFold(domain, s.opts.Domain):
		return true
	case s.opts.KnownDomain != nil && s.opts.KnownDomain(domain):
		return true
	}
	return false
}

// recipientRefusal checks that r (lower case) can ever be accepted: a KEP
// address at a known provider. A company's subdomain (acme.hs01.kep.tr) is
// its provider's (address.Parse). Nil when it can.
func (s *AccessPoint) recipientRefusal(r string) *Refusal {
	a, err := address.Parse(r)
	if errors.Is(err, address.ErrNotKEPDomain) {
		return refuse(550, codeBadDest, evidence.ReasonCodeRecipientNotKEP, "%s is not a KEP address: KEP messages go only to KEP addresses (…@hsNN.kep.tr).", r)
	}
	if err != nil {
		return refuse(550, smtpCode(5, 1, 3), evidence.ReasonCodeRecipientNotKEP, "%s is not a valid KEP address: %v.", r, err)
	}
	if domain := address.ProviderDomain(a.Provider); !s.knownDomain(domain) {
		return refuse(550, codeBadDest, evidence.ReasonCodeUnknownProvider, "%s is at %s, which is not a provider in the KEP directory.", r, domain)
	}
	return nil
}

// addRcpt handles RCPT TO: a recipient that can never be accepted is refused
// now and remembered; a duplicate is accepted again and kept once.
func (ss *session) addRcpt(to string) error {
	r := strings.ToLower(strings.TrimSpace(to))
	if ref := ss.s.recipientRefusal(r); ref != nil {
		if len(ss.refused) >= ss.s.opts.MaxRecipients {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3},
				Message: "Too many refused recipients in this transaction; start again (RSET) with KEP addresses only"}
		}
		if ss.refused == nil {
			ss.refused = map[string]*Refusal{}
		}
		ss.refused[r] = ref
		// No address in the log (the session's rule); the reason says enough.
		ss.log.Info("recipient refused at RCPT", "reason", ref.Reason.Code)
		return ref.SMTP()
	}
	for _, have := range ss.rcpt {
		if have == r {
			return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 1, 5}, Message: "Recipient already given; it counts once"}
		}
	}
	ss.rcpt = append(ss.rcpt, r)
	return nil
}

// poisoned returns the refusal of a recipient refused at RCPT that the
// message's To or Cc (visible, lower case) still names (the first such
// address in order), and adds such recipients to the rejection's; nil when
// there is none.
func (ss *txn) poisoned(in *inspected, visible map[string]bool) *Refusal {
	var names []string
	for r := range ss.refused {
		if visible[r] {
			names = append(names, r)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	in.recipients = append(in.recipients, names...)
	return ss.refused[names[0]]
}
