package main

// kep token create|list|revoke: API tokens (docs/api.md, "Tokens"). Run on
// the provider's node, a command acts as the provider's staff, audited as
// cli:USER; with --login it acts as that user instead (the account's holder
// or its main operator), checked with their password, as the API would.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/identity"
)

// tokenPrincipal is who makes or revokes a token: the provider's staff, or
// the user --login names.
func tokenPrincipal(ctx context.Context, accounts *account.Service, login, password string) (*account.Principal, account.Actor, error) {
	if login == "" {
		a := cliActor()
		return &account.Principal{Staff: a.Name}, a, nil
	}
	pw, err := readSecret(password)
	if err != nil {
		return nil, account.Actor{}, err
	}
	p, err := accounts.Authenticate(ctx, login, pw, "cli")
	if err != nil {
		return nil, account.Actor{}, err
	}
	return p, account.Actor{Name: p.Name(), Remote: "cli"}, nil
}

func cmdTokenCreate(ctx context.Context, args []string) error {
	f := newFlags("token create", "ACCOUNT --name NAME [--operator TCKN] [--login USER --password P]")
	load := configFlags(f)
	name := f.String("name", "", "what uses the token (required), e.g. \"ERP statements\"")
	op := f.String("operator", "", "the token acts as this operator of the account (TCKN); without it, as the account's holder")
	login := f.String("login", "", "act as this user (the holder's address or the main operator's TCKN) instead of the provider")
	password := f.String("password", "-", "the --login user's password; @FILE or - (standard input)")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one ACCOUNT address")
	if err != nil {
		return err
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	p, actor, err := tokenPrincipal(ctx, n.Accounts, *login, *password)
	if err != nil {
		return err
	}
	t, secret, err := n.Accounts.CreateToken(ctx, actor, p, pos[0], account.TokenRequest{Name: *name, OperatorTCKN: *op})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "token %d (%s) for %s, acting as the %s; it is shown only now:\n", t.ID, t.Name, t.Address, t.ActsAs())
	fmt.Println(secret)
	return nil
}

func cmdTokenList(ctx context.Context, args []string) error {
	f := newFlags("token list", "ACCOUNT")
	load := configFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one ACCOUNT address")
	if err != nil {
		return err
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	ts, err := n.Accounts.Tokens(ctx, &account.Principal{Staff: cliActor().Name}, pos[0])
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tHINT\tACTS AS\tCREATED\tLAST USED\tREVOKED")
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	for _, t := range ts {
		as := t.ActsAs()
		if t.OperatorID != 0 {
			as += " " + identity.Mask(t.OperatorTC)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s…\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Hint, as, when(t.CreatedAt), when(t.LastUsedAt), when(t.RevokedAt))
	}
	return tw.Flush()
}

func cmdTokenRevoke(ctx context.Context, args []string) error {
	f := newFlags("token revoke", "ACCOUNT ID [--login USER --password P]")
	load := configFlags(f)
	login := f.String("login", "", "act as this user (the holder or the main operator) instead of the provider")
	password := f.String("password", "-", "the --login user's password; @FILE or - (standard input)")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(2, "ACCOUNT and the token's ID (kep token list)")
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(pos[1], 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a token id: kep token list shows them", pos[1])
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	p, actor, err := tokenPrincipal(ctx, n.Accounts, *login, *password)
	if err != nil {
		return err
	}
	t, err := n.Accounts.RevokeToken(ctx, actor, p, pos[0], id)
	if err != nil {
		return err
	}
	fmt.Printf("token %d (%s) of %s revoked at %s\n", t.ID, t.Name, t.Address, t.RevokedAt.Format(time.RFC3339))
	return nil
}
