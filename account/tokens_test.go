package account_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

func TestTokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		ayse, _ := w.person(t, "Ayşe", "Yılmaz")
		mehmet, _ := w.person(t, "Mehmet", "Öztürk")
		newCo := func(name string) *store.Account {
			co, err := w.svc.Create(ctx, actor, account.CreateRequest{Kind: account.Company, Owner: identity.ID{Scheme: identity.VKN, Value: identity.GenerateVKN(w.rng)},
				OwnerName: name, VerifiedBy: "desk", Activate: true})
			if err != nil {
				t.Fatal(err)
			}
			return co
		}
		co, other := newCo("Deniz Lojistik"), newCo("Ege Tekstil")
		mainT, subT := identity.GenerateTCKN(w.rng), identity.GenerateTCKN(w.rng)
		for _, op := range []struct {
			tckn string
			role account.Role
			acct *store.Account
		}{{mainT, account.MainOperator, co}, {subT, account.SubOperator, co}, {subT, account.MainOperator, other}} {
			if _, err := w.svc.AddOperator(ctx, actor, op.acct.Address, account.OperatorRequest{TCKN: op.tckn, Name: "Op " + op.tckn[:3], Password: "operator password", Role: op.role}); err != nil {
				t.Fatal(err)
			}
		}
		login := func(user string) *account.Principal {
			p, err := w.svc.Authenticate(ctx, user, map[bool]string{true: "correct horse battery", false: "operator password"}[strings.Contains(user, "@")], "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		holder, mainOp, subOp := login(ayse.Address), login(mainT), login(subT)
		staff := &account.Principal{Staff: "cli"}

		// Who may make which token.
		tests := []struct {
			name string
			by   *account.Principal
			addr string
			req  account.TokenRequest
			err  error // nil: made
		}{
			{"holder, as holder", holder, ayse.Address, account.TokenRequest{Name: "erp"}, nil},
			{"holder, on another account", holder, mehmet.Address, account.TokenRequest{Name: "erp"}, account.ErrTokenNotMaking},
			{"main operator, as itself", mainOp, co.Address, account.TokenRequest{Name: "bulk", OperatorTCKN: mainT}, nil},
			{"main operator, as a sub-operator", mainOp, co.Address, account.TokenRequest{Name: "hr", OperatorTCKN: subT}, nil},
			{"main operator, as the company", mainOp, co.Address, account.TokenRequest{Name: "x"}, errors.New("an operator makes tokens")},
			{"sub-operator", subOp, co.Address, account.TokenRequest{Name: "x", OperatorTCKN: subT}, account.ErrTokenNotMaking},
			{"staff, as holder", staff, mehmet.Address, account.TokenRequest{Name: "ops"}, nil},
			{"staff, a stranger as operator", staff, co.Address, account.TokenRequest{Name: "x", OperatorTCKN: identity.GenerateTCKN(w.rng)}, account.ErrNoSuchOperator},
			{"no name", holder, ayse.Address, account.TokenRequest{}, errors.New("a token needs a name")},
			{"no account", staff, "nobody@hs01.kep.tr", account.TokenRequest{Name: "x"}, account.ErrNoSuchAccount},
		}
		secrets := map[string]string{}
		for _, tc := range tests {
			tok, secret, err := w.svc.CreateToken(ctx, actor, tc.by, tc.addr, tc.req)
			switch {
			case tc.err == nil && err != nil:
				t.Errorf("%s: %v", tc.name, err)
			case tc.err != nil && (err == nil || !errors.Is(err, tc.err) && !strings.Contains(err.Error(), tc.err.Error())):
				t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
			case tc.err == nil:
				if !strings.HasPrefix(secret, account.TokenPrefix) || len(secret) != len(account.TokenPrefix)+43 || !strings.HasPrefix(secret, tok.Hint) {
					t.Errorf("%s: secret %q hint %q", tc.name, secret, tok.Hint)
				}
				secrets[tc.name] = secret
			}
		}
		// Only the hash is stored.
		var n int
		sum := sha256.Sum256([]byte(secrets["holder, as holder"]))
		if err := db.Q().QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens WHERE hint = ? OR name = ? OR created_by = ?`,
			secrets["holder, as holder"], secrets["holder, as holder"], secrets["holder, as holder"]).Scan(&n); err != nil || n != 0 {
			t.Fatalf("secret stored: %d %v", n, err)
		}
		if err := db.Q().QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens WHERE hash = ?`, sum[:]).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d rows hold the token's hash, want 1: %v", n, err)
		}

		// Each token acts as exactly one principal, within its grants.
		p, tok, err := w.svc.AuthenticateToken(ctx, secrets["holder, as holder"])
		if err != nil || p.Kind() != account.Holder || p.Account.ID != ayse.ID || p.AuthMethod() != account.AuthToken || tok.LastUsedAt.IsZero() {
			t.Fatalf("holder token: %v %+v %+v", err, p, tok)
		}
		p, _, err = w.svc.AuthenticateToken(ctx, secrets["main operator, as a sub-operator"])
		if err != nil || p.Kind() != account.Operator || p.Operator.TCKN != subT || !p.Can(co.ID, account.GrantRead) || p.Can(co.ID, account.GrantSend) {
			t.Fatalf("sub-operator token: %v %+v", err, p)
		}
		// The sub-operator is main operator of another company; the token
		// made for co carries nothing there.
		if p.Can(other.ID, account.GrantRead) || account.MayManage(p, other) {
			t.Fatal("a token made for one account acts on another")
		}
		for _, bad := range []string{"", "kep_", "kep_nothing", strings.Replace(secrets["holder, as holder"], "kep_", "pek_", 1)} {
			if _, _, err := w.svc.AuthenticateToken(ctx, bad); !errors.Is(err, account.ErrBadToken) {
				t.Errorf("token %q: %v", bad, err)
			}
		}

		// Lists: the manager sees all; an operator its own only.
		list := func(by *account.Principal, addr string) int {
			ts, err := w.svc.Tokens(ctx, by, addr)
			if err != nil {
				return -1
			}
			return len(ts)
		}
		if got := list(mainOp, co.Address); got != 2 {
			t.Errorf("main operator sees %d tokens, want 2", got)
		}
		if got := list(subOp, co.Address); got != 1 {
			t.Errorf("sub-operator sees %d tokens, want 1", got)
		}
		if got := list(holder, co.Address); got != -1 {
			t.Errorf("a stranger sees %d tokens", got)
		}

		// Revocation: the next request is refused; a stranger cannot revoke.
		ts, _ := w.svc.Tokens(ctx, holder, ayse.Address)
		if _, err := w.svc.RevokeToken(ctx, actor, login(mehmet.Address), ayse.Address, ts[0].ID); !errors.Is(err, account.ErrNoSuchToken) {
			t.Fatalf("stranger revoked: %v", err)
		}
		w.clock = w.clock.Add(time.Minute)
		if tok, err := w.svc.RevokeToken(ctx, actor, holder, ayse.Address, ts[0].ID); err != nil || tok.RevokedAt.IsZero() {
			t.Fatalf("revoke: %v", err)
		}
		if _, _, err := w.svc.AuthenticateToken(ctx, secrets["holder, as holder"]); !errors.Is(err, account.ErrBadToken) {
			t.Fatalf("revoked token: %v", err)
		}
		// Removing the operator kills its tokens.
		if err := w.svc.RemoveOperator(ctx, actor, co.Address, subT); err != nil {
			t.Fatal(err)
		}
		if _, _, err := w.svc.AuthenticateToken(ctx, secrets["main operator, as a sub-operator"]); !errors.Is(err, account.ErrBadToken) {
			t.Fatalf("token of a removed operator: %v", err)
		}
		audit, _ := store.ListAudit(ctx, db.Q(), ayse.Address, 0)
		var actions []string
		for _, r := range audit {
			actions = append(actions, r.Action)
		}
		if got := strings.Join(actions, " "); got != "account.create token.create token.revoke" {
			t.Fatalf("audit trail: %s", got)
		}
	})
}
