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
	f := newFlags("verify", "BUNDLE [--original message.eml] [--json] (--anchors DIR | --provider-ca F --tsa-ca F --log-key F)")
	anchorsDir := f.String("anchors", "", "directory with provider-ca.pem, tsa-ca.pem and log.pub (as 'kep demo' writes)")
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
		provCA = append(provCA, filepath.Join(*anchorsDir, "provider-ca.pem"))
		tsaCA = append(tsaCA, filepath.Join(*anchorsDir, "tsa-ca.pem"))
		logKeys = append(logKeys, filepath.Join(*anchorsDir, "log.pub"))
	}
	if len(provCA) == 0 || len(tsaCA) == 0 || len(logKeys) == 0 {
		return errors.New("say what to trust: --anchors DIR, or --provider-ca, --tsa-ca and --log-key")
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
	rep := evidence.VerifyBundle(data, a, orig)
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

// looksLikeBundle reports whether data starts as every bundle does: a ZIP
// local file header (30 bytes) naming "mimetype", then the media type.
func looksLikeBundle(data []byte) bool {
	return bytes.HasPrefix(data, []byte("PK\x03\x04")) && len(data) > 30 &&
		bytes.HasPrefix(data[30:], []byte(evidence.MemberMimetype+evidence.BundleMediaType))
}
