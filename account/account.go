// Package account is in charge of KEP accounts and who may act on them:
// creating accounts for verified identities and issuing their addresses
// (never reassigned), the lifecycle applied → verified → active →
// suspended / closed → reopened, registered e-signature certificates,
// operators (işlem yetkilisi) of company and public-body accounts with their
// grants, passwords, app passwords and password recovery, authentication
// with back-off, and the audit trail of every administrative action.
//
// Rules implemented here (docs/kep-rules.md, "Accounts"; Tebliğ on KEP
// addresses): an account's owner never changes; an issued address stays
// reserved for its identity forever and only that identity may reopen it,
// after re-verification, paying the fees since closure; a send-and-receive
// person account needs a registered qualified certificate bound to the
// owner's TCKN.
package account

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Kind is the kind of holder of an account.
type Kind string

const (
	Person  Kind = "person"  // gerçek kişi, identified by TCKN
	Company Kind = "company" // tüzel kişi, identified by VKN or MERSİS number
	Public  Kind = "public"  // kamu kurumu, identified by DETSİS number (or VKN)
)

// Capability says whether an account may send.
type Capability string

const (
	SendReceive Capability = "send-receive" // gönderici/alıcı
	ReceiveOnly Capability = "receive-only" // sadece alıcı
)

// Status is a step of the account lifecycle.
type Status string

const (
	Applied   Status = "applied"
	Verified  Status = "verified"
	Active    Status = "active"
	Suspended Status = "suspended"
	Closed    Status = "closed"
)

// Grant is one permission an operator holds on an account.
type Grant uint32

const (
	GrantRead        Grant = 1 << iota // read messages (okuma)
	GrantSend                          // send messages (gönderme)
	GrantDelete                        // delete message content (silme)
	GrantArchive                       // archive messages (arşivleme)
	GrantSMSNotice                     // receive SMS notices (SMS bildirimi)
	GrantEmailNotice                   // receive e-mail notices (e-posta bildirimi)

	AllGrants = GrantRead | GrantSend | GrantDelete | GrantArchive | GrantSMSNotice | GrantEmailNotice
)

var grantNames = []struct {
	g    Grant
	name string
}{{GrantRead, "read"}, {GrantSend, "send"}, {GrantDelete, "delete"}, {GrantArchive, "archive"}, {GrantSMSNotice, "sms-notice"}, {GrantEmailNotice, "email-notice"}}

// ParseGrant reads a grant name such as "read" or "sms-notice"; "all" is
// every grant.
func ParseGrant(s string) (Grant, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "all" {
		return AllGrants, nil
	}
	for _, g := range grantNames {
		if g.name == s {
			return g.g, nil
		}
	}
	return 0, fmt.Errorf("unknown grant %q (want read, send, delete, archive, sms-notice, email-notice or all)", s)
}

// ParseGrants reads a comma-separated list of grant names.
func ParseGrants(s string) (Grant, error) {
	var out Grant
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		g, err := ParseGrant(part)
		if err != nil {
			return 0, err
		}
		out |= g
	}
	return out, nil
}

// String lists the grant names, comma-separated.
func (g Grant) String() string {
	var names []string
	for _, n := range grantNames {
		if g&n.g != 0 {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// Errors of this package. Each is wrapped with detail naming the account or
// identity concerned; match with errors.Is.
var (
	ErrKindIdentity       = errors.New("the identity does not fit the account kind")
	ErrNeedsCertificate   = errors.New("a send-and-receive account needs a registered qualified e-signature certificate bound to the owner's identity")
	ErrAddressReserved    = errors.New("the address is reserved: addresses are never reassigned")
	ErrNotOwner           = errors.New("the identity presented is not the account's owner")
	ErrNotVerified        = errors.New("identity re-verification is required")
	ErrBadTransition      = errors.New("the account is not in a state that allows this")
	ErrNoSuchAccount      = errors.New("no such account")
	ErrNoSuchOperator     = errors.New("no such operator on this account")
	ErrSecondMainOperator = errors.New("the account already has a main operator")
	ErrOperatorsOnly      = errors.New("only company and public-body accounts have operators")
	ErrAlreadyOperator    = errors.New("the person is already an operator of this account")
	ErrBadCredentials     = errors.New("authentication failed: wrong user name or password")
	ErrThrottled          = errors.New("too many failed logins: try again later")
	ErrAccountNotActive   = errors.New("the account is not active")
)

// Actor says who performs an administrative action and from where, for the
// audit trail.
type Actor struct {
	Name   string // "cli:root", "operator:12345678901", "account:ayse.yilmaz@hs01.kep.tr", "system"
	Remote string // IP address, "cli"
}

// SystemActor is the provider itself (timers, demo seeding).
var SystemActor = Actor{Name: "system", Remote: "local"}

// certSummary describes a certificate in errors and audit records.
func certSummary(c *x509.Certificate) string {
	return fmt.Sprintf("%q (serial %s)", c.Subject.String(), c.SerialNumber.Text(16))
}
