package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kephs/kep/demo"
)

func cmdDemo(ctx context.Context, args []string) error {
	f := newFlags("demo", "[--dir DIR]")
	dir := f.String("dir", demo.DefaultDir(), "where the world lives; an existing world is reused")
	quiet := f.Bool("quiet", false, "print only the path of demo.json")
	quota := f.Int64("quota", 0, "mailbox quota of the accounts of a new world, in bytes (default 100 MB)")
	if err := f.parse(args); err != nil {
		return err
	}
	w, err := demo.Start(ctx, *dir, demo.Options{Ports: !*quiet, Quota: *quota})
	if err != nil {
		return err
	}
	defer w.Close()
	if *quiet {
		fmt.Println(filepath.Join(w.Info.Dir, "demo.json"))
	} else {
		tour(os.Stdout, w.Info)
	}
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "kep demo: stopping")
	return nil
}

// tour prints the guided tour of a demo world.
func tour(out io.Writer, info *demo.Info) {
	p := info.Providers[0]
	e := p.Endpoints
	self := "kep"
	if exe, err := os.Executable(); err == nil && !strings.Contains(exe, "go-build") {
		self = exe
	} else {
		self = "go run ./cmd/kep"
	}
	fmt.Fprintf(out, "KEP demo world — %s (state in %s)\n\n", p.Domain, info.Dir)
	fmt.Fprintf(out, "Provider %s\n", p.Domain)
	fmt.Fprintf(out, "  SMTP submission   %s (STARTTLS)   %s (TLS)\n", e.Submission, e.Submissions)
	if e.IMAPS != "" {
		fmt.Fprintf(out, "  IMAP              %s (STARTTLS)   %s (TLS)\n", e.IMAP, e.IMAPS)
	}
	fmt.Fprintf(out, "  evidence log      %scheckpoint\n", p.LogURL)
	fmt.Fprintf(out, "  time stamps       %s (RFC 3161, development TSA)\n\n", info.TSA.URL)
	fmt.Fprintf(out, "Accounts (passwords, certificates and keys are in demo.json):\n")
	for _, a := range info.Accounts {
		extra := ""
		if a.Username == "" {
			extra = "  — used through its operators"
		}
		fmt.Fprintf(out, "  %-8s %-36s %-8s %-13s %s%s\n", a.Key, a.Address, a.Kind, a.Capability, a.Name, extra)
	}
	for _, o := range info.Operators {
		fmt.Fprintf(out, "  %-8s operator (%s) of %s, log in as %s, grants %s\n", o.Key, o.Role, o.Account, o.Username, strings.Join(o.Grants, ","))
	}
	a, m := info.Accounts[0], info.Accounts[1]
	fmt.Fprintf(out, "\nA short tour (in another terminal):\n")
	fmt.Fprintf(out, "  1. Send a signed KEP message from %s to %s:\n", a.Key, m.Key)
	fmt.Fprintf(out, "       %s send --demo %s --as %s --to %s --subject 'Ödeme emri' --body 'Merhaba'\n", self, info.Dir, a.Key, m.Address)
	fmt.Fprintf(out, "     It prints the acceptance evidence id. A receive-only or unsigned send is refused with rejection evidence:\n")
	fmt.Fprintf(out, "       %s send --demo %s --as ece --to %s --body x\n", self, info.Dir, a.Address)
	fmt.Fprintf(out, "  2. Read it as %s with any IMAP client (TLS on %s, user %s, password in demo.json);\n", m.Key, e.IMAPS, m.Username)
	fmt.Fprintf(out, "     the first opening gives the sender read evidence (60).\n")
	fmt.Fprintf(out, "  3. See %s's evidence (the Delil folder over IMAP, or here):\n", a.Key)
	fmt.Fprintf(out, "       %s evidence list --config %s --account %s\n", self, p.Config, a.Address)
	fmt.Fprintf(out, "       %s evidence bundle --config %s --id ID --out delil.zip\n", self, p.Config)
	fmt.Fprintf(out, "  4. Verify it offline, trusting only the anchors:\n")
	fmt.Fprintf(out, "       %s verify delil.zip --anchors %s\n", self, info.Anchors.Dir)
	fmt.Fprintf(out, "\nEverything is in %s. Stop with Ctrl-C; run again to continue with the same state.\n",
		filepath.Join(info.Dir, "demo.json"))
}
