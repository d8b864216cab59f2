package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/kephs/kep/identity"
)

func cmdIDSample(ctx context.Context, args []string) error {
	f := newFlags("id sample", "tckn|vkn [-n N]")
	n := f.Int("n", 1, "how many to print")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "the kind: tckn or vkn")
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x6b6570))
	for i := 0; i < *n; i++ {
		switch pos[0] {
		case "tckn":
			fmt.Println(identity.GenerateTCKN(r))
		case "vkn":
			fmt.Println(identity.GenerateVKN(r))
		default:
			return fmt.Errorf("unknown kind %q: want tckn or vkn", pos[0])
		}
	}
	return nil
}

func cmdIDCheck(ctx context.Context, args []string) error {
	f := newFlags("id check", "tckn|vkn|mersis|detsis NUMBER")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(2, "the kind (tckn, vkn, mersis or detsis) and the number")
	if err != nil {
		return err
	}
	check := map[string]func(string) error{"tckn": identity.ValidateTCKN, "vkn": identity.ValidateVKN,
		"mersis": identity.ValidateMERSIS, "detsis": identity.ValidateDETSIS}[pos[0]]
	if check == nil {
		return fmt.Errorf("unknown kind %q: want tckn, vkn, mersis or detsis", pos[0])
	}
	if err := check(pos[1]); err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	fmt.Printf("%s %s is valid\n", pos[0], pos[1])
	return nil
}

func cmdVersion(ctx context.Context, args []string) error {
	f := newFlags("version", "")
	if err := f.parse(args); err != nil {
		return err
	}
	fmt.Println(versionText())
	return nil
}

// versionText is the module version (or "devel") with the VCS revision and
// time the binary was built from, and the Go version.
func versionText() string {
	v, rev, at, dirty := "devel", "", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = " (modified)"
				}
			}
		}
	}
	out := "kep " + v
	if rev != "" {
		out += fmt.Sprintf(" %.12s%s %s", rev, dirty, at)
	}
	return out + fmt.Sprintf(" %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
