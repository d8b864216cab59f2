package imapd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider/providertest"
)

// recorder keeps the server's warnings and errors; a recovered panic fails
// the test.
type recorder struct {
	mu   sync.Mutex
	recs []string
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	r.mu.Lock()
	r.recs = append(r.recs, b.String())
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) panics() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.recs {
		if strings.Contains(s, "panic") {
			out = append(out, s)
		}
	}
	return out
}

// env is an IMAP server over a test provider node, on loopback ports.
type env struct {
	t         testing.TB
	w         *providertest.World
	srv       *Server
	log       *recorder
	tlsAddr   string // port 993 style
	plainAddr string // port 143 style
	clientTLS *tls.Config
	limits    Limits // zero: the defaults
}

// serverTLS is the provider's certificate as a server TLS configuration.
func serverTLS(w *providertest.World) *tls.Config {
	c := w.Node.Cert
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key}}}
}

// clientTLS trusts the provider CA, as a mail client would be configured.
func clientTLS(t testing.TB, w *providertest.World) *tls.Config {
	certs, err := pki.LoadCertsPEM(w.Node.Config.Path("keys/provider-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

func startServer(t testing.TB, w *providertest.World) *env {
	t.Helper()
	e := &env{t: t, w: w, log: &recorder{}, clientTLS: clientTLS(t, w)}
	e.start()
	t.Cleanup(func() {
		if p := e.log.panics(); len(p) > 0 {
			t.Errorf("server panicked: %q", p)
		}
	})
	return e
}

// start (re)starts the server on new ports.
func (e *env) start() {
	e.srv = New(e.w.Node.Mailbox, e.w.Node.Accounts, serverTLS(e.w), Options{
		MaxMessageBytes: e.w.Node.Config.SMTP.MaxMessageBytes, Logger: slog.New(e.log), Hostname: "imap.hs01.kep.tr",
		Limits: e.limits})
	l1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.tlsAddr, e.plainAddr = l1.Addr().String(), l2.Addr().String()
	srv := e.srv
	go srv.ServeTLS(l1)
	go srv.ServeSTARTTLS(l2)
	e.t.Cleanup(func() { srv.Close() })
}

// dial connects over implicit TLS; handler may be nil.
func (e *env) dial(h *imapclient.UnilateralDataHandler) *imapclient.Client {
	e.t.Helper()
	c, err := imapclient.DialTLS(e.tlsAddr, &imapclient.Options{TLSConfig: e.clientTLS, UnilateralDataHandler: h})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// login connects over TLS and logs in.
func (e *env) login(user, pass string) *imapclient.Client {
	e.t.Helper()
	c := e.dial(nil)
	if err := c.Login(user, pass).Wait(); err != nil {
		e.t.Fatalf("login %s: %v", user, err)
	}
	return c
}

func (e *env) loginH(user, pass string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	e.t.Helper()
	c := e.dial(h)
	if err := c.Login(user, pass).Wait(); err != nil {
		e.t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// signedMessage makes an S/MIME signed original from p.
func signedMessage(t testing.TB, p *providertest.Person, subject string, to ...string) []byte {
	t.Helper()
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@client>\r\nX-TR-REM-iletiTip: standart\r\nMIME-Version: 1.0\r\n",
		p.Account.Address, strings.Join(to, ", "), subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
	entity := []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nÖdeme emri: 1.000 TL. Gizli anahtar kelime: zeytinyağı.\r\n")
	msg, err := cms.BuildSigned([]byte(hdr), entity, p.Signer.Key, p.Signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// send submits a message from p to the recipients and delivers it.
func send(t testing.TB, w *providertest.World, p *providertest.Person, subject string, to ...string) *mailbox.KEPMessage {
	t.Helper()
	ctx := context.Background()
	raw := signedMessage(t, p, subject, to...)
	bw, err := w.Node.Blobs.Create()
	if err != nil {
		t.Fatal(err)
	}
	bw.Write(raw)
	d, gen, err := bw.CommitDeferred()
	if err != nil {
		t.Fatal(err)
	}
	msg, _, err := w.Node.Mailbox.Accept(ctx, &mailbox.Submission{Sender: p.Account, Original: d, Size: int64(len(raw)), BlobGen: gen,
		From: p.Account.Address, Recipients: to, IletiID: "ileti-" + evidence.NewID(), IletiTip: "standart",
		AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Node.Mailbox.DeliverQueued(ctx, 100); err != nil {
		t.Fatal(err)
	}
	return msg
}

// codes lists the evidence codes issued about a message.
func codes(t testing.TB, w *providertest.World, msgID int64) []int {
	t.Helper()
	sts, err := evidence.ByMessage(context.Background(), w.Node.DB.Q(), msgID)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, st := range sts {
		out = append(out, int(st.Code))
	}
	return out
}

func count(cs []int, code int) int {
	n := 0
	for _, c := range cs {
		if c == code {
			n++
		}
	}
	return n
}

// imapCode returns the response code of a command's error.
func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

func imapType(err error) imap.StatusResponseType {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Type
	}
	return ""
}

func mustSelect(t testing.TB, c *imapclient.Client, name string, readOnly bool) *imap.SelectData {
	t.Helper()
	d, err := c.Select(name, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		t.Fatalf("select %s: %v", name, err)
	}
	return d
}

func fetch(t testing.TB, c *imapclient.Client, set imap.NumSet, o *imap.FetchOptions) []*imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(set, o).Collect()
	if err != nil {
		t.Fatalf("fetch %v: %v", set, err)
	}
	return msgs
}

func hasPrefixLine(b []byte, prefix string) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(l, []byte(prefix)) {
			return true
		}
	}
	return false
}
