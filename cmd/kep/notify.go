package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/kephs/kep/account"
)

// cmdAccountNotices sets or shows where an account's owner and operators
// get notices by SMS and e-mail (docs/notices.md).
func cmdAccountNotices(ctx context.Context, args []string) error {
	f := newFlags("account notices", "ACCOUNT [--operator TCKN] [--sms +905XXXXXXXXX] [--email ADDRESS]   (no --sms/--email: show; an empty value turns a channel off)")
	load := configFlags(f)
	tckn := f.String("operator", "", "the operator's TCKN (default: the account's owner); the operator needs the sms-notice / email-notice grant")
	sms := f.String("sms", "", "mobile number for SMS notices, +905XXXXXXXXX; \"\" turns SMS notices off")
	email := f.String("email", "", "ordinary (non-KEP) e-mail address for notices; \"\" turns e-mail notices off")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one ACCOUNT address")
	if err != nil {
		return err
	}
	var ch account.NoticeChange
	f.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "sms":
			ch.SMS = sms
		case "email":
			ch.Email = email
		}
	})
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	if ch.SMS != nil || ch.Email != nil {
		if _, err := n.Accounts.SetNoticePrefs(ctx, cliActor(), pos[0], *tckn, ch); err != nil {
			return err
		}
	} else if *tckn != "" {
		return f.usageError("--operator needs --sms or --email")
	}
	ps, err := n.Accounts.NoticePrefsOf(ctx, pos[0])
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHO\tSMS\tE-MAIL")
	for _, p := range ps {
		who := "owner"
		if p.OperatorID != 0 {
			who = fmt.Sprintf("operator %s (%s)", p.TCKN, p.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", who, orOff(p.SMS), orOff(p.Email))
	}
	return tw.Flush()
}

func orOff(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
