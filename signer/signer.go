// Package signer is in charge of `kep signer`, the small local agent that
// lets the provider's web mail sign with a key on a smartcard or HSM (a
// PKCS#11 token) the browser cannot reach: it listens on loopback, answers
// only the provider's web origin, shows the user what is about to be signed
// and signs only what the user confirms, one message at a time.
//
// The contract with the web page (docs/signing.md; keep it exactly):
//
//	GET  /v1/status → {"ok":true,"signer":"<subject CN>","cert":"<base64 DER>"}
//	POST /v1/sign   body: a client.Message as encoding/json writes it
//	                → {"signed":"<base64 of the signed message>"}
//	refusal         → 403 {"error":"…"}
//
// Only requests whose Origin header is exactly the configured origin are
// answered, with Access-Control-Allow-Origin set to it; CORS preflights
// (OPTIONS) are answered for that origin; any other Origin, or none, is
// refused with 403. The Host header must name a loopback address, so that a
// page on another site cannot reach the agent through DNS rebinding.
package signer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"unicode"

	"github.com/kephs/kep/client"
)

// DefaultPort is where `kep signer` listens on 127.0.0.1 unless told.
const DefaultPort = 18443

// maxBody bounds a sign request: KEP messages are at most 100 MB, and
// base64 in JSON adds a third.
const maxBody = 140 << 20

// Prompt is what the user is asked to confirm.
type Prompt struct {
	From    string
	To, Cc  []string
	Subject string
	// SHA256 is the hexadecimal SHA-256 of the content to be signed (the
	// canonical MIME entity, the signature's messageDigest).
	SHA256 string
	// Attachments are the attachments' names.
	Attachments []string
	// IletiTip is the message's KEP type (standart, eYazisma, eTebligat):
	// an eTebligat is a legal service, so the user must see it.
	IletiTip string
}

// Confirm asks the user; it returns true only on an explicit yes.
type Confirm func(ctx context.Context, p Prompt) (bool, error)

// Options configure a Server.
type Options struct {
	// Origin is the provider's web origin, e.g. https://kep.example.tr or
	// https://127.0.0.1:8443: the only one answered.
	Origin string
	// Signer signs; its key is on the token.
	Signer *client.Signer
	// Confirm asks the user for each signature (required).
	Confirm Confirm
	Logger  *slog.Logger
}

// Server is the agent's HTTP handler.
type Server struct {
	o  Options
	mu sync.Mutex // one confirmation and signature at a time
}

// New returns the agent's handler.
func New(o Options) (*Server, error) {
	if o.Origin == "" || strings.HasSuffix(o.Origin, "/") || !strings.Contains(o.Origin, "://") {
		return nil, fmt.Errorf("signer: the origin %q must be scheme://host[:port], with no path (as a browser sends it in Origin)", o.Origin)
	}
	if o.Signer == nil || o.Confirm == nil {
		return nil, errors.New("signer: a signer and a confirmation are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o}, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func refuse(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// loopbackHost reports whether a Host header names this machine by a
// loopback address or "localhost".
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	w.Header().Set("Vary", "Origin")
	switch {
	case !loopbackHost(r.Host):
		refuse(w, http.StatusForbidden, "the signer answers requests to 127.0.0.1 only, not to %q", r.Host)
		return
	case origin == "":
		refuse(w, http.StatusForbidden, "no Origin: the signer answers only the web mail at %s, from a browser", s.o.Origin)
		return
	case origin != s.o.Origin:
		s.o.Logger.Warn("request from another origin refused", "origin", origin)
		refuse(w, http.StatusForbidden, "the signer answers only the web mail at %s, not %s", s.o.Origin, origin)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	if r.Method == http.MethodOptions { // CORS preflight (Fetch standard §3.2.2)
		h.Set("Access-Control-Allow-Methods", "GET, POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		// Private Network Access: a public https page reaching loopback.
		if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
			h.Set("Access-Control-Allow-Private-Network", "true")
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	switch {
	case r.URL.Path == "/v1/status" && r.Method == http.MethodGet:
		s.status(w)
	case r.URL.Path == "/v1/sign" && r.Method == http.MethodPost:
		s.sign(w, r)
	case r.URL.Path == "/v1/status" || r.URL.Path == "/v1/sign":
		refuse(w, http.StatusMethodNotAllowed, "%s takes %s", r.URL.Path, map[string]string{"/v1/status": "GET", "/v1/sign": "POST"}[r.URL.Path])
	default:
		refuse(w, http.StatusNotFound, "no such endpoint %s: the signer has GET /v1/status and POST /v1/sign", r.URL.Path)
	}
}

func (s *Server) status(w http.ResponseWriter) {
	c := s.o.Signer.Cert
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "signer": c.Subject.CommonName, "cert": base64.StdEncoding.EncodeToString(c.Raw)})
}

func (s *Server) sign(w http.ResponseWriter, r *http.Request) {
	var m client.Message
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		refuse(w, http.StatusBadRequest, "the body is not a message as JSON: %v", err)
		return
	}
	if err := plainFields(&m); err != nil {
		refuse(w, http.StatusBadRequest, "%v", err)
		return
	}
	p, err := m.Prepare()
	if err != nil {
		refuse(w, http.StatusBadRequest, "%v", err)
		return
	}
	sum, err := p.Digest()
	if err != nil {
		refuse(w, http.StatusBadRequest, "the message cannot be signed: %v", err)
		return
	}
	tip := m.IletiTip
	if tip == "" {
		tip = "standart" // client.Message.Header's default
	}
	prompt := Prompt{From: m.From, To: m.To, Cc: m.Cc, Subject: m.Subject, SHA256: hex.EncodeToString(sum[:]), IletiTip: tip}
	for _, a := range m.Attachments {
		prompt.Attachments = append(prompt.Attachments, a.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ok, err := s.o.Confirm(r.Context(), prompt)
	if err != nil {
		refuse(w, http.StatusForbidden, "the signature was not confirmed: %v", err)
		return
	}
	if !ok {
		refuse(w, http.StatusForbidden, "the user refused to sign this message")
		return
	}
	signed, err := p.Sign(s.o.Signer)
	if err != nil {
		s.o.Logger.Error("sign", "err", err)
		refuse(w, http.StatusInternalServerError, "the token did not sign: %v", err)
		return
	}
	s.o.Logger.Info("signed", "sha256", prompt.SHA256)
	writeJSON(w, http.StatusOK, map[string]string{"signed": base64.StdEncoding.EncodeToString(signed)})
}

// clean makes s safe to print on a terminal: control characters (escape
// sequences a message could carry to rewrite the prompt) become '?'.
// plainFields refuses a message whose header fields hold a CR, LF or NUL. client.Message writes them into the header as they are, so a
// CR LF in a subject, an address, the iletiTip, the Message-ID or an
// attachment's content type would add header fields the user is never
// shown (RFC 5322 §2.2: a field body holds no CR or LF), and the user's
// qualified signature would cover them, for instance an
// "X-TR-REM-iletiTip: eTebligat" hidden in a subject.
func plainFields(m *client.Message) error {
	fields := []struct{ name, value string }{{"From", m.From}, {"Subject", m.Subject}, {"IletiTip", m.IletiTip},
		{"IletiID", m.IletiID}, {"MessageID", m.MessageID}}
	for _, a := range m.To {
		fields = append(fields, struct{ name, value string }{"To", a})
	}
	for _, a := range m.Cc {
		fields = append(fields, struct{ name, value string }{"Cc", a})
	}
	for _, a := range m.Attachments {
		fields = append(fields, struct{ name, value string }{"an attachment's name", a.Name}, struct{ name, value string }{"an attachment's content type", a.ContentType})
	}
	for _, f := range fields {
		if strings.ContainsAny(f.value, "\r\n\x00") {
			return fmt.Errorf("%s holds a line break (or NUL), which would add header fields you are not shown: the signer refuses to sign it", f.name)
		}
	}
	return nil
}

func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u202e' || r == '\u202d' {
			return '?'
		}
		return r
	}, s)
}

// Text is the prompt as the terminal shows it.
func (p Prompt) Text() string {
	var b strings.Builder
	list := func(l []string) string {
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = clean(s)
		}
		return strings.Join(out, ", ")
	}
	fmt.Fprintf(&b, "\nSign this KEP message?\n  From:    %s\n  To:      %s\n", clean(p.From), list(p.To))
	if len(p.Cc) > 0 {
		fmt.Fprintf(&b, "  Cc:      %s\n", list(p.Cc))
	}
	fmt.Fprintf(&b, "  Subject: %s\n", clean(p.Subject))
	if p.IletiTip != "" {
		fmt.Fprintf(&b, "  Type:    %s\n", clean(p.IletiTip))
	}
	if len(p.Attachments) > 0 {
		fmt.Fprintf(&b, "  Files:   %s\n", list(p.Attachments))
	}
	fmt.Fprintf(&b, "  SHA-256 of the signed content: %s\n", p.SHA256)
	return b.String()
}

// TerminalConfirm asks on out and reads the answer, a line, from in: only
// "y" or "yes" (any case) confirms; anything else, or the end of input,
// refuses.
func TerminalConfirm(in io.Reader, out io.Writer) Confirm {
	lines := make(chan string)
	go func() {
		buf := make([]byte, 1)
		var line bytes.Buffer
		for {
			n, err := in.Read(buf)
			if n == 1 {
				if buf[0] == '\n' {
					lines <- line.String()
					line.Reset()
					continue
				}
				line.WriteByte(buf[0])
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	return func(ctx context.Context, p Prompt) (bool, error) {
		fmt.Fprint(out, p.Text()+"Sign? [y/N] ")
		select {
		case l, ok := <-lines:
			if !ok {
				return false, errors.New("no answer: the terminal's input ended")
			}
			a := strings.ToLower(strings.TrimSpace(l))
			yes := a == "y" || a == "yes" || a == "e" || a == "evet"
			if yes {
				fmt.Fprintln(out, "signing")
			} else {
				fmt.Fprintln(out, "refused")
			}
			return yes, nil
		case <-ctx.Done():
			fmt.Fprintln(out, "\nthe web page gave up waiting; refused")
			return false, ctx.Err()
		}
	}
}

// CommandConfirm runs argv for each signature with the prompt in its
// environment (KEP_SIGN_FROM, KEP_SIGN_TO, KEP_SIGN_CC, KEP_SIGN_SUBJECT,
// KEP_SIGN_SHA256) and its text on standard input; exit status 0 confirms.
func CommandConfirm(argv []string) Confirm {
	return func(ctx context.Context, p Prompt) (bool, error) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "KEP_SIGN_FROM="+p.From, "KEP_SIGN_TO="+strings.Join(p.To, ","), "KEP_SIGN_CC="+strings.Join(p.Cc, ","),
			"KEP_SIGN_SUBJECT="+p.Subject, "KEP_SIGN_SHA256="+p.SHA256, "KEP_SIGN_ILETITIP="+p.IletiTip)
		cmd.Stdin = strings.NewReader(p.Text())
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return true, nil
		case errors.As(err, &ee):
			return false, nil
		}
		return false, fmt.Errorf("the confirmation command: %w", err)
	}
}

// Yes confirms everything. It exists for tests only (`kep signer
// --yes-i-am-a-test`).
func Yes(context.Context, Prompt) (bool, error) { return true, nil }
