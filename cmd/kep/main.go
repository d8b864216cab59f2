// Command kep runs and administers a KEP (Kayıtlı Elektronik Posta) provider.
// This file holds flag parsing and dispatch only; the work is done by the
// packages it calls.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/provider"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands is the table of subcommands, listed by `kep help` in this order.
// It is built here, explicitly, rather than by registration from each
// file's init (the house rule: no package-level registration).
func commands() []command {
	return []command{
		{"account activate", "activate a verified account", cmdAccountLifecycle("activate")},
		{"account app-password", "create an app password for a mail client", cmdAppPassword},
		{"account close", "close an account (its address stays reserved)", cmdAccountLifecycle("close")},
		{"account create", "open an account for a verified identity", cmdAccountCreate},
		{"account list", "list accounts", cmdAccountList},
		{"account notices", "set or show where the owner and operators get notices of new messages and deadlines (SMS, e-mail)", cmdAccountNotices},
		{"account recover", "reset a lost password after identity re-verification", cmdAccountRecover},
		{"account reopen", "reopen a closed account for its owner, after re-verification", cmdAccountReopen},
		{"account resume", "resume a suspended account", cmdAccountLifecycle("resume")},
		{"account show", "show an account, its operators, certificates and history", cmdAccountShow},
		{"account suspend", "suspend an active account", cmdAccountLifecycle("suspend")},
		{"account verify", "record that an applicant's identity was checked", cmdAccountLifecycle("verify")},
		{"authority add-provider", "list a provider in the directory, or add its new keys, pins and certificates", cmdAuthorityAdd},
		{"authority init", "create an authority (the directory's signer): key and empty provider directory", cmdAuthorityInit},
		{"authority remove-provider", "mark a provider removed (its history stays, so its evidence still verifies)", cmdAuthorityRemove},
		{"authority show", "print a signed directory after checking its signature", cmdAuthorityShow},
		{"authority sign", "sign the working directory as its next version (directory.note)", cmdAuthoritySign},
		{"bench", "load a running provider with signed messages; report throughput, latency and memory", cmdBench},
		{"bench evidence", "measure the evidence issue rate (sign, log, commit) and bytes stored per evidence", cmdBenchEvidence},
		{"cert issue", "issue a development e-signature certificate (kep init directories only)", cmdCertIssue},
		{"demo", "run a complete KEP world on this machine, no set-up needed", cmdDemo},
		{"evidence bundle", "write the bundle of one evidence, for `kep verify`", cmdEvidenceBundle},
		{"evidence list", "list the evidence an account has in its Delil folder", cmdEvidenceList},
		{"evidence show", "print one evidence document (signed XML)", cmdEvidenceShow},
		{"id check", "check an identity number: tckn, vkn, mersis or detsis", cmdIDCheck},
		{"id sample", "print valid sample identity numbers for tests and the demo: tckn or vkn (never real people's)", cmdIDSample},
		{"init", "create a provider directory: commented config, keys, development CAs", cmdInit},
		{"log checkpoint", "print the latest signed checkpoint", cmdLogCheckpoint},
		{"log consistency", "check that a checkpoint extends an older one (consistency proof)", cmdLogConsistency},
		{"log proof", "print the inclusion proof of an evidence in the latest checkpoint", cmdLogProof},
		{"log retimestamp", "add a fresh RFC 3161 time stamp over the latest checkpoint", cmdLogRetimestamp},
		{"keys rotate", "make a new provider certificate or log key, keep the old for verification, and sign with the new from the next start", cmdKeysRotate},
		{"keys status", "show the provider certificate, TSA certificate and log key, and when each is due", cmdKeysStatus},
		{"log verify", "audit the evidence log: recompute it from the evidence store, check every hash, checkpoint and time stamp", cmdLogVerify},
		{"operator add", "make a person an operator (işlem yetkilisi) of a company or public-body account", cmdOperatorAdd},
		{"operator grant", "give an operator grants: read, send, delete, archive, sms-notice, email-notice", cmdOperatorGrants(true)},
		{"operator list", "list an account's operators", cmdOperatorList},
		{"operator remove", "end an operator's role on an account", cmdOperatorRemove},
		{"operator revoke", "take grants from an operator", cmdOperatorGrants(false)},
		{"rehber", "look up KEP addresses in the KEP Rehberi (organisations by name or number, persons by TCKN)", cmdRehber},
		{"send", "sign a message with your e-signature and submit it", cmdSend},
		{"serve", "run one provider node (SMTP submission, IMAP, HTTPS, evidence log)", cmdServe},
		{"signer", "local agent through which the web mail signs with a smartcard or HSM (PKCS#11)", cmdSigner},
		{"verify", "verify an evidence bundle offline; exit 0 only when every check holds", cmdVerify},
		{"token create", "make an API token for an account (shown once), acting as its holder or one operator", cmdTokenCreate},
		{"token list", "list an account's API tokens", cmdTokenList},
		{"token revoke", "revoke an API token", cmdTokenRevoke},
		{"version", "print the version and build information", cmdVersion},
	}
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usage is the text of `kep help`.
func usage(w io.Writer) {
	fmt.Fprintf(w, "kep runs and administers a KEP (Kayıtlı Elektronik Posta) provider.\n\nUsage: kep COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-26s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `kep help COMMAND` (or `kep COMMAND -h`) for a command's flags.\n")
}

// groupUsage is the help of a command group such as "account": its
// subcommands. It reports false when no command starts with group.
func groupUsage(w io.Writer, group string) bool {
	var sub []command
	for _, c := range commands() {
		if strings.HasPrefix(c.name, group+" ") {
			sub = append(sub, c)
		}
	}
	if len(sub) == 0 {
		return false
	}
	fmt.Fprintf(w, "Usage: kep %s COMMAND [flags]\n\nCommands:\n", group)
	for _, c := range sub {
		fmt.Fprintf(w, "  %-26s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `kep help %s COMMAND` (or `kep %s COMMAND -h`) for a command's flags.\n", group, group)
	return true
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// KEP_CPUPROFILE=FILE writes a CPU profile of the command (for kep bench
	// investigations: go tool pprof FILE).
	if p := os.Getenv("KEP_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	// A provider node keeps little live data but allocates much per message;
	// collecting at twice the live heap (not once) halves the collector's
	// work for a few tens of MB (kep bench measures RSS).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	pprof.StopCPUProfile()
	// KEP_MEMPROFILE=FILE writes an allocation profile at the end (go tool
	// pprof -sample_index=alloc_space FILE).
	if p := os.Getenv("KEP_MEMPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	stop()
	os.Exit(code)
}

// find returns the command that args name (two-word commands such as
// "account create" first) and the arguments after its name.
func find(args []string) (*command, []string) {
	table := commands()
	if len(args) > 1 {
		for i := range table {
			if table[i].name == args[0]+" "+args[1] {
				return &table[i], args[2:]
			}
		}
	}
	for i := range table {
		if len(args) > 0 && table[i].name == args[0] {
			return &table[i], args[1:]
		}
	}
	return nil, nil
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// run runs kep with args. Help goes to stdout (`kep help`, `kep help CMD`
// and `kep CMD -h` print the same text); errors go to stderr as one line
// "kep CMD: reason".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	if isHelp(args[0]) || args[0] == "help" {
		if len(args) == 1 || isHelp(args[0]) {
			usage(stdout)
			return 0
		}
		// kep help CMD is kep CMD -h.
		if cmd, _ := find(args[1:]); cmd != nil {
			args = append(strings.Fields(cmd.name), "-h")
		} else if groupUsage(stdout, args[1]) {
			return 0
		} else {
			fmt.Fprintf(stderr, "kep help: unknown command %q; run `kep help` for the list\n", strings.Join(args[1:], " "))
			return 2
		}
	}
	cmd, rest := find(args)
	if cmd == nil {
		if len(args) > 1 && isHelp(args[1]) && groupUsage(stdout, args[0]) {
			return 0
		}
		var group []string
		for _, c := range commands() {
			if strings.HasPrefix(c.name, args[0]+" ") {
				group = append(group, strings.TrimPrefix(c.name, args[0]+" "))
			}
		}
		if len(group) > 0 {
			fmt.Fprintf(stderr, "kep %s: want one of: %s; run `kep help %s`\n", args[0], strings.Join(group, ", "), args[0])
		} else {
			fmt.Fprintf(stderr, "kep: unknown command %q; run `kep help` for the list\n", args[0])
		}
		return 2
	}
	if err := cmd.run(ctx, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintf(stderr, "kep %s: %s\n", cmd.name, trimPrefix(cmd.name, ee.msg))
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "kep %s: %s\n", cmd.name, trimPrefix(cmd.name, oneLine(err)))
		return 1
	}
	return 0
}

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// trimPrefix drops from msg the prefixes that would repeat the command's
// name after "kep CMD: " (a package's own "init: " or "kep: ", or the
// command's name again), so that no error reads "kep init: init: …".
func trimPrefix(name, msg string) string {
	words := strings.Fields(name)
	prefixes := []string{"kep " + name + ": ", name + ": ", "kep: ", words[len(words)-1] + ": "}
	if len(words) > 1 {
		prefixes = append(prefixes, words[0]+": ")
	}
	for again := true; again; {
		again = false
		for _, p := range prefixes {
			if strings.HasPrefix(msg, p) {
				msg, again = msg[len(p):], true
			}
		}
	}
	return msg
}

// flags is a FlagSet that accepts flags and positional arguments in any
// order. Its help (-h) goes to stdout, and lists the command's flags;
// a wrong flag is one line with a hint, not the whole help.
type flags struct {
	*flag.FlagSet
	name, usageLine string
	pos             []string
}

func newFlags(name, usageLine string) *flags {
	fs := flag.NewFlagSet("kep "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flags{FlagSet: fs, name: name, usageLine: usageLine}
}

// help writes the command's help: usage line, summary and every flag.
func (f *flags) help(w io.Writer) {
	fmt.Fprintf(w, "Usage: kep %s %s\n", f.name, f.usageLine)
	for _, c := range commands() {
		if c.name == f.name {
			fmt.Fprintf(w, "\n%s\n", c.summary)
		}
	}
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		f.SetOutput(w)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
}

// usageError is a mistake in the command line: exit code 2, one line, and
// a pointer to the command's help.
func (f *flags) usageError(format string, a ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, a...) + fmt.Sprintf(" (see `kep %s -h`)", f.name)}
}

func (f *flags) parse(args []string) error {
	for {
		if err := f.FlagSet.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.help(os.Stdout)
				return err
			}
			return f.usageError("%v", err)
		}
		args = f.FlagSet.Args()
		if len(args) == 0 {
			return nil
		}
		f.pos = append(f.pos, args[0])
		args = args[1:]
	}
}

// args returns the positional arguments, requiring exactly n of them.
func (f *flags) args(n int, names string) ([]string, error) {
	if len(f.pos) != n {
		return nil, f.usageError("want %s", names)
	}
	return f.pos, nil
}

// configFlags adds --config, --dir, --demo and --provider: the ways to
// name the provider a command works on.
func configFlags(f *flags) func() (*config.Config, error) {
	path := f.String("config", os.Getenv("KEP_CONFIG"), "configuration file (default $KEP_CONFIG or ./kep.toml)")
	dir := f.String("dir", "", "provider directory made by 'kep init' (uses DIR/kep.toml)")
	demoDir := f.String("demo", "", "a 'kep demo' world (uses DIR/hs01/kep.toml, or that of --provider)")
	prov := f.String("provider", "", "with --demo: the world's provider, e.g. hs01 (default: the first)")
	return func() (*config.Config, error) {
		var given []string
		f.Visit(func(fl *flag.Flag) {
			if fl.Name == "config" || fl.Name == "dir" || fl.Name == "demo" {
				given = append(given, "--"+fl.Name)
			}
		})
		if len(given) > 1 {
			return nil, f.usageError("give one of %s, not both", strings.Join(given, " and "))
		}
		if *prov != "" && *demoDir == "" {
			return nil, f.usageError("--provider goes with --demo DIR")
		}
		p := *path
		switch {
		case *dir != "":
			p = filepath.Join(*dir, "kep.toml")
		case *demoDir != "":
			info, err := demo.Load(*demoDir)
			if err != nil {
				return nil, err
			}
			pi, err := demoProvider(info, *prov)
			if err != nil {
				return nil, err
			}
			p = pi.Config
		}
		if p == "" {
			p = "kep.toml"
		}
		return config.Load(p)
	}
}

// demoProvider picks a provider of a demo world: id, or the first when id
// is empty.
func demoProvider(info *demo.Info, id string) (*demo.ProviderInfo, error) {
	if len(info.Providers) == 0 {
		return nil, fmt.Errorf("%s/demo.json lists no provider; remove the directory and run `kep demo` again", info.Dir)
	}
	if id == "" {
		return &info.Providers[0], nil
	}
	var ids []string
	for i := range info.Providers {
		if info.Providers[i].ID == id {
			return &info.Providers[i], nil
		}
		ids = append(ids, info.Providers[i].ID)
	}
	return nil, fmt.Errorf("the demo world in %s has no provider %q; it has %s", info.Dir, id, strings.Join(ids, ", "))
}

// openAdmin opens the store and services for an administrative command.
func openAdmin(ctx context.Context, load func() (*config.Config, error)) (*provider.Admin, error) {
	cfg, err := load()
	if err != nil {
		return nil, err
	}
	return provider.OpenAdmin(ctx, cfg)
}

// cliActor is who runs an administrative command, for the audit trail.
func cliActor() account.Actor {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return account.Actor{Name: "cli:" + name, Remote: "cli"}
}

// readSecret takes a secret from a flag value, or from a file when the
// value is @FILE, or from standard input when it is "-".
func readSecret(v string) (string, error) {
	switch {
	case v == "-":
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
		return strings.TrimRight(string(b), "\r\n"), err
	case strings.HasPrefix(v, "@"):
		b, err := os.ReadFile(v[1:])
		return strings.TrimRight(string(b), "\r\n"), err
	}
	return v, nil
}

func fmtMillis(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05")
}
