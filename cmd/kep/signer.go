package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kephs/kep/client"
	"github.com/kephs/kep/demo"
	"github.com/kephs/kep/pkcs11"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/signer"
)

// cmdSigner is `kep signer`: the local agent through which the web mail
// signs with a smartcard or HSM (package signer, docs/signing.md).
func cmdSigner(ctx context.Context, args []string) error {
	f := newFlags("signer", "--origin https://WEBMAIL --pkcs11-module M --pkcs11-token T --pkcs11-key K [--port 18443] | --demo DIR")
	origin := f.String("origin", "", "the provider's web mail origin, exactly as the browser sends it (https://host[:port]); the only one answered")
	port := f.Int("port", signer.DefaultPort, "port on 127.0.0.1 to listen on")
	tok := tokenFlags(f)
	certFile := f.String("cert", "", "the certificate of the token's key (PEM, chain after it), when the token holds none")
	confirmCmd := f.String("confirm-command", "", "ask with this command instead of the terminal: it gets the message in KEP_SIGN_* variables and on its standard input, and confirms with exit status 0")
	yes := f.Bool("yes-i-am-a-test", false, "sign without asking (tests only: anything the web page sends is signed)")
	demoDir := f.String("demo", "", "a kep demo directory: sign with the sample company's e-seal on its SoftHSM token, for hs01's web mail")
	if err := f.parse(args); err != nil {
		return err
	}
	if *demoDir != "" {
		info, err := demo.Load(*demoDir)
		if err != nil {
			return err
		}
		co, _ := info.Account("deniz")
		if co == nil || co.ESeal == nil || co.ESeal.PKCS11 == nil {
			return fmt.Errorf("the demo world in %s has no e-seal on a SoftHSM token (install softhsm2 and opensc, then make a new world)", *demoDir)
		}
		p := co.ESeal.PKCS11
		if os.Getenv("SOFTHSM2_CONF") == "" {
			os.Setenv("SOFTHSM2_CONF", p.Conf)
		}
		tok.module, tok.token, tok.key, tok.pin = p.Module, p.Token, p.Key, p.PIN
		if *origin == "" && len(info.Providers) > 0 {
			*origin = "https://" + info.Providers[0].Endpoints.HTTPS
		}
	}
	if *origin == "" || tok.module == "" {
		return f.usageError("--origin and --pkcs11-module (with --pkcs11-token and --pkcs11-key) are required")
	}
	var confirm signer.Confirm
	switch {
	case *yes && *confirmCmd != "":
		return f.usageError("give --confirm-command or --yes-i-am-a-test, not both")
	case *yes:
		confirm = signer.Yes
		fmt.Fprintln(os.Stderr, "kep signer: WARNING: --yes-i-am-a-test signs whatever the web page sends, without asking")
	case *confirmCmd != "":
		argv := strings.Fields(*confirmCmd)
		confirm = signer.CommandConfirm(argv)
	default:
		confirm = signer.TerminalConfirm(os.Stdin, os.Stdout)
	}
	var certs []*x509.Certificate
	if *certFile != "" {
		var err error
		if certs, err = pki.LoadCertsPEM(*certFile); err != nil {
			return err
		}
	}
	s, key, err := tokSigner(tok, certs)
	if err != nil {
		return err
	}
	defer key.Close()
	h, err := signer.New(signer.Options{Origin: *origin, Signer: s, Confirm: confirm,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("listen on 127.0.0.1:%d: %w (another kep signer running? choose --port)", *port, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("kep signer: http://%s for %s, signing as %q; each signature is asked here\n", ln.Addr(), *origin, s.Cert.Subject.CommonName)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func tokSigner(tok *tokenOptions, certs []*x509.Certificate) (*client.Signer, *pkcs11.Key, error) {
	if len(certs) == 0 {
		return tok.signer(nil, nil)
	}
	return tok.signer(certs[0], certs[1:])
}
