package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/provider"
)

func init() {
	register("evidence list", "list the evidence an account has in its Delil folder", cmdEvidenceList)
	register("evidence show", "print one evidence document (signed XML)", cmdEvidenceShow)
	register("evidence bundle", "write the bundle of one evidence, for `kep verify`", cmdEvidenceBundle)
}

func cmdEvidenceList(ctx context.Context, args []string) error {
	f := newFlags("evidence list", "--account ADDRESS")
	load := configFlags(f)
	acct := f.String("account", "", "evidence in this account's evidence folder (what it sent)")
	limit := f.Int("limit", 50, "most recent N")
	if err := f.parse(args); err != nil {
		return err
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	if *acct == "" {
		return fmt.Errorf("--account is required")
	}
	a, err := n.Accounts.Get(ctx, *acct)
	if err != nil {
		return err
	}
	rows, err := n.DB.Q().Query(ctx, `SELECT seq, id, code, subject, event_time FROM evidence WHERE account_id = ? ORDER BY seq DESC LIMIT ?`, a.ID, *limit)
	if err != nil {
		return err
	}
	defer rows.Close()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tID\tCODE\tEVENT\tCONCERNS\tTIME (UTC)")
	for rows.Next() {
		var seq, at int64
		var code int
		var id, subject string
		if err := rows.Scan(&seq, &id, &code, &subject, &at); err != nil {
			return err
		}
		c := evidence.Code(code)
		fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\t%s\n", seq, id, code, c.Label(), subject, timeOf(at))
	}
	return w.Flush()
}

func timeOf(ms int64) string {
	return fmtMillis(ms)
}

func cmdEvidenceShow(ctx context.Context, args []string) error {
	f := newFlags("evidence show", "ID")
	load := configFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one evidence ID")
	if err != nil {
		return err
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	st, err := evidence.Get(ctx, n.DB.Q(), pos[0])
	if err != nil {
		return fmt.Errorf("evidence %s: %w", pos[0], err)
	}
	_, err = os.Stdout.Write(st.Document)
	return err
}

func cmdEvidenceBundle(ctx context.Context, args []string) error {
	f := newFlags("evidence bundle", "--id ID --out FILE")
	load := configFlags(f)
	id := f.String("id", "", "evidence identifier (required)")
	out := f.String("out", "", "bundle file to write (required)")
	first := f.Bool("first", false, "use the first checkpoint that covers the evidence (as in the Delil folder) instead of the newest, which carries every later time stamp")
	if err := f.parse(args); err != nil {
		return err
	}
	if *id == "" || *out == "" {
		return fmt.Errorf("--id and --out are required")
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	n, err := provider.Open(ctx, cfg, provider.Options{})
	if err != nil {
		return err
	}
	defer n.Close()
	st, err := evidence.Get(ctx, n.DB.Q(), *id)
	if err != nil {
		return fmt.Errorf("evidence %s: %w", *id, err)
	}
	bundle := n.ArchiveBundle
	if *first {
		bundle = n.Bundle
	}
	b, err := bundle(ctx, st.Seq)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: evidence %s (%s), %d bytes\n", *out, st.ID, st.Code.Label(), len(b))
	return nil
}
