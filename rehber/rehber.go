// Package rehber is in charge of the KEP Rehberi, the directory of KEP
// addresses (Tebliğ on the KEP Rehberi and KEP addresses, 2012, amended
// 2013; docs/relay.md, "KEP Rehberi query"): who may look up what, at this
// provider and across the providers of the authority's directory.
//
//   - Companies and public bodies are public: anyone may search them by
//     name (substring, Turkish-aware folding) or by MERSİS, VKN or DETSİS
//     number.
//   - Persons are found only by an exact TCKN, only by an authenticated
//     principal, within a lookup budget (per principal and per source
//     address), and every lookup is written to the audit trail with the
//     TCKN masked. The answer says only whether addresses exist and what
//     they are: never a name, never a list by anything but the number.
//   - A lookup asks the other providers of the directory concurrently over
//     HTTPS with mutual TLS, both sides pinned by the directory, and merges
//     their answers, each entry naming its provider.
//
// Which accounts are listed: active and suspended ones (a suspended
// account is still its holder's address and comes back; the entry says
// "suspended" so a sender knows why a message would not be delivered now).
// A closed address is not listed: it stays reserved for its holder forever
// (store: addresses are append-only) but reaches nobody, so telling it
// would only invite messages that fail. Applied and verified accounts are
// not listed until they are active.
package rehber

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kephs/kep/address"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/store"
)

// Entry is one listed address.
type Entry struct {
	Provider string `json:"provider"`       // directory id of the provider that holds it ("hs02")
	Address  string `json:"address"`        // the KEP address
	Kind     string `json:"kind"`           // person, company, public
	Status   string `json:"status"`         // active, suspended
	Name     string `json:"name,omitempty"` // organisations only: the registered name
	ID       string `json:"id,omitempty"`   // organisations only: "MERSIS:…", "VKN:…", "DETSIS:…"
}

// Query is an organisation search: exactly one field is set.
type Query struct {
	Name   string // substring of the name, folded (see Fold)
	MERSIS string
	VKN    string
	DETSIS string
}

// MinNameLength is the shortest folded name a search accepts.
const MinNameLength = 3

// MaxEntries caps the entries of one provider's answer.
const MaxEntries = 50

// Errors of a query the caller got wrong.
var (
	ErrBadQuery    = errors.New("rehber: bad query")
	ErrBadTCKN     = errors.New("rehber: not a valid TCKN")
	ErrNoPrincipal = errors.New("rehber: a TCKN lookup needs a logged-in user")
)

// Principal is whoever asks for a TCKN: *account.Principal, or an API
// token's holder. Name identifies them in the audit trail.
type Principal interface {
	Name() string
}

// Service answers Rehber lookups over the store and, when it has a
// directory and a peer client, over the other providers.
type Service struct {
	DB       *store.DB
	Provider string // this provider's directory id ("hs01")
	// Directory returns the current provider directory (directory.Keeper's
	// Current); nil, or returning nil, means local answers only.
	Directory func() *directory.Directory
	// Peers asks the other providers; nil means local answers only.
	Peers   *PeerClient
	Timeout time.Duration // per fan-out; DefaultTimeout when 0
	// Limits are the lookup budgets; the zero value means DefaultLimits,
	// and a Budget whose Max is 0 is not limited.
	Limits Limits
	Now    func() time.Time
}

// DefaultTimeout bounds how long a lookup waits for other providers.
const DefaultTimeout = 3 * time.Second

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Fold is the form names are compared in: Turkish-aware lower case, then
// the transliteration of KEP addresses (İ, I, ı and i all become i; ç→c,
// ğ→g, ö→o, ş→s, ü→u; other diacritics dropped), without spaces or
// punctuation. "DENİZ LOJİSTİK A.Ş." and "deniz lojistik" fold to
// "denizlojistikas" and "denizlojistik", so the second finds the first.
func Fold(s string) string {
	return address.Transliterate(s)
}

// Normalize checks a query and trims it. It returns ErrBadQuery (wrapped,
// with a reason) when not exactly one field is set or a number is
// malformed.
func (q Query) Normalize() (Query, error) {
	q = Query{Name: strings.TrimSpace(q.Name), MERSIS: strings.TrimSpace(q.MERSIS), VKN: strings.TrimSpace(q.VKN), DETSIS: strings.TrimSpace(q.DETSIS)}
	set := 0
	for _, v := range []string{q.Name, q.MERSIS, q.VKN, q.DETSIS} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return q, fmt.Errorf("%w: give exactly one of name, mersis, vkn, detsis", ErrBadQuery)
	}
	var err error
	switch {
	case q.Name != "":
		if len(Fold(q.Name)) < MinNameLength {
			return q, fmt.Errorf("%w: a name search needs at least %d letters or digits", ErrBadQuery, MinNameLength)
		}
	case q.MERSIS != "":
		err = identity.ValidateMERSIS(q.MERSIS)
	case q.VKN != "":
		err = identity.ValidateVKN(q.VKN)
	case q.DETSIS != "":
		err = identity.ValidateDETSIS(q.DETSIS)
	}
	if err != nil {
		return q, fmt.Errorf("%w: %v", ErrBadQuery, err)
	}
	return q, nil
}

// ownerID is the accounts.owner_id a number query matches.
func (q Query) ownerID() string {
	switch {
	case q.MERSIS != "":
		return string(identity.MERSIS) + ":" + q.MERSIS
	case q.VKN != "":
		return string(identity.VKN) + ":" + q.VKN
	case q.DETSIS != "":
		return string(identity.DETSIS) + ":" + q.DETSIS
	}
	return ""
}

// listed are the statuses the Rehber shows (see the package comment).
const listed = `status IN ('active', 'suspended')`

// LocalOrganisations answers an organisation query from this provider's
// accounts. q must be normalized.
func (s *Service) LocalOrganisations(ctx context.Context, q Query) ([]Entry, error) {
	sqlq := `SELECT address, kind, status, owner_id, owner_name FROM accounts WHERE kind IN ('company', 'public') AND ` + listed
	var args []any
	if id := q.ownerID(); id != "" {
		sqlq += ` AND owner_id = ?`
		args = append(args, id)
	}
	sqlq += ` ORDER BY id`
	rows, err := s.DB.Q().Query(ctx, sqlq, args...)
	if err != nil {
		return nil, fmt.Errorf("rehber: organisations: %w", err)
	}
	defer rows.Close()
	want := Fold(q.Name)
	out := []Entry{}
	for rows.Next() {
		e := Entry{Provider: s.Provider}
		if err := rows.Scan(&e.Address, &e.Kind, &e.Status, &e.ID, &e.Name); err != nil {
			return nil, err
		}
		// Name folding is done here, not in SQL: neither backend's LOWER
		// knows Turkish İ/ı.
		if want != "" && !strings.Contains(Fold(e.Name), want) {
			continue
		}
		out = append(out, e)
		if len(out) == MaxEntries {
			break
		}
	}
	return out, rows.Err()
}

// LocalPerson answers a TCKN lookup from this provider's accounts: the
// addresses of the person accounts the number holds. tckn must be valid.
func (s *Service) LocalPerson(ctx context.Context, tckn string) ([]Entry, error) {
	rows, err := s.DB.Q().Query(ctx, `SELECT address, kind, status FROM accounts WHERE kind = 'person' AND owner_id = ? AND `+listed+` ORDER BY id`,
		string(identity.TCKN)+":"+tckn)
	if err != nil {
		return nil, fmt.Errorf("rehber: person: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		e := Entry{Provider: s.Provider}
		if err := rows.Scan(&e.Address, &e.Kind, &e.Status); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CheckTCKN validates a TCKN for a lookup; the error is ErrBadTCKN
// wrapped with the reason (the number masked).
func CheckTCKN(tckn string) error {
	if err := identity.ValidateTCKN(tckn); err != nil {
		return fmt.Errorf("%w: %v", ErrBadTCKN, err)
	}
	return nil
}

// Answer is the result of a lookup: the entries of every provider that
// answered, and how each provider asked fared.
type Answer struct {
	Entries   []Entry       `json:"entries"`
	Providers []PeerOutcome `json:"providers"`
}

// PeerOutcome is how one provider's part of a lookup went.
type PeerOutcome struct {
	ID     string `json:"id"`
	Status string `json:"status"`          // "ok" or "failed"
	Error  string `json:"error,omitempty"` // why it failed
}

// Organisations searches this provider and, when federated, every other
// active provider.
func (s *Service) Organisations(ctx context.Context, q Query, federated bool) (*Answer, error) {
	q, err := q.Normalize()
	if err != nil {
		return nil, err
	}
	local, err := s.LocalOrganisations(ctx, q)
	if err != nil {
		return nil, err
	}
	ans := &Answer{Entries: local, Providers: []PeerOutcome{{ID: s.Provider, Status: "ok"}}}
	if federated {
		s.fanOut(ctx, ans, "organisations", q.values())
	}
	sortEntries(ans.Entries)
	return ans, nil
}

// Person looks up a TCKN for principal p, asking from source (the remote
// address, for the per-source budget and the audit record): it checks the
// budgets, answers from this provider and, when federated, the others, and
// writes an audit record naming the principal and the masked TCKN.
func (s *Service) Person(ctx context.Context, p Principal, source, tckn string, federated bool) (*Answer, error) {
	if p == nil {
		return nil, ErrNoPrincipal
	}
	if err := CheckTCKN(tckn); err != nil {
		return nil, err
	}
	now := s.now()
	if err := s.spendPerson(ctx, now, p.Name(), source); err != nil {
		s.audit(ctx, now, p.Name(), "rehber.tckn", tckn, "refused: "+err.Error(), source)
		return nil, err
	}
	local, err := s.LocalPerson(ctx, tckn)
	if err != nil {
		return nil, err
	}
	ans := &Answer{Entries: local, Providers: []PeerOutcome{{ID: s.Provider, Status: "ok"}}}
	if federated {
		s.fanOut(ctx, ans, "persons", map[string][]string{"tckn": {tckn}})
	}
	sortEntries(ans.Entries)
	if err := s.audit(ctx, now, p.Name(), "rehber.tckn", tckn, describe(ans), source); err != nil {
		// An unaudited lookup must not be answered.
		return nil, err
	}
	return ans, nil
}

func (s *Service) spendPerson(ctx context.Context, now time.Time, principal, source string) error {
	l := s.limits()
	if err := spend(ctx, s.DB, now, "principal", principal, l.Principal); err != nil {
		return err
	}
	return spend(ctx, s.DB, now, "source", source, l.Source)
}

func (s *Service) limits() Limits {
	if s.Limits == (Limits{}) {
		return DefaultLimits
	}
	return s.Limits
}

// audit writes who looked up which (masked) TCKN and what was found.
func (s *Service) audit(ctx context.Context, at time.Time, actor, action, tckn, detail, remote string) error {
	return store.Audit(ctx, s.DB.Q(), &store.AuditRecord{At: at, Actor: actor, Action: action,
		Target: string(identity.TCKN) + ":" + identity.Mask(tckn), Detail: detail, Remote: remote})
}

// describe summarises an answer for the audit trail: how many addresses
// each provider gave, and which failed.
func describe(a *Answer) string {
	count := map[string]int{}
	for _, e := range a.Entries {
		count[e.Provider]++
	}
	var parts []string
	for _, p := range a.Providers {
		if p.Status == "ok" {
			parts = append(parts, fmt.Sprintf("%s: %d", p.ID, count[p.ID]))
		} else {
			parts = append(parts, p.ID+": failed")
		}
	}
	return fmt.Sprintf("%d address(es) (%s)", len(a.Entries), strings.Join(parts, ", "))
}

func sortEntries(es []Entry) {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Provider != es[j].Provider {
			return es[i].Provider < es[j].Provider
		}
		return es[i].Address < es[j].Address
	})
}

func (q Query) values() map[string][]string {
	switch {
	case q.Name != "":
		return map[string][]string{"name": {q.Name}}
	case q.MERSIS != "":
		return map[string][]string{"mersis": {q.MERSIS}}
	case q.VKN != "":
		return map[string][]string{"vkn": {q.VKN}}
	}
	return map[string][]string{"detsis": {q.DETSIS}}
}
