package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/pki"
)

// cmdVerify exits 0 when the bundle is valid, 1 when it is not, and 2 when
// it could not be checked at all (unreadable file, no trust anchors).
func cmdVerify(ctx context.Context, args []string) error {
	err := verifyBundle(args)
	var ee *exitError
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, flag.ErrHelp) {
		return &exitError{code: 2, msg: oneLine(err)}
	}
	return err
}

func verifyBundle(args []string) error {
	f := newFlags("verify", "BUNDLE [--original message.eml] [--json] (--anchors DIR | --provider-ca F --tsa-ca F --log-key F | --directory NOTE --authority-key KEY|@F --tsa-ca F)")
	anchorsDir := f.String("anchors", "", "directory with provider-ca.pem, tsa-ca.pem and log.pub (as 'kep demo' writes)")
	dirNote := f.String("directory", "", "the authority's signed provider directory (directory.note): trust the evidence certificates and log keys it lists for the issuing provider")
	authKey := f.String("authority-key", "", "with --directory: the authority's verifier key, or @FILE (e.g. @AUTH/authority.pub)")
	var provCA, tsaCA, logKeys listFlag
	f.Var(&provCA, "provider-ca", "PEM file of a provider CA trusted to sign evidence (repeatable)")
	f.Var(&tsaCA, "tsa-ca", "PEM file of a CA trusted to certify time-stamp authorities (repeatable)")
	f.Var(&logKeys, "log-key", "file holding a trusted log verifier key (repeatable)")
	original := f.String("original", "", "the original message: check that the evidence names its digest")
	asJSON := f.Bool("json", false, "print the checks as JSON")
	if err := f.parse(args); err != nil {
		return err
	}
	pos, err := f.args(1, "one BUNDLE file")
	if err != nil {
		return err
	}
	if *anchorsDir != "" {
		if *dirNote == "" {
			provCA = append(provCA, filepath.Join(*anchorsDir, "provider-ca.pem"))
			logKeys = append(logKeys, filepath.Join(*anchorsDir, "log.pub"))
		}
		tsaCA = append(tsaCA, filepath.Join(*anchorsDir, "tsa-ca.pem"))
	}
	var dir *directory.Directory
	if *dirNote != "" {
		if len(provCA) > 0 || len(logKeys) > 0 {
			return errors.New("--directory is the anchor for the provider's certificates and log keys: drop --provider-ca and --log-key")
		}
		if *authKey == "" || len(tsaCA) == 0 {
			return errors.New("--directory needs the authority's key (--authority-key KEY or @FILE) and the time-stamp authority's CA (--tsa-ca F, or --anchors DIR for its tsa-ca.pem)")
		}
		if dir, err = openDirectory(*dirNote, *authKey); err != nil {
			return err
		}
	} else if len(provCA) == 0 || len(tsaCA) == 0 || len(logKeys) == 0 {
		return errors.New("say what to trust: --anchors DIR, or --provider-ca, --tsa-ca and --log-key, or --directory with --authority-key and --tsa-ca")
	}
	pool := func(files []string) (*x509.CertPool, error) {
		p := x509.NewCertPool()
		for _, fn := range files {
			certs, err := pki.LoadCertsPEM(fn)
			if err != nil {
				return nil, err
			}
			for _, c := range certs {
				p.AddCert(c)
			}
		}
		return p, nil
	}
	var a evidence.Anchors
	if a.ProviderCAs, err = pool(provCA); err != nil {
		return err
	}
	if a.TSACAs, err = pool(tsaCA); err != nil {
		return err
	}
	for _, fn := range logKeys {
		b, err := os.ReadFile(fn)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				a.LogKeys = append(a.LogKeys, line)
			}
		}
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	// A file that does not start as a bundle does — a ZIP archive whose
	// first member, stored, is "mimetype" with the bundle's media type
	// (evidence.BundleMediaType, in the ASiC manner) — is not a bundle:
	// nothing could be checked (exit 2). A bundle damaged after its start
	// (truncated, a byte changed) is checked and found not valid (exit 1).
	if !looksLikeBundle(data) {
		return fmt.Errorf("%s is not an evidence bundle (a ZIP archive made by `kep evidence bundle`)", pos[0])
	}
	var orig []byte
	if *original != "" {
		if orig, err = os.ReadFile(*original); err != nil {
			return err
		}
	}
	var rep *evidence.Report
	if dir != nil {
		rep = verifyWithDirectory(dir, data, a.TSACAs, orig)
	} else {
		rep = evidence.VerifyBundle(data, a, orig)
	}
	if *asJSON {
		out := map[string]any{"bundle": pos[0], "valid": rep.Valid, "checks": rep.Checks}
		if rep.Evidence != nil {
			out["evidence"] = map[string]any{"id": rep.Evidence.ID, "code": int(rep.Evidence.Code), "event": rep.Evidence.Code.Label(), "event_time": rep.Evidence.EventTime}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else {
		for _, c := range rep.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Printf("%s %-20s %s\n", mark, c.Name, c.Detail)
		}
	}
	if !rep.Valid {
		var failed []string
		for _, c := range rep.Checks {
			if !c.OK {
				failed = append(failed, c.Name)
			}
		}
		return &exitError{code: 1, msg: "NOT VALID: " + strings.Join(failed, ", ") + " failed"}
	}
	if !*asJSON {
		fmt.Println("VALID")
	}
	return nil
}

// openDirectory reads a signed provider directory and checks the
// authority's signature on it (key: a verifier key, or @FILE).
func openDirectory(file, key string) (*directory.Directory, error) {
	k, err := readSecret(key)
	if err != nil {
		return nil, err
	}
	signed, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	d, err := directory.Open(signed, strings.TrimSpace(k))
	if err != nil {
		return nil, fmt.Errorf("%s cannot serve as the trust anchor: %w", file, err)
	}
	return d, nil
}

// verifyWithDirectory verifies a bundle from whichever provider of d lists
// its signer (docs/relay.md, "Evidence that crosses"): that provider's
// evidence certificates and log keys, in their windows, are the anchors.
func verifyWithDirectory(d *directory.Directory, data []byte, tsaRoots *x509.CertPool, orig []byte) *evidence.Report {
	p := evidence.IssuerIn(d, data)
	if p == nil {
		return &evidence.Report{Checks: []evidence.Check{{Name: evidence.CheckDirectory,
			Detail: fmt.Sprintf("no provider of the directory (version %d) lists the bundle's signer as an evidence certificate at the evidence's time", d.Version)}}}
	}
	return evidence.VerifyWithDirectory(p, data, tsaRoots, orig)
}

// looksLikeBundle reports whether data starts as every bundle does: a ZIP
// local file header (30 bytes) naming "mimetype", then the media type.
func looksLikeBundle(data []byte) bool {
	return bytes.HasPrefix(data, []byte("PK\x03\x04")) && len(data) > 30 &&
		bytes.HasPrefix(data[30:], []byte(evidence.MemberMimetype+evidence.BundleMediaType))
}
