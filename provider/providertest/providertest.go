// Package providertest starts a whole provider node for tests, on a fresh
// directory and database (SQLite, or PostgreSQL when the run has one), with
// a controllable clock and helpers that open accounts with development
// certificates. Tests then drive the node's services or its servers.
package providertest

import (
	"context"
	"crypto/x509/pkix"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// World is a provider node under test.
type World struct {
	T     testing.TB
	Node  *provider.Node
	Clock *Clock
	CA    *pki.CA // the development e-signature CA
	rng   *rand.Rand
	mu    sync.Mutex
}

// New starts a provider hs01.kep.tr on backend d.
func New(t testing.TB, d store.Dialect) *World {
	t.Helper()
	dir := t.TempDir()
	dsn := storetest.DSN(t, d)
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Test E-Signature CA"}, pki.ECDSAP256, 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock := &Clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	// The CA's CRL and OCSP responder, on the world's clock: the signer
	// certificates it issues name them, and the access point asks them.
	rs, err := pki.DevRevocationServer(ca, "127.0.0.1:0", clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	cfg, err := provider.Init(dir, provider.InitOptions{Provider: "hs01", Name: "HS01 KEP", ESignCA: ca, Config: func(c *config.Config) {
		c.Store.DSN = dsn
		c.Log.BatchSize = 256
		c.SMTP.Submission, c.SMTP.Submissions = "127.0.0.1:0", "127.0.0.1:0"
		c.IMAP.Listen, c.IMAP.ListenTLS, c.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		c.Metrics.Listen = "127.0.0.1:0"
	}})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := provider.Open(context.Background(), cfg, provider.Options{Now: clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return &World{T: t, Node: n, Clock: clock, CA: ca, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
}

// Person is an account holder with a signing certificate.
type Person struct {
	Account  *store.Account
	TCKN     string
	Password string
	Signer   *pki.Issued
}

// TCKN returns a fresh valid TCKN.
func (w *World) TCKN() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return identity.GenerateTCKN(w.rng)
}

// VKN returns a fresh valid VKN.
func (w *World) VKN() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return identity.GenerateVKN(w.rng)
}

// Signer issues an e-signature certificate for a TCKN.
func (w *World) Signer(tckn, given, surname string) *pki.Issued {
	w.T.Helper()
	is, err := w.CA.IssueSigner(pki.SignerSubject(tckn, given, surname, "TCKN"), "", pki.RSA2048)
	if err != nil {
		w.T.Fatal(err)
	}
	return is
}

// Person opens an active send-and-receive account for a new person.
func (w *World) Person(given, surname string) *Person {
	w.T.Helper()
	tckn := w.TCKN()
	p := &Person{TCKN: tckn, Password: "password of " + given, Signer: w.Signer(tckn, given, surname)}
	a, err := w.Node.Accounts.Create(context.Background(), account.SystemActor, account.CreateRequest{
		Kind: account.Person, Owner: identity.ID{Scheme: identity.TCKN, Value: tckn}, GivenName: given, Surname: surname,
		Password: p.Password, Certificate: p.Signer.Cert, Activate: true,
	})
	if err != nil {
		w.T.Fatal(err)
	}
	p.Account = a
	return p
}

// Refresh reloads an account.
func (w *World) Refresh(a *store.Account) *store.Account {
	w.T.Helper()
	got, err := store.GetAccount(context.Background(), w.Node.DB.Q(), a.ID)
	if err != nil {
		w.T.Fatal(err)
	}
	return got
}

// Each runs fn on a fresh provider node per backend. Use it for tests of
// what the node stores; tests driven by an external tool use OnSQLite.
func Each(t *testing.T, fn func(t *testing.T, w *World)) {
	t.Helper()
	for _, d := range storetest.Backends(t) {
		t.Run(string(d), func(t *testing.T) { fn(t, New(t, d)) })
	}
}

// OnSQLite runs fn on a fresh provider node on SQLite only (see
// storetest.OnSQLite for when to choose it).
func OnSQLite(t *testing.T, fn func(t *testing.T, w *World)) {
	t.Helper()
	t.Run(string(store.SQLite), func(t *testing.T) { fn(t, New(t, store.SQLite)) })
}

// Q is the node's database as a Querier.
func (w *World) Q() store.Querier { return w.Node.DB.Q() }

// Company opens an active company account with a main operator (all
// grants) and returns it with the operator as a Person (Account is the
// company's account).
func (w *World) Company(name string, grants account.Grant) (*store.Account, *Person) {
	w.T.Helper()
	ctx := context.Background()
	co, err := w.Node.Accounts.Create(ctx, account.SystemActor, account.CreateRequest{Kind: account.Company,
		Owner: identity.ID{Scheme: identity.VKN, Value: w.VKN()}, OwnerName: name, VerifiedBy: "test", Activate: true})
	if err != nil {
		w.T.Fatal(err)
	}
	op := w.Operator(co, "Zeynep", "Kaya", account.MainOperator, grants)
	return co, op
}

// Operator adds an operator with their own certificate to a company account.
func (w *World) Operator(co *store.Account, given, surname string, role account.Role, grants account.Grant) *Person {
	w.T.Helper()
	tckn := w.TCKN()
	p := &Person{TCKN: tckn, Password: "operator password " + tckn, Signer: w.Signer(tckn, given, surname), Account: co}
	_, err := w.Node.Accounts.AddOperator(context.Background(), account.SystemActor, co.Address, account.OperatorRequest{
		TCKN: tckn, Name: given + " " + surname, Password: p.Password, Certificate: p.Signer.Cert, Role: role, Grants: grants})
	if err != nil {
		w.T.Fatal(err)
	}
	return p
}
