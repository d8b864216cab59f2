package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kephs/kep/config"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/rehber"
)

func cmdRehber(ctx context.Context, args []string) error {
	return rehberMain(ctx, args, os.Stdout, os.Stderr)
}

// rehberMain is `kep rehber` (docs/relay.md, "KEP Rehberi query"). By
// default it asks the running provider's HTTPS endpoint, as any user would,
// so a TCKN lookup goes through the same login, budgets and audit, and the
// other providers are asked too. With --console it reads this provider's
// store directly (local answers only, for an operator at the console when
// the node is down); a TCKN lookup then still needs --as USER and their
// password, and is budgeted and audited as that user from "cli".
func rehberMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("rehber", "--config F (--name N | --mersis N | --vkn N | --detsis N | --tckn N --as USER --password P) [--local] [--console] [--json]")
	load := configFlags(f)
	name := f.String("name", "", "organisation name, or part of it (case and Turkish letters folded)")
	mersis := f.String("mersis", "", "MERSİS number of a company")
	vkn := f.String("vkn", "", "VKN (tax number) of a company or public body")
	detsis := f.String("detsis", "", "DETSİS number of a public body")
	tckn := f.String("tckn", "", "TCKN of a person (exact); needs --as")
	as := f.String("as", "", "with --tckn: the user asking (a KEP address, or an operator's TCKN)")
	password := f.String("password", "", "with --as: the user's password; @FILE reads it from a file, - from standard input")
	local := f.Bool("local", false, "ask this provider only, not the other providers of the directory")
	console := f.Bool("console", false, "read this provider's store directly instead of its HTTPS endpoint (local answers only)")
	endpoint := f.String("url", "", "Rehberi base URL (default: https://HTTP.LISTEN/rehber/v1/ from the configuration)")
	asJSON := f.Bool("json", false, "print the answer as JSON")
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.pos) > 0 {
		return fmt.Errorf("unexpected argument %q", f.pos[0])
	}
	q := rehber.Query{Name: *name, MERSIS: *mersis, VKN: *vkn, DETSIS: *detsis}
	if *tckn != "" && q != (rehber.Query{}) {
		return errors.New("give either --tckn or one of --name, --mersis, --vkn, --detsis")
	}
	var pw string
	if *tckn != "" {
		if *as == "" {
			return errors.New("a TCKN lookup is open to logged-in users only: give --as USER and --password")
		}
		var err error
		if pw, err = readSecret(*password); err != nil {
			return err
		}
		if pw == "" {
			return errors.New("--as needs --password (or @FILE, or - for standard input)")
		}
	} else if _, err := q.Normalize(); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	var ans *rehber.Answer
	if *console {
		ans, err = rehberConsole(ctx, cfg, q, *tckn, *as, pw)
	} else {
		ans, err = rehberHTTPS(ctx, cfg, *endpoint, q, *tckn, *as, pw, *local)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ans)
	}
	for _, p := range ans.Providers {
		if p.Status != "ok" {
			fmt.Fprintf(stderr, "kep rehber: %s did not answer: %s\n", p.ID, p.Error)
		}
	}
	if len(ans.Entries) == 0 {
		fmt.Fprintln(stdout, "no KEP address found")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tADDRESS\tKIND\tSTATUS\tNAME\tID")
	for _, e := range ans.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Provider, e.Address, e.Kind, e.Status, e.Name, e.ID)
	}
	return tw.Flush()
}

func rehberConsole(ctx context.Context, cfg *config.Config, q rehber.Query, tckn, as, pw string) (*rehber.Answer, error) {
	n, err := provider.OpenAdmin(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	svc := &rehber.Service{DB: n.DB, Provider: cfg.Provider.ID}
	if tckn == "" {
		return svc.Organisations(ctx, q, false)
	}
	p, err := n.Accounts.Authenticate(ctx, as, pw, "cli")
	if err != nil {
		return nil, err
	}
	return svc.Person(ctx, p, "cli", tckn, false)
}

// rehberHTTPS asks the running provider. Its certificate is the one in the
// configuration (keys.cert): the connection is accepted only when the
// server presents that very certificate.
func rehberHTTPS(ctx context.Context, cfg *config.Config, endpoint string, q rehber.Query, tckn, as, pw string, local bool) (*rehber.Answer, error) {
	own, err := pki.LoadCertsPEM(cfg.Path(cfg.Keys.Cert))
	if err != nil {
		return nil, fmt.Errorf("the provider's certificate (keys.cert): %w", err)
	}
	if endpoint == "" {
		host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
		if err != nil {
			return nil, fmt.Errorf("http.listen %q: %w", cfg.HTTP.Listen, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		endpoint = "https://" + net.JoinHostPort(host, port) + "/rehber/v1/"
	}
	base, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	v := url.Values{}
	path := "organisations"
	if tckn != "" {
		path, v = "persons", url.Values{"tckn": {tckn}}
	} else {
		for k, val := range map[string]string{"name": q.Name, "mersis": q.MERSIS, "vkn": q.VKN, "detsis": q.DETSIS} {
			if val != "" {
				v.Set(k, val)
			}
		}
	}
	if local {
		v.Set("scope", "local")
	}
	u := base.JoinPath(path)
	var req *http.Request
	if tckn != "" {
		// The TCKN goes in the body, never in the URL.
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(v.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		u.RawQuery = v.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	}
	if err != nil {
		return nil, err
	}
	if as != "" {
		req.SetBasicAuth(as, pw)
	}
	want := own[0].Raw
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // checked below: the server must present keys.cert itself
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || string(cs.PeerCertificates[0].Raw) != string(want) {
				return errors.New("the server at --url does not present this provider's certificate (keys.cert)")
			}
			return nil
		},
	}}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the provider (is `kep serve` running?): %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var p rehber.Problem
		if json.Unmarshal(body, &p) != nil || p.Code == "" {
			return nil, fmt.Errorf("the provider answered %s", resp.Status)
		}
		msg := fmt.Sprintf("%s: %s", p.Code, p.Detail)
		if p.DetailTR != "" {
			msg += " / " + p.DetailTR
		}
		return nil, errors.New(strings.TrimSpace(msg))
	}
	var ans rehber.Answer
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("unreadable answer: %w", err)
	}
	return &ans, nil
}
