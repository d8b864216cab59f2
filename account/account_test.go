package account_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

type world struct {
	svc   *account.Service
	ca    *pki.CA
	other *pki.CA
	rng   *rand.Rand
	clock time.Time
}

var actor = account.Actor{Name: "cli:test", Remote: "cli"}

func newWorld(t *testing.T, db *store.DB) *world {
	t.Helper()
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Test E-İmza CA"}, pki.ECDSAP256, 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewRootCA(pkix.Name{CommonName: "Untrusted CA"}, pki.ECDSAP256, 10*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{ca: ca, other: other, rng: rand.New(rand.NewPCG(1, 2)), clock: time.Now()}
	w.svc = &account.Service{DB: db, Trust: identity.NewTrustStore(ca.Cert), Provider: "hs01", Domain: "hs01.kep.tr",
		Now: func() time.Time { return w.clock }, Limiter: account.NewLimiter(db, func() time.Time { return w.clock })}
	return w
}

func (w *world) signer(t *testing.T, ca *pki.CA, tckn, given, surname string) *x509.Certificate {
	t.Helper()
	is, err := ca.IssueSigner(pki.SignerSubject(tckn, given, surname, "TCKN"), "", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return is.Cert
}

func (w *world) person(t *testing.T, given, surname string) (*store.Account, string) {
	t.Helper()
	tckn := identity.GenerateTCKN(w.rng)
	a, err := w.svc.Create(context.Background(), actor, account.CreateRequest{
		Kind: account.Person, Owner: identity.ID{Scheme: identity.TCKN, Value: tckn}, GivenName: given, Surname: surname,
		Password: "correct horse battery", Certificate: w.signer(t, w.ca, tckn, given, surname), Activate: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, tckn
}

func TestPersonAccounts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		a, _ := w.person(t, "Ayşe", "Yılmaz")
		if a.Address != "ayse.yilmaz@hs01.kep.tr" || a.Status != "active" || a.QuotaBytes != account.DefaultQuota {
			t.Fatalf("got %+v", a)
		}
		b, _ := w.person(t, "Ayşe", "Yılmaz")
		if b.Address != "ayse.yilmaz.1@hs01.kep.tr" {
			t.Fatalf("second Ayşe Yılmaz got %s", b.Address)
		}
		// One identity may hold several accounts.
		tckn := identity.GenerateTCKN(w.rng)
		owner := identity.ID{Scheme: identity.TCKN, Value: tckn}
		for i := 0; i < 2; i++ {
			if _, err := w.svc.Create(ctx, actor, account.CreateRequest{Kind: account.Person, Capability: account.ReceiveOnly, Owner: owner,
				GivenName: "Mehmet", Surname: "Öztürk", Password: "correct horse battery", VerifiedBy: "desk-1"}); err != nil {
				t.Fatal(err)
			}
		}
		accts, _ := store.ListAccounts(ctx, db.Q(), owner.String(), "")
		if len(accts) != 2 || accts[1].Address != "mehmet.ozturk.1@hs01.kep.tr" || accts[0].Status != "verified" {
			t.Fatalf("accounts of one identity: %+v", accts)
		}
	})
}

func TestCreateRefusals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		tckn := identity.GenerateTCKN(w.rng)
		owner := identity.ID{Scheme: identity.TCKN, Value: tckn}
		expired, err := w.ca.Issue(pki.Template{Subject: pki.SignerSubject(tckn, "A", "B", ""), NotBefore: time.Now().Add(-3 * 365 * 24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
		if err != nil {
			t.Fatal(err)
		}
		base := account.CreateRequest{Kind: account.Person, Owner: owner, GivenName: "Ali", Surname: "Veli", Password: "correct horse battery"}
		cases := []struct {
			name string
			mod  func(r *account.CreateRequest)
			want error
		}{
			{"bad TCKN", func(r *account.CreateRequest) { r.Owner.Value = "12345678901" }, identity.ErrChecksum},
			{"no certificate", func(r *account.CreateRequest) {}, account.ErrNeedsCertificate},
			{"certificate of someone else", func(r *account.CreateRequest) {
				r.Certificate = w.signer(t, w.ca, identity.GenerateTCKN(w.rng), "X", "Y")
			}, identity.ErrIdentityMismatch},
			{"untrusted certificate", func(r *account.CreateRequest) { r.Certificate = w.signer(t, w.other, tckn, "Ali", "Veli") }, identity.ErrUntrusted},
			{"expired certificate", func(r *account.CreateRequest) { r.Certificate = expired.Cert }, identity.ErrExpired},
			{"company identity for a person", func(r *account.CreateRequest) {
				r.Owner = identity.ID{Scheme: identity.VKN, Value: identity.GenerateVKN(w.rng)}
			}, account.ErrKindIdentity},
			{"weak password", func(r *account.CreateRequest) {
				r.Capability = account.ReceiveOnly
				r.VerifiedBy = "x"
				r.Password = "short"
			}, account.ErrWeakPassword},
		}
		for _, c := range cases {
			r := base
			c.mod(&r)
			_, err := w.svc.Create(ctx, actor, r)
			if !errors.Is(err, c.want) {
				t.Errorf("%s: got %v, want %v", c.name, err, c.want)
			}
		}
		// Nothing was half-written.
		if taken, _ := store.AddressTaken(ctx, db.Q(), "ali.veli@hs01.kep.tr"); taken {
			t.Fatal("a refused application reserved its address")
		}
	})
}

func TestCompanyOperators(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		vkn := identity.GenerateVKN(w.rng)
		co, err := w.svc.Create(ctx, actor, account.CreateRequest{Kind: account.Company, Owner: identity.ID{Scheme: identity.VKN, Value: vkn},
			OwnerName: "İstanbul Çiçek Şirketi", VerifiedBy: "desk-2", Activate: true})
		if err != nil {
			t.Fatal(err)
		}
		if co.Address != "istanbulciceksirketi@hs01.kep.tr" {
			t.Fatalf("company address %s", co.Address)
		}
		mainT, subT := identity.GenerateTCKN(w.rng), identity.GenerateTCKN(w.rng)
		if _, err := w.svc.AddOperator(ctx, actor, co.Address, account.OperatorRequest{TCKN: mainT, Name: "Zeynep Kaya", Password: "main operator pw",
			Certificate: w.signer(t, w.ca, mainT, "Zeynep", "Kaya"), Role: account.MainOperator}); err != nil {
			t.Fatal(err)
		}
		second := identity.GenerateTCKN(w.rng)
		_, err = w.svc.AddOperator(ctx, actor, co.Address, account.OperatorRequest{TCKN: second, Name: "Can Demir", Password: "another operator pw", Role: account.MainOperator})
		if !errors.Is(err, account.ErrSecondMainOperator) {
			t.Fatalf("second main: %v", err)
		}
		if _, err := store.GetOperatorByTCKN(ctx, db.Q(), second); !errors.Is(err, store.ErrNotFound) {
			t.Fatal("refused operator was half-written")
		}
		_, err = w.svc.AddOperator(ctx, actor, co.Address, account.OperatorRequest{TCKN: subT, Name: "Emre Şahin", Password: "sub operator pw",
			Certificate: w.signer(t, w.ca, identity.GenerateTCKN(w.rng), "Emre", "Şahin")})
		if !errors.Is(err, identity.ErrIdentityMismatch) {
			t.Fatalf("operator with someone else's certificate: %v", err)
		}
		role, err := w.svc.AddOperator(ctx, actor, co.Address, account.OperatorRequest{TCKN: subT, Name: "Emre Şahin", Password: "sub operator pw",
			Certificate: w.signer(t, w.ca, subT, "Emre", "Şahin")})
		if err != nil || account.Grant(role.Grants) != account.GrantRead {
			t.Fatalf("sub operator: %v %+v", err, role)
		}
		if role, err = w.svc.Grant(ctx, actor, co.Address, subT, account.GrantSend|account.GrantArchive); err != nil || account.Grant(role.Grants).String() != "read,send,archive" {
			t.Fatalf("grant: %v %v", err, role)
		}
		if role, err = w.svc.Revoke(ctx, actor, co.Address, subT, account.GrantSend); err != nil || account.Grant(role.Grants).String() != "read,archive" {
			t.Fatalf("revoke: %v %v", err, role)
		}
		p, err := w.svc.Authenticate(ctx, subT, "sub operator pw", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if !p.Can(co.ID, account.GrantRead) || p.Can(co.ID, account.GrantSend) || p.Name() != "operator:"+subT {
			t.Fatalf("principal grants wrong: %+v", p)
		}
		ops, _ := w.svc.Operators(ctx, co.ID)
		if len(ops) != 2 || ops[0].Role != "main" {
			t.Fatalf("operators: %+v", ops)
		}
		if err := w.svc.RemoveOperator(ctx, actor, co.Address, subT); err != nil {
			t.Fatal(err)
		}
		p, _ = w.svc.Authenticate(ctx, subT, "sub operator pw", "127.0.0.1")
		if p.Can(co.ID, account.GrantRead) {
			t.Fatal("removed operator still has grants")
		}
		// Operators only for organisations.
		pa, _ := w.person(t, "Ece", "Ak")
		if _, err := w.svc.AddOperator(ctx, actor, pa.Address, account.OperatorRequest{TCKN: subT, Role: account.SubOperator}); !errors.Is(err, account.ErrOperatorsOnly) {
			t.Fatalf("operator on person account: %v", err)
		}
		audit, _ := store.ListAudit(ctx, db.Q(), co.Address, 0)
		var actions []string
		for _, r := range audit {
			actions = append(actions, r.Action)
		}
		if got := strings.Join(actions, " "); got != "account.create operator.add operator.add operator.grant operator.revoke operator.remove" {
			t.Fatalf("audit trail: %s", got)
		}
	})
}

func TestCloseReopenNeverReassign(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		vkn := identity.GenerateVKN(w.rng)
		owner := identity.ID{Scheme: identity.VKN, Value: vkn}
		co, err := w.svc.Create(ctx, actor, account.CreateRequest{Kind: account.Company, Owner: owner, OwnerName: "Deniz Lojistik", Suffix: "hukuk", VerifiedBy: "desk", Activate: true})
		if err != nil {
			t.Fatal(err)
		}
		if co.Address != "denizlojistik.hukuk@hs01.kep.tr" {
			t.Fatalf("address %s", co.Address)
		}
		w.clock = w.clock.Add(time.Hour)
		if _, err := w.svc.Close(ctx, actor, co.Address, "customer request"); err != nil {
			t.Fatal(err)
		}
		// Another company with the same name cannot get the address.
		otherOwner := identity.ID{Scheme: identity.VKN, Value: identity.GenerateVKN(w.rng)}
		_, err = w.svc.Create(ctx, actor, account.CreateRequest{Kind: account.Company, Owner: otherOwner, OwnerName: "Deniz Lojistik", Suffix: "hukuk", VerifiedBy: "desk"})
		if !errors.Is(err, account.ErrAddressReserved) {
			t.Fatalf("issuing a reserved address: %v", err)
		}
		// Nor reopen it.
		w.clock = w.clock.Add(49 * time.Hour)
		if _, err := w.svc.Reopen(ctx, actor, co.Address, otherOwner, "desk"); !errors.Is(err, account.ErrNotOwner) {
			t.Fatalf("reopen by another identity: %v", err)
		}
		if _, err := w.svc.Reopen(ctx, actor, co.Address, owner, ""); !errors.Is(err, account.ErrNotVerified) {
			t.Fatalf("reopen without re-verification: %v", err)
		}
		re, err := w.svc.Reopen(ctx, actor, co.Address, owner, "desk-3")
		if err != nil || re.Status != "active" {
			t.Fatalf("reopen: %v %+v", err, re)
		}
		evs, _ := store.ListAccountEvents(ctx, db.Q(), co.ID)
		last := evs[len(evs)-1]
		if last.Event != "reopened" || last.FeeDays != 3 {
			t.Fatalf("reopen event %+v (want 3 fee days for 49 h)", last)
		}
		if _, err := w.svc.Reopen(ctx, actor, co.Address, owner, "desk-3"); !errors.Is(err, account.ErrBadTransition) {
			t.Fatalf("reopen of an active account: %v", err)
		}
	})
}

func TestPasswordsAndRecovery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		a, tckn := w.person(t, "Selin", "Aydın")
		p, err := w.svc.Authenticate(ctx, a.Address, "correct horse battery", "10.0.0.1")
		if err != nil || p.Account.ID != a.ID {
			t.Fatal(err)
		}
		app, err := w.svc.AddAppPassword(ctx, actor, p.StorePrincipal(), "Thunderbird")
		if err != nil {
			t.Fatal(err)
		}
		if p, err = w.svc.Authenticate(ctx, a.Address, app, "10.0.0.1"); err != nil || p.AppPassword != "Thunderbird" {
			t.Fatalf("app password: %v", err)
		}
		_, token, err := w.svc.CreateToken(ctx, actor, p, a.Address, account.TokenRequest{Name: "ERP"})
		if err != nil {
			t.Fatal(err)
		}
		// Recovery needs the owner's identity, re-verified.
		if _, err := w.svc.Recover(ctx, actor, a.Address, identity.ID{Scheme: identity.TCKN, Value: identity.GenerateTCKN(w.rng)}, "call-centre", "", "brand new password"); !errors.Is(err, account.ErrNotOwner) {
			t.Fatalf("recover by another: %v", err)
		}
		revoked, err := w.svc.Recover(ctx, actor, a.Address, identity.ID{Scheme: identity.TCKN, Value: tckn}, "call-centre", "", "brand new password")
		if err != nil || revoked != 2 { // the app password and the API token
			t.Fatalf("recover: %v revoked=%d", err, revoked)
		}
		if _, _, err := w.svc.AuthenticateToken(ctx, token); err == nil {
			t.Fatal("an API token made before the recovery still works")
		}
		for _, old := range []string{"correct horse battery", app} {
			if _, err := w.svc.Authenticate(ctx, a.Address, old, "10.0.0.2"); !errors.Is(err, account.ErrBadCredentials) {
				t.Fatalf("old credential after recovery: %v", err)
			}
		}
		if _, err := w.svc.Authenticate(ctx, a.Address, "brand new password", "10.0.0.3"); err != nil {
			t.Fatal(err)
		}
		recs, _ := store.ListAudit(ctx, db.Q(), a.Address, 0)
		if recs[len(recs)-1].Action != "account.recover" {
			t.Fatalf("no audit of recovery: %+v", recs)
		}
	})
}

// TestLoginBackoff: wrong passwords slow down their own (user, source)
// pair; one user's typos never lock out another user at the same address;
// an attack on a named user from elsewhere never locks that user out of an
// address they have used before; the state survives a restart; the error
// says how long to wait.
func TestLoginBackoff(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		lim := w.svc.Limiter
		lim.UserFree, lim.SourceFree, lim.KnownHard = 8, 12, 9
		a, _ := w.person(t, "Deniz", "Kurt")
		b, _ := w.person(t, "Elif", "Kurt")
		const good, bad = "correct horse battery", "wrong password!"
		auth := func(user, pw, remote string) error {
			_, err := w.svc.Authenticate(ctx, user, pw, remote)
			return err
		}
		wantWait := func(err error, what string) time.Duration {
			t.Helper()
			var te *account.ThrottledError
			if !errors.As(err, &te) || !errors.Is(err, account.ErrThrottled) {
				t.Fatalf("%s: want a throttled error, got %v", what, err)
			}
			if !strings.Contains(err.Error(), "try again in") || te.RetryAfter() < time.Second {
				t.Fatalf("%s: the error must say how long to wait: %v", what, err)
			}
			return te.RetryAfter()
		}
		for i := 0; i < 5; i++ {
			if err := auth(a.Address, bad, "10.1.1.1:4000"); !errors.Is(err, account.ErrBadCredentials) {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		if err := auth(a.Address, bad, "10.1.1.1:4001"); !errors.Is(err, account.ErrBadCredentials) {
			t.Fatal(err)
		}
		// The pair now waits, even with the right password (it never logged in).
		wantWait(auth(a.Address, good, "10.1.1.1:4002"), "same pair")
		// Another user at the same address is not touched.
		if err := auth(b.Address, good, "10.1.1.1:4003"); err != nil {
			t.Fatalf("a colleague at the same address: %v", err)
		}
		// The same user from another address is not touched either.
		if err := auth(a.Address, good, "10.1.1.9:1"); err != nil {
			t.Fatalf("the user elsewhere: %v", err)
		}
		// The back-off doubles, and ends.
		w.clock = w.clock.Add(2 * time.Second)
		auth(a.Address, bad, "10.1.1.1:1")
		if d := wantWait(auth(a.Address, good, "10.1.1.1:1"), "second back-off"); d < 2*time.Second {
			t.Fatalf("back-off did not double: %s", d)
		}
		w.clock = w.clock.Add(3 * time.Second)
		if err := auth(a.Address, good, "10.1.1.1:1"); err != nil {
			t.Fatalf("after the back-off: %v", err)
		}

		// A distributed attack on user a from many addresses: beyond UserFree
		// failures, unknown addresses wait; the addresses a used before do not.
		for i := 0; i < lim.UserFree+2; i++ {
			auth(a.Address, bad, fmt.Sprintf("192.0.2.%d:1", i+1))
		}
		wantWait(auth(a.Address, good, "198.51.100.7:1"), "unknown address during an attack on the user")
		if err := auth(a.Address, good, "10.1.1.9:2"); err != nil {
			t.Fatalf("a known address during an attack on the user: %v", err)
		}

		// One address guessing many users: beyond SourceFree, that address
		// waits for users it has not served before, not for known ones.
		for i := 0; i < lim.SourceFree+1; i++ {
			auth(fmt.Sprintf("nobody%d@hs01.kep.tr", i), bad, "203.0.113.5:1")
		}
		wantWait(auth(b.Address, good, "203.0.113.5:2"), "an address guessing many users")

		// A known pair in back-off still gets its correct password in, up to
		// KnownHard failures.
		for i := 0; i < 6; i++ {
			auth(b.Address, bad, "10.1.1.1:9")
		}
		if err := auth(b.Address, good, "10.1.1.1:9"); err != nil {
			t.Fatalf("known pair in back-off, correct password: %v", err)
		}
		for i := 0; i < lim.KnownHard+1; i++ {
			auth(b.Address, bad, "10.1.1.1:9")
		}
		wantWait(auth(b.Address, good, "10.1.1.1:9"), "known pair past the hard limit")

		// The state is in the store: a restarted service still throttles.
		svc2 := &account.Service{DB: db, Trust: w.svc.Trust, Provider: "hs01", Domain: "hs01.kep.tr",
			Now: func() time.Time { return w.clock }, Limiter: account.NewLimiter(db, func() time.Time { return w.clock })}
		svc2.Limiter.UserFree, svc2.Limiter.SourceFree, svc2.Limiter.KnownHard = lim.UserFree, lim.SourceFree, lim.KnownHard
		if _, err := svc2.Authenticate(ctx, b.Address, good, "10.1.1.1:9"); !errors.Is(err, account.ErrThrottled) {
			t.Fatalf("after a restart: %v", err)
		}
		// No user name or address is stored in the limiter's tables.
		var n int
		if err := db.Q().QueryRow(ctx, `SELECT COUNT(*) FROM login_failures`).Scan(&n); err != nil || n == 0 {
			t.Fatalf("login_failures: %d %v", n, err)
		}
		if _, err := w.svc.Authenticate(ctx, "nobody@hs01.kep.tr", "x", ""); !errors.Is(err, account.ErrBadCredentials) {
			t.Fatal(err)
		}
	})
}

func TestLimiterSource(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3:4567":           "10.1.2.3",
		"[2001:db8:1:2:3::4]:993": "2001:db8:1:2::/64",
		"[::ffff:10.0.0.1]:25":    "10.0.0.1",
		"10.9.8.7":                "10.9.8.7",
		"pipe":                    "pipe",
	} {
		if got := account.Source(in); got != want {
			t.Errorf("Source(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGrants(t *testing.T) {
	g, err := account.ParseGrants("read, send,sms-notice")
	if err != nil || g.String() != "read,send,sms-notice" {
		t.Fatal(g, err)
	}
	if _, err := account.ParseGrants("fly"); err == nil {
		t.Fatal("unknown grant accepted")
	}
	if account.FeeDays(time.Unix(0, 0), time.Unix(86400, 0)) != 1 || account.FeeDays(time.Unix(0, 0), time.Unix(86401, 0)) != 2 {
		t.Fatal("FeeDays")
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for i := 0; i < b.N; i++ {
		account.HashPassword("correct horse battery")
	}
}
