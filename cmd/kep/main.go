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
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/provider"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands []command

func register(name, summary string, run func(ctx context.Context, args []string) error) {
	commands = append(commands, command{name, summary, run})
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usage(w io.Writer) {
	fmt.Fprintf(w, "kep runs and administers a KEP (Kayıtlı Elektronik Posta) provider.\n\nUsage: kep COMMAND [flags]\n\nCommands:\n")
	sort.Slice(commands, func(i, j int) bool { return commands[i].name < commands[j].name })
	for _, c := range commands {
		fmt.Fprintf(w, "  %-22s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun `kep COMMAND -h` for a command's flags.\n")
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
	code := run(ctx, os.Args[1:], os.Stderr)
	pprof.StopCPUProfile()
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	// Two-word commands ("account create") first, then one-word ones.
	var cmd *command
	rest := args[1:]
	if len(args) > 1 {
		for i := range commands {
			if commands[i].name == args[0]+" "+args[1] {
				cmd, rest = &commands[i], args[2:]
			}
		}
	}
	if cmd == nil {
		for i := range commands {
			if commands[i].name == args[0] {
				cmd = &commands[i]
			}
		}
	}
	if cmd == nil {
		var group []string
		for _, c := range commands {
			if strings.HasPrefix(c.name, args[0]+" ") {
				group = append(group, strings.TrimPrefix(c.name, args[0]+" "))
			}
		}
		if len(group) > 0 {
			fmt.Fprintf(stderr, "kep %s: want one of: %s\n", args[0], strings.Join(group, ", "))
		} else {
			fmt.Fprintf(stderr, "kep: unknown command %q; run `kep help`\n", args[0])
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
				fmt.Fprintf(stderr, "kep %s: %s\n", cmd.name, ee.msg)
			}
			return ee.code
		}
		fmt.Fprintf(stderr, "kep %s: %s\n", cmd.name, oneLine(err))
		return 1
	}
	return 0
}

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// flags is a FlagSet that accepts flags and positional arguments in any
// order.
type flags struct {
	*flag.FlagSet
	pos []string
}

func newFlags(name, usageLine string) *flags {
	fs := flag.NewFlagSet("kep "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kep %s %s\n", name, usageLine)
		fs.PrintDefaults()
	}
	return &flags{FlagSet: fs}
}

func (f *flags) parse(args []string) error {
	for {
		if err := f.FlagSet.Parse(args); err != nil {
			return err
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
		return nil, fmt.Errorf("want %s", names)
	}
	return f.pos, nil
}

// configFlags adds --config and --dir.
func configFlags(f *flags) func() (*config.Config, error) {
	path := f.String("config", os.Getenv("KEP_CONFIG"), "configuration file (default $KEP_CONFIG or ./kep.toml)")
	dir := f.String("dir", "", "provider directory made by 'kep init' (uses DIR/kep.toml)")
	return func() (*config.Config, error) {
		p := *path
		if *dir != "" {
			p = *dir + "/kep.toml"
		}
		if p == "" {
			p = "kep.toml"
		}
		return config.Load(p)
	}
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
