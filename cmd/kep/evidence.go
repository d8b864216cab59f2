package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider"
)

func cmdEvidenceList(ctx context.Context, args []string) error {
	f := newFlags("evidence list", "--account ADDRESS | --message-id ID | --recipient ADDRESS")
	load := configFlags(f)
	acct := f.String("account", "", "evidence in this account's evidence folder (what it sent)")
	msgID := f.String("message-id", "", "evidence about the message with this Message-ID, rejections included")
	rcpt := f.String("recipient", "", "evidence about deliveries to this address")
	limit := f.Int("limit", 50, "most recent N")
	if err := f.parse(args); err != nil {
		return err
	}
	if *acct == "" && *msgID == "" && *rcpt == "" {
		return fmt.Errorf("say which evidence: --account, --message-id or --recipient")
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	q := mailbox.EvidenceQuery{HeaderID: *msgID, Recipient: *rcpt, Limit: *limit}
	if *acct != "" {
		if q.Account, err = n.Accounts.Get(ctx, *acct); err != nil {
			return err
		}
	}
	es, err := evidenceReader(n).ListEvidence(ctx, staff(), q)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tID\tCODE\tEVENT\tCONCERNS\tTIME (UTC)\tREASON")
	for _, e := range es {
		fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", e.Seq, e.ID, int(e.Code), e.Code.Label(), e.Concerns, fmtMillis(e.EventTime.UnixMilli()), e.Reason)
	}
	return w.Flush()
}

// evidenceReader is the mailbox service's evidence reading over an
// administrative view of the provider (which runs no mailbox of its own).
func evidenceReader(n *provider.Admin) *mailbox.Service {
	return &mailbox.Service{DB: n.DB}
}

// staff is the principal of the command line: the provider's own tools.
func staff() *account.Principal {
	return &account.Principal{Staff: cliActor().Name}
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
	st, err := evidenceReader(n).GetEvidence(ctx, staff(), pos[0])
	if err != nil {
		return err
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
	st, err := evidenceReader(n.Admin).GetEvidence(ctx, staff(), *id)
	if err != nil {
		// Evidence another provider returned: its bundle as received.
		if b, ferr := evidenceReader(n.Admin).ForeignBundle(ctx, staff(), *id); ferr == nil {
			if err := os.WriteFile(*out, b, 0o644); err != nil {
				return err
			}
			fmt.Printf("%s: evidence %s returned by another provider, as received, %d bytes\n", *out, *id, len(b))
			return nil
		}
		return err
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
