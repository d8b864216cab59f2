package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/pki"
)

// listFlag collects a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func cmdSend(ctx context.Context, args []string) error {
	f := newFlags("send", "--to ADDRESS [--subject S] [--body TEXT] [--attach FILE] (--demo DIR --as NAME | --dir DIR|--server HOST:PORT --user U --password P --cert C --key K | --pkcs11-module M --pkcs11-token T --pkcs11-key K)")
	demoDir := f.String("demo", "", "a kep demo directory: server, credentials and keys come from its demo.json")
	as := f.String("as", "", "with --demo: the sample account or operator to send as (ayse, mehmet, zeynep, …)")
	prov := f.String("provider", "", "with --demo: the world's provider to submit to, e.g. hs01 (default: the first)")
	provDir := f.String("dir", "", "a provider directory made by 'kep init': the server and the CA to trust come from it")
	server := f.String("server", "", "submission service host:port")
	implicit := f.Bool("implicit-tls", false, "TLS from the first byte (port 465) instead of STARTTLS (port 587)")
	caFile := f.String("ca", "", "CA certificate that the server's certificate must chain to")
	insecure := f.Bool("insecure", false, "do not check the server's certificate")
	user := f.String("user", "", "user name: your KEP address, or your TCKN as an operator")
	password := f.String("password", "", "password; @FILE reads it from a file, - from standard input")
	certFile := f.String("cert", "", "your e-signature certificate (PEM, chain after it)")
	keyFile := f.String("key", "", "your private key (PEM)")
	p12File := f.String("p12", "", "your certificate and key as PKCS#12, instead of --cert and --key")
	p12Pass := f.String("p12-password", "", "the PKCS#12 file's password")
	tok := tokenFlags(f)
	eseal := f.Bool("eseal", false, "with --demo and an operator's --as: seal with the company's e-seal (mali mühür) instead of the operator's own e-signature")
	from := f.String("from", "", "From address (default: your account)")
	var to, cc, attach listFlag
	f.Var(&to, "to", "recipient KEP address (repeatable, or comma-separated)")
	f.Var(&cc, "cc", "copy recipient KEP address (repeatable)")
	f.Var(&attach, "attach", "file to attach (repeatable)")
	subject := f.String("subject", "", "subject")
	body := f.String("body", "", "message text")
	bodyFile := f.String("body-file", "", "read the message text from a file")
	tip := f.String("tip", "standart", "X-TR-REM-iletiTip: standart, eYazisma or eTebligat")
	iletiID := f.String("ileti-id", "", "X-TR-REM-iletiID (default: the provider assigns one)")
	save := f.String("save", "", "also write the signed message to this file")
	if err := f.parse(args); err != nil {
		return err
	}
	sub := client.Submission{Addr: *server, Implicit: *implicit, Username: *user}
	var signer *client.Signer
	var roots *x509.CertPool
	if *demoDir != "" || *as != "" {
		if *as == "" {
			return errors.New("--demo needs --as NAME (a key from demo.json: ayse, mehmet, zeynep, …)")
		}
		dir := *demoDir
		if dir == "" {
			dir = demo.DefaultDir()
		}
		info, err := demo.Load(dir)
		if err != nil {
			return err
		}
		if a, _ := info.Account(*as); a != nil && *prov == "" {
			*prov = a.Provider // elif submits at hs02
		}
		pi, err := demoProvider(info, *prov)
		if err != nil {
			return err
		}
		a, o := info.Account(*as)
		var crt, key string
		switch {
		case a != nil && a.Username == "":
			return companyThroughOperators(info, a)
		case a != nil:
			sub.Username, sub.Password, crt, key = a.Username, a.Password, a.Certificate, a.PrivateKey
			if *from == "" {
				*from = a.Address
			}
		case o != nil:
			sub.Username, sub.Password, crt, key = o.Username, o.Password, o.Certificate, o.PrivateKey
			if *from == "" {
				*from = o.Account
			}
		default:
			return fmt.Errorf("no account or operator %q in %s/demo.json", *as, dir)
		}
		if *eseal {
			if crt, key, err = demoESeal(info, o, tok); err != nil {
				return err
			}
		}
		if crt != "" && *certFile == "" && *p12File == "" && tok.module == "" {
			*certFile, *keyFile = crt, key
		}
		if sub.Addr == "" {
			sub.Addr = pi.Endpoints.Submission
			if *implicit {
				sub.Addr = pi.Endpoints.Submissions
			}
		}
		if *caFile == "" {
			*caFile = pi.CA
		}
	}
	if *provDir != "" {
		if *demoDir != "" {
			return f.usageError("give --dir or --demo, not both")
		}
		cfg, err := config.Load(filepath.Join(*provDir, "kep.toml"))
		if err != nil {
			return err
		}
		if sub.Addr == "" {
			sub.Addr = cfg.SMTP.Submission
			if *implicit {
				sub.Addr = cfg.SMTP.Submissions
			}
		}
		if *caFile == "" {
			*caFile = filepath.Join(*provDir, "anchors", "provider-ca.pem")
		}
	}
	if *password != "" {
		pw, err := readSecret(*password)
		if err != nil {
			return err
		}
		sub.Password = pw
	}
	switch {
	case tok.module != "":
		var cert *x509.Certificate
		var chain []*x509.Certificate
		if *certFile != "" && *keyFile == "" {
			certs, err := pki.LoadCertsPEM(*certFile)
			if err != nil {
				return err
			}
			cert, chain = certs[0], certs[1:]
		}
		s, key, err := tok.signer(cert, chain)
		if err != nil {
			return err
		}
		defer key.Close()
		signer = s
	case *p12File != "":
		is, err := pki.LoadPKCS12(*p12File, *p12Pass)
		if err != nil {
			return err
		}
		signer = &client.Signer{Key: is.Key, Cert: is.Cert, Chain: is.Chain}
	case *certFile != "":
		is, err := pki.LoadIssued(*certFile, *keyFile)
		if err != nil {
			return err
		}
		signer = &client.Signer{Key: is.Key, Cert: is.Cert, Chain: is.Chain}
	}
	if sub.Addr == "" || sub.Username == "" {
		return errors.New("say where and as whom to send: --server and --user (or --demo DIR --as NAME)")
	}
	if signer == nil {
		return errors.New("a KEP message must be signed: give --cert and --key, --p12, or --pkcs11-module with --pkcs11-token and --pkcs11-key")
	}
	if *from == "" {
		if !strings.Contains(sub.Username, "@") {
			return errors.New("operators must give --from: the company address they send for")
		}
		*from = sub.Username
	}
	if len(to) == 0 {
		return errors.New("--to is required")
	}
	if *caFile != "" {
		certs, err := pki.LoadCertsPEM(*caFile)
		if err != nil {
			return err
		}
		roots = x509.NewCertPool()
		for _, c := range certs {
			roots.AddCert(c)
		}
	}
	host := sub.Addr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	sub.TLS = &tls.Config{RootCAs: roots, ServerName: host, InsecureSkipVerify: *insecure, MinVersion: tls.VersionTLS12}
	text := *body
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			return err
		}
		text = string(b)
	}
	m := &client.Message{From: *from, To: to, Cc: cc, Subject: *subject, Body: text, IletiTip: *tip, IletiID: *iletiID}
	for _, p := range attach {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m.Attachments = append(m.Attachments, client.Attachment{Name: p, Data: b})
	}
	raw, err := m.Sign(signer)
	if err != nil {
		return err
	}
	if *save != "" {
		if err := os.WriteFile(*save, raw, 0o600); err != nil {
			return err
		}
	}
	c, err := client.Dial(sub)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Send(*from, m.Recipients(), raw)
	if err != nil {
		return err
	}
	if !res.Accepted {
		return &exitError{code: 1, msg: fmt.Sprintf("refused (%d %s): %s", res.Code, res.Enhanced, res.Reply)}
	}
	fmt.Printf("accepted: evidence %s\n", res.EvidenceID)
	return nil
}

// companyThroughOperators is the answer to `kep send --as deniz`: a
// company has no password or e-signature of its own; it sends through its
// operators (işlem yetkilisi), each signing with their own certificate.
func companyThroughOperators(info *demo.Info, a *demo.AccountInfo) error {
	var senders, others []string
	for _, o := range info.Operators {
		if o.Account != a.Address {
			continue
		}
		canSend := false
		for _, g := range o.Grants {
			canSend = canSend || g == "send"
		}
		if canSend {
			senders = append(senders, fmt.Sprintf("--as %s (%s, %s operator)", o.Key, o.Name, o.Role))
		} else {
			others = append(others, fmt.Sprintf("%s (%s, no send grant)", o.Key, o.Name))
		}
	}
	msg := fmt.Sprintf("%s (%s) is a %s: it sends through its operators, each signing with their own e-signature", a.Key, a.Address, a.Kind)
	if len(senders) > 0 {
		msg += "; send with " + strings.Join(senders, " or ")
	}
	if len(others) > 0 {
		msg += "; also an operator: " + strings.Join(others, ", ")
	}
	return &exitError{code: 2, msg: msg}
}

// demoESeal points `kep send --demo DIR --as OPERATOR --eseal` at the
// company's e-seal: a key on the world's SoftHSM token, or PEM files.
func demoESeal(info *demo.Info, o *demo.OperatorInfo, tok *tokenOptions) (crt, key string, err error) {
	if o == nil {
		return "", "", errors.New("--eseal is for an operator who sends for a company (--as zeynep): the company's e-seal seals, the operator logs in")
	}
	co, _ := info.Account(o.Account)
	if co == nil || co.ESeal == nil {
		return "", "", fmt.Errorf("%s has no e-seal in demo.json; a world made before e-seals existed has none: make a new one with kep demo --dir NEWDIR", o.Account)
	}
	if p := co.ESeal.PKCS11; p != nil {
		if os.Getenv("SOFTHSM2_CONF") == "" {
			os.Setenv("SOFTHSM2_CONF", p.Conf)
		}
		tok.module, tok.token, tok.key, tok.pin = p.Module, p.Token, p.Key, p.PIN
		return "", "", nil
	}
	return co.ESeal.Certificate, co.ESeal.PrivateKey, nil
}
