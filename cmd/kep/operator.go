package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/kephs/kep/account"
)

func cmdOperatorAdd(ctx context.Context, args []string) error {
	f := newFlags("operator add", "ACCOUNT --tckn N --name NAME --password P --cert FILE [--role main|sub] [--grants read,send]")
	load := configFlags(f)
	tckn := f.String("tckn", "", "operator's T.C. Kimlik No (required)")
	name := f.String("name", "", "operator's full name")
	password := f.String("password", "", "operator's password (new operators); @FILE or -")
	certPath := f.String("cert", "", "operator's qualified e-signature certificate (PEM)")
	role := f.String("role", "sub", "main (ana işlem yetkilisi) or sub (alt işlem yetkilisi)")
	grants := f.String("grants", "", "comma-separated grants (default: all for main, read for sub)")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one ACCOUNT address")
	if err != nil {
		return err
	}
	g, err := account.ParseGrants(*grants)
	if err != nil {
		return err
	}
	pw, err := readSecret(*password)
	if err != nil {
		return err
	}
	cert, inter, err := loadCert(*certPath)
	if err != nil {
		return err
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	r, err := n.Accounts.AddOperator(ctx, cliActor(), pos[0], account.OperatorRequest{TCKN: *tckn, Name: *name, Password: pw,
		Certificate: cert, Intermediates: inter, Role: account.Role(*role), Grants: g})
	if err != nil {
		return err
	}
	fmt.Printf("%s\t%s operator %s (%s)\t%s\n", r.Address, r.Role, r.Name, r.TCKN, account.Grant(r.Grants))
	return nil
}

func cmdOperatorGrants(add bool) func(ctx context.Context, args []string) error {
	verb := "revoke"
	if add {
		verb = "grant"
	}
	return func(ctx context.Context, args []string) error {
		f := newFlags("operator "+verb, "ACCOUNT TCKN GRANTS   (GRANTS: read,send,delete,archive,sms-notice,email-notice or all)")
		load := configFlags(f)
		if err := f.parse(args); err != nil {
			return err
		}
		pos, err := f.args(3, "ACCOUNT TCKN GRANTS")
		if err != nil {
			return err
		}
		g, err := account.ParseGrants(pos[2])
		if err != nil {
			return err
		}
		n, err := openAdmin(ctx, load)
		if err != nil {
			return err
		}
		defer n.Close()
		fn := n.Accounts.Revoke
		if add {
			fn = n.Accounts.Grant
		}
		r, err := fn(ctx, cliActor(), pos[0], pos[1], g)
		if err != nil {
			return err
		}
		fmt.Printf("%s\t%s (%s)\t%s\n", r.Address, r.Name, r.TCKN, account.Grant(r.Grants))
		return nil
	}
}

func cmdOperatorRemove(ctx context.Context, args []string) error {
	f := newFlags("operator remove", "ACCOUNT TCKN")
	load := configFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(2, "ACCOUNT TCKN")
	if err != nil {
		return err
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := n.Accounts.RemoveOperator(ctx, cliActor(), pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Printf("%s\toperator %s removed\n", pos[0], pos[1])
	return nil
}

func cmdOperatorList(ctx context.Context, args []string) error {
	f := newFlags("operator list", "ACCOUNT")
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
	a, err := n.Accounts.Get(ctx, pos[0])
	if err != nil {
		return err
	}
	ops, err := n.Accounts.Operators(ctx, a.ID)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ROLE\tTCKN\tNAME\tGRANTS")
	for _, o := range ops {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", o.Role, o.TCKN, o.Name, account.Grant(o.Grants))
	}
	return w.Flush()
}
