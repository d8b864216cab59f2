package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/store"
)

// ownerFlags adds the identity flags; exactly one must be given.
func ownerFlags(f *flags) func() (identity.ID, error) {
	tckn := f.String("tckn", "", "owner's T.C. Kimlik No (persons)")
	vkn := f.String("vkn", "", "owner's Vergi Kimlik No (companies)")
	mersis := f.String("mersis", "", "owner's MERSİS number (companies)")
	detsis := f.String("detsis", "", "owner's DETSİS number (public bodies)")
	id := f.String("identity", "", "owner as SCHEME:NUMBER, e.g. TCKN:12345678950")
	return func() (identity.ID, error) {
		var ids []identity.ID
		for _, c := range []struct {
			v string
			s identity.Scheme
		}{{*tckn, identity.TCKN}, {*vkn, identity.VKN}, {*mersis, identity.MERSIS}, {*detsis, identity.DETSIS}} {
			if c.v != "" {
				ids = append(ids, identity.ID{Scheme: c.s, Value: c.v})
			}
		}
		if *id != "" {
			parsed, err := identity.ParseID(*id)
			if err != nil {
				return identity.ID{}, err
			}
			ids = append(ids, parsed)
		}
		if len(ids) != 1 {
			return identity.ID{}, errors.New("give the owner's identity once: --tckn, --vkn, --mersis, --detsis or --identity")
		}
		return ids[0], ids[0].Validate()
	}
}

func loadCert(path string) (*x509.Certificate, []*x509.Certificate, error) {
	if path == "" {
		return nil, nil, nil
	}
	certs, err := pki.LoadCertsPEM(path)
	if err != nil {
		return nil, nil, err
	}
	return certs[0], certs[1:], nil
}

func cmdAccountCreate(ctx context.Context, args []string) error {
	f := newFlags("account create", "--kind person --tckn N --given G --surname S --password P --cert FILE | --kind company --vkn N --name NAME ...")
	load := configFlags(f)
	owner := ownerFlags(f)
	kind := f.String("kind", "person", "person, company or public")
	capability := f.String("capability", "send-receive", "send-receive or receive-only")
	given := f.String("given", "", "given name (persons)")
	surname := f.String("surname", "", "surname (persons)")
	name := f.String("name", "", "owner's full or legal name")
	local := f.String("local-part", "", "local part asked for (companies: legal name or MERSİS number)")
	suffix := f.String("suffix", "", "optional .X suffix of a company address")
	inst := f.Bool("institutional", false, "use the name.hsNN.kep.tr institutional domain")
	password := f.String("password", "", "password; @FILE reads it from a file, - from standard input")
	certPath := f.String("cert", "", "owner's qualified e-signature certificate (PEM, chain after the leaf)")
	verifiedBy := f.String("verified-by", "", "who checked the identity documents (not needed when --cert proves the identity)")
	noActivate := f.Bool("no-activate", false, "leave a verified account inactive")
	quota := f.Int64("quota", 0, "mailbox quota in bytes (default from the config)")
	asJSON := f.Bool("json", false, "print the account as JSON")
	if err := f.parse(args); err != nil {
		return err
	}
	id, err := owner()
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
	a, err := n.Accounts.Create(ctx, cliActor(), account.CreateRequest{
		Kind: account.Kind(*kind), Capability: account.Capability(*capability), Owner: id, OwnerName: *name,
		GivenName: *given, Surname: *surname, LocalPart: *local, Suffix: *suffix, Institutional: *inst,
		Password: pw, Certificate: cert, Intermediates: inter, VerifiedBy: *verifiedBy, Activate: !*noActivate, QuotaBytes: *quota,
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(accountJSON(a))
	}
	fmt.Printf("%s\t%s\t%s\t%s\n", a.Address, a.Status, a.Kind, a.Capability)
	if a.Status == string(account.Applied) {
		fmt.Fprintf(os.Stderr, "The identity is not verified yet: kep account verify %s --by WHO, then kep account activate %s\n", a.Address, a.Address)
	}
	return nil
}

func accountJSON(a *store.Account) map[string]any {
	m := map[string]any{
		"address": a.Address, "kind": a.Kind, "capability": a.Capability, "owner": maskedOwner(a.OwnerID), "owner_name": a.OwnerName,
		"status": a.Status, "quota_bytes": a.QuotaBytes, "used_bytes": a.UsedBytes, "created_at": a.CreatedAt,
	}
	if !a.VerifiedAt.IsZero() {
		m["verified_at"], m["verified_by"] = a.VerifiedAt, a.VerifiedBy
	}
	if !a.ClosedAt.IsZero() {
		m["closed_at"] = a.ClosedAt
	}
	if !a.ReopenedAt.IsZero() {
		m["reopened_at"] = a.ReopenedAt
	}
	return m
}

func maskedOwner(s string) string {
	if id, err := identity.ParseID(s); err == nil {
		return id.String()
	}
	return s
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdAccountShow(ctx context.Context, args []string) error {
	f := newFlags("account show", "ADDRESS")
	load := configFlags(f)
	asJSON := f.Bool("json", false, "print as JSON")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one ADDRESS")
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
	certs, err := n.Accounts.Certificates(ctx, a.ID)
	if err != nil {
		return err
	}
	events, err := store.ListAccountEvents(ctx, n.DB.Q(), a.ID)
	if err != nil {
		return err
	}
	if *asJSON {
		m := accountJSON(a)
		var opl []map[string]any
		for _, o := range ops {
			opl = append(opl, map[string]any{"tckn": o.TCKN, "name": o.Name, "role": o.Role, "grants": strings.Split(account.Grant(o.Grants).String(), ",")})
		}
		m["operators"] = opl
		var cl []map[string]any
		for _, c := range certs {
			cl = append(cl, map[string]any{"subject": c.Subject.String(), "not_after": c.NotAfter})
		}
		m["certificates"] = cl
		m["events"] = events
		return printJSON(m)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "address\t%s\nkind\t%s\ncapability\t%s\nowner\t%s (%s)\nstatus\t%s\nquota\t%d of %d bytes used\ncreated\t%s\n",
		a.Address, a.Kind, a.Capability, a.OwnerName, maskedOwner(a.OwnerID), a.Status, a.UsedBytes, a.QuotaBytes, a.CreatedAt.Format("2006-01-02 15:04:05Z"))
	if a.VerifiedBy != "" {
		fmt.Fprintf(w, "verified\t%s by %s\n", a.VerifiedAt.Format("2006-01-02 15:04:05Z"), a.VerifiedBy)
	}
	for _, c := range certs {
		fmt.Fprintf(w, "certificate\t%s, valid until %s\n", c.Subject.String(), c.NotAfter.Format("2006-01-02"))
	}
	for _, o := range ops {
		fmt.Fprintf(w, "operator\t%s %s (%s): %s\n", o.Role, o.Name, o.TCKN, account.Grant(o.Grants))
	}
	for _, e := range events {
		line := e.At.Format("2006-01-02 15:04:05Z") + " " + e.Event
		if e.Detail != "" {
			line += " (" + e.Detail + ")"
		}
		if e.FeeDays > 0 {
			line += fmt.Sprintf(", fees owed for %d days", e.FeeDays)
		}
		fmt.Fprintf(w, "history\t%s\n", line)
	}
	return w.Flush()
}

func cmdAccountList(ctx context.Context, args []string) error {
	f := newFlags("account list", "[--identity SCHEME:NUMBER] [--status STATUS]")
	load := configFlags(f)
	owner := f.String("identity", "", "only accounts of this owner, as SCHEME:NUMBER")
	status := f.String("status", "", "only accounts in this status: "+strings.Join(statusNames(), ", "))
	asJSON := f.Bool("json", false, "print as JSON")
	if err := f.parse(args); err != nil {
		return err
	}
	if *status != "" && !validStatus(*status) {
		return f.usageError("unknown status %q: want %s", *status, strings.Join(statusNames(), ", "))
	}
	if *owner != "" {
		id, err := identity.ParseID(*owner)
		if err != nil {
			return err
		}
		*owner = id.String()
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	accts, err := store.ListAccounts(ctx, n.DB.Q(), *owner, *status)
	if err != nil {
		return err
	}
	if *asJSON {
		out := []map[string]any{}
		for _, a := range accts {
			out = append(out, accountJSON(a))
		}
		return printJSON(out)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ADDRESS\tKIND\tCAPABILITY\tSTATUS\tOWNER")
	for _, a := range accts {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.Address, a.Kind, a.Capability, a.Status, a.OwnerName)
	}
	return w.Flush()
}

func cmdAccountLifecycle(action string) func(ctx context.Context, args []string) error {
	return func(ctx context.Context, args []string) error {
		f := newFlags("account "+action, "ADDRESS")
		load := configFlags(f)
		// Each action lists only the flags it uses.
		by, reason := new(string), new(string)
		switch action {
		case "verify":
			f.usageLine = "ADDRESS --by WHO"
			by = f.String("by", "", "who checked the identity documents, for the audit trail")
		case "suspend", "close":
			f.usageLine = "ADDRESS [--reason TEXT]"
			reason = f.String("reason", "", "reason, for the audit trail")
		}
		if err := f.parse(args); err != nil {
			return err
		}
		pos, err := f.args(1, "one ADDRESS")
		if err != nil {
			return err
		}
		n, err := openAdmin(ctx, load)
		if err != nil {
			return err
		}
		defer n.Close()
		s, actor := n.Accounts, cliActor()
		var a *store.Account
		switch action {
		case "verify":
			a, err = s.Verify(ctx, actor, pos[0], *by)
		case "activate":
			a, err = s.Activate(ctx, actor, pos[0])
		case "suspend":
			a, err = s.Suspend(ctx, actor, pos[0], *reason)
		case "resume":
			a, err = s.Resume(ctx, actor, pos[0])
		case "close":
			a, err = s.Close(ctx, actor, pos[0], *reason)
		}
		if err != nil {
			return err
		}
		fmt.Printf("%s\t%s\n", a.Address, a.Status)
		return nil
	}
}

func cmdAccountReopen(ctx context.Context, args []string) error {
	f := newFlags("account reopen", "ADDRESS --identity SCHEME:NUMBER --verified-by WHO")
	load := configFlags(f)
	owner := ownerFlags(f)
	by := f.String("verified-by", "", "who checked the owner's identity again (required)")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one ADDRESS")
	if err != nil {
		return err
	}
	id, err := owner()
	if err != nil {
		return err
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	a, err := n.Accounts.Reopen(ctx, cliActor(), pos[0], id, *by)
	if err != nil {
		return err
	}
	days := account.FeeDays(a.ClosedAt, a.ReopenedAt)
	fmt.Printf("%s\t%s\tfees owed for %d days since closure\n", a.Address, a.Status, days)
	return nil
}

func cmdAccountRecover(ctx context.Context, args []string) error {
	f := newFlags("account recover", "ADDRESS --identity SCHEME:NUMBER --verified-by WHO --password NEW [--operator TCKN]")
	load := configFlags(f)
	owner := ownerFlags(f)
	by := f.String("verified-by", "", "who re-verified the identity, e.g. call-centre:agent-12 (required)")
	op := f.String("operator", "", "for company accounts: the operator whose password is reset")
	password := f.String("password", "", "the new password; @FILE or - for standard input")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one ADDRESS")
	if err != nil {
		return err
	}
	id, err := owner()
	if err != nil {
		return err
	}
	pw, err := readSecret(*password)
	if err != nil {
		return err
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	revoked, err := n.Accounts.Recover(ctx, cliActor(), pos[0], id, *by, *op, pw)
	if err != nil {
		return err
	}
	fmt.Printf("password reset; %d app passwords and sessions revoked\n", revoked)
	return nil
}

func cmdAppPassword(ctx context.Context, args []string) error {
	f := newFlags("account app-password", "USER --name CLIENT   (USER: an address, or an operator's TCKN)")
	load := configFlags(f)
	name := f.String("name", "mail client", "what the password is for")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one USER")
	if err != nil {
		return err
	}
	n, err := openAdmin(ctx, load)
	if err != nil {
		return err
	}
	defer n.Close()
	var p store.Principal
	if strings.Contains(pos[0], "@") {
		a, err := n.Accounts.Get(ctx, pos[0])
		if err != nil {
			return err
		}
		p.AccountID = a.ID
	} else {
		o, err := store.GetOperatorByTCKN(ctx, n.DB.Q(), pos[0])
		if err != nil {
			return fmt.Errorf("%w: TCKN %s", account.ErrNoSuchOperator, pos[0])
		}
		p.OperatorID = o.ID
	}
	pw, err := n.Accounts.AddAppPassword(ctx, cliActor(), p, *name)
	if err != nil {
		return err
	}
	fmt.Println(pw)
	return nil
}

// statuses are the steps of the account lifecycle, in order.
var statuses = []account.Status{account.Applied, account.Verified, account.Active, account.Suspended, account.Closed}

func statusNames() []string {
	var out []string
	for _, s := range statuses {
		out = append(out, string(s))
	}
	return out
}

func validStatus(s string) bool {
	for _, v := range statuses {
		if string(v) == s {
			return true
		}
	}
	return false
}
