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
	only := f.String("provider", "", "run only this provider (e.g. hs01) with the shared services; run another with kep serve --config DIR/ID/kep.toml")
	if err := f.parse(args); err != nil {
		return err
	}
	serverProcs()
	w, err := demo.Start(ctx, *dir, demo.Options{Ports: !*quiet, Quota: *quota, Only: *only})
	if err != nil {
		return err
	}
	defer w.Close()
	// Reported, not promised: issue 11 asks for a world in under 5 s.
	ready := fmt.Sprintf("world ready in %.1f s", w.Ready.Seconds())
	if w.Created {
		ready = "new " + ready
	}
	if *quiet {
		fmt.Fprintln(os.Stderr, ready)
		portNotes(os.Stderr, w)
		fmt.Println(filepath.Join(w.Info.Dir, "demo.json"))
	} else {
		portNotes(os.Stdout, w)
		tour(os.Stdout, w.Info)
		fmt.Println(ready)
	}
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "kep demo: stopping")
	return nil
}

// portNotes says which endpoints are not where docs/demo.md's port table,
// or the previous run, put them: a new world whose fixed ports were taken
// keeps the replacements for good, and saying so at every start keeps a
// person from reaching another world on the usual port.
func portNotes(out io.Writer, w *demo.World) {
	if len(w.Info.ReplacedPorts) > 0 {
		if w.Created {
			fmt.Fprintf(out, "Some fixed ports were taken, so this new world uses others, now and on every later start:\n")
		} else {
			fmt.Fprintf(out, "This world does not use every usual port (they were taken when it was created):\n")
		}
		for _, c := range w.Info.ReplacedPorts {
			fmt.Fprintf(out, "  %-34s %s -> %s\n", c.Service, c.Was, c.Now)
		}
		fmt.Fprintf(out, "Use the addresses below (and in demo.json), not the usual ones.\n\n")
	}
	if len(w.Changed) > 0 {
		fmt.Fprintf(out, "These endpoints changed since the last run of this world:\n")
		for _, c := range w.Changed {
			fmt.Fprintf(out, "  %-34s %s -> %s\n", c.Service, c.Was, c.Now)
		}
		fmt.Fprintln(out)
	}
}

// tour prints the guided tour of a demo world.
func tour(out io.Writer, info *demo.Info) {
	self := "kep"
	if exe, err := os.Executable(); err == nil && !strings.Contains(exe, "go-build") {
		self = exe
	} else {
		self = "go run ./cmd/kep"
	}
	var domains []string
	for _, p := range info.Providers {
		domains = append(domains, p.Domain)
	}
	fmt.Fprintf(out, "KEP demo world — %s (state in %s)\n\n", strings.Join(domains, " and "), info.Dir)
	for _, p := range info.Providers {
		e := p.Endpoints
		fmt.Fprintf(out, "Provider %s\n", p.Domain)
		fmt.Fprintf(out, "  SMTP submission   %s (STARTTLS)   %s (TLS)\n", e.Submission, e.Submissions)
		if e.IMAPS != "" {
			fmt.Fprintf(out, "  IMAP              %s (STARTTLS)   %s (TLS)\n", e.IMAP, e.IMAPS)
		}
		fmt.Fprintf(out, "  evidence log      %scheckpoint\n", p.LogURL)
		if e.Relay != "" {
			fmt.Fprintf(out, "  relay             %s (SMTP over mutual TLS, other providers only)\n", e.Relay)
		}
		if e.Rehber != "" {
			fmt.Fprintf(out, "  KEP Rehberi       https://%s/rehber/v1/ (other providers, mutual TLS); users: https://%s/rehber/v1/\n", e.Rehber, e.HTTPS)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "Shared\n")
	fmt.Fprintf(out, "  time stamps       %s (RFC 3161, development TSA, used by both providers)\n", info.TSA.URL)
	if info.Directory.File != "" {
		fmt.Fprintf(out, "  provider directory %s (signed by the demo authority, %s)\n", info.Directory.File, info.Directory.AuthorityDir)
	}
	anchors := info.Anchors.Dir
	fmt.Fprintf(out, "  TLS and evidence  trust the providers' CAs: %s\n", filepath.Join(anchors, "provider-ca.pem"))
	fmt.Fprintf(out, "                    (mail clients and openssl -CAfile; kep send --demo does it for you)\n\n")
	demoJSON := filepath.Join(info.Dir, "demo.json")
	fmt.Fprintf(out, "Accounts (each password is the demo.json field named; certificates and keys are there too):\n")
	for i, a := range info.Accounts {
		login := fmt.Sprintf("password: accounts[%d].password", i)
		if a.Username == "" {
			login = "no login: used through its operators"
		}
		fmt.Fprintf(out, "  %-8s %-36s %-8s %-13s %s — %s\n", a.Key, a.Address, a.Kind, a.Capability, a.Name, login)
	}
	for i, o := range info.Operators {
		fmt.Fprintf(out, "  %-8s operator (%s) of %s, grants %s — user %s, password: operators[%d].password\n", o.Key, o.Role, o.Account, strings.Join(o.Grants, ","), o.Username, i)
	}
	fmt.Fprintf(out, "  For example: jq -r '.accounts[1].password' %s\n", demoJSON)
	a, m := info.Accounts[0], info.Accounts[1]
	e := info.Providers[0].Endpoints
	fmt.Fprintf(out, "\nA short tour (in another terminal):\n")
	fmt.Fprintf(out, "  1. Send a signed KEP message from %s to %s:\n", a.Key, m.Key)
	fmt.Fprintf(out, "       %s send --demo %s --as %s --to %s --subject 'Ödeme emri' --body 'Merhaba'\n", self, info.Dir, a.Key, m.Address)
	fmt.Fprintf(out, "     It prints the acceptance evidence id. A receive-only or unsigned send is refused with rejection evidence:\n")
	fmt.Fprintf(out, "       %s send --demo %s --as ece --to %s --body x\n", self, info.Dir, a.Address)
	if sms := info.Providers[0].SMSFile; sms != "" && m.NoticeSMS != "" {
		fmt.Fprintf(out, "     %s is told by SMS (sender, time and deadline; never the content); the demo's SMS gateway writes to a file:\n", m.Key)
		fmt.Fprintf(out, "       tail %s\n", sms)
	}
	fmt.Fprintf(out, "  2. Read it as %s with any IMAP client: TLS on %s, user %s, password accounts[1].password\n", m.Key, e.IMAPS, m.Username)
	fmt.Fprintf(out, "     in demo.json, trusting %s;\n", filepath.Join(anchors, "provider-ca.pem"))
	fmt.Fprintf(out, "     the first opening gives the sender read evidence (60).\n")
	fmt.Fprintf(out, "  3. See %s's evidence (the Delil folder over IMAP, or here):\n", a.Key)
	fmt.Fprintf(out, "       %s evidence list --demo %s --account %s\n", self, info.Dir, a.Address)
	fmt.Fprintf(out, "       %s evidence bundle --demo %s --id ID --out delil.zip\n", self, info.Dir)
	fmt.Fprintf(out, "  4. Verify it offline, trusting only the anchors:\n")
	fmt.Fprintf(out, "       %s verify delil.zip --anchors %s\n", self, anchors)
	if far, _ := info.Account("elif"); far != nil {
		fmt.Fprintf(out, "  5. Write across providers, from %s at %s to %s at %s:\n", a.Key, info.Providers[0].Domain, far.Key, far.Provider+".kep.tr")
		fmt.Fprintf(out, "       %s send --demo %s --as %s --to %s --subject 'Sözleşme' --body 'Merhaba'\n", self, info.Dir, a.Key, far.Address)
		fmt.Fprintf(out, "     %s relays it over mutual TLS; %s issues relay acceptance (20) and delivery (40) and sends them back.\n",
			info.Providers[0].ID, far.Provider)
		fmt.Fprintf(out, "     A few seconds later %s's list shows her own 10 and %s's 20 and 40 (also in her Delil folder):\n", a.Key, far.Provider)
		fmt.Fprintf(out, "       %s evidence list --demo %s --account %s\n", self, info.Dir, a.Address)
		fmt.Fprintf(out, "     Bundle the 10 at %s as in step 3; bundle %s's 20 or 40 where it was issued, and verify either with the same anchors:\n", info.Providers[0].ID, far.Provider)
		fmt.Fprintf(out, "       %s evidence bundle --demo %s --provider %s --id ID --out relay.zip\n", self, info.Dir, far.Provider)
		fmt.Fprintf(out, "       %s verify relay.zip --anchors %s\n", self, anchors)
		fmt.Fprintf(out, "     (the anchors directory holds both providers' CAs and both log keys).\n")
	}
	fmt.Fprintf(out, "\nEverything is in %s. Stop with Ctrl-C; run again to continue with the same state.\n", demoJSON)
}
