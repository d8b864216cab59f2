package relay_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/config"
	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/relay"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

// fed is two provider worlds, hs01 and hs02, sharing one directory signed
// by a test authority, with hs02's reception point listening.
type fed struct {
	t        *testing.T
	w1       *providertest.World // hs01: the sender's provider
	n2       *provider.Node      // hs02: the recipient's provider
	auth     *directory.Authority
	authKey  string
	dir      atomic.Pointer[directory.Directory]
	srv      *relay.Server
	relayAt  string
	out      *relay.Transport
	sender   *providertest.Person
	rcpt     *store.Account // at hs02
	listener net.Listener
	back     net.Listener // hs01's reception point, for evidence returned (back_test.go)
	reg      *prometheus.Registry
}

func tlsCert(n *provider.Node) tls.Certificate { return n.TLSConfig().Certificates[0] }

// newHS02 opens a second provider on the same e-signature CA and clock.
func newHS02(t *testing.T, w1 *providertest.World, d store.Dialect) *provider.Node {
	t.Helper()
	cfg, err := provider.Init(t.TempDir(), provider.InitOptions{Provider: "hs02", Name: "HS02 KEP", ESignCA: w1.CA, Config: func(c *config.Config) {
		c.Store.DSN = storetest.DSN(t, d)
		c.SMTP.Submission, c.SMTP.Submissions = "127.0.0.1:0", "127.0.0.1:0"
		c.IMAP.Listen, c.IMAP.ListenTLS, c.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		c.Metrics.Listen = "127.0.0.1:0"
	}})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := provider.Open(context.Background(), cfg, provider.Options{Now: w1.Clock.Now, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func newFed(t *testing.T, d store.Dialect) *fed {
	t.Helper()
	w1 := providertest.New(t, d)
	f := &fed{t: t, w1: w1, n2: newHS02(t, w1, d)}
	var err error
	if f.auth, err = directory.InitAuthority(filepath.Join(t.TempDir(), "authority"), "Test Authority"); err != nil {
		t.Fatal(err)
	}
	if f.authKey, err = f.auth.VerifierKey(); err != nil {
		t.Fatal(err)
	}
	if f.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	f.relayAt = f.listener.Addr().String()
	if f.back, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.back.Close() })
	added := w1.Clock.Now().Add(-time.Hour)
	for _, n := range []*provider.Node{w1.Node, f.n2} {
		id := n.Config.Provider.ID
		relayAddr := f.back.Addr().String() // hs01 receives returned evidence (back_test.go)
		if n == f.n2 {
			relayAddr = f.relayAt
		}
		if err := f.auth.AddProvider(directory.ProviderEntry{ID: id, Name: strings.ToUpper(id) + " KEP", Domains: []string{n.Config.Provider.Domain},
			Relay: relayAddr, TLSCerts: certs(n), SigningCerts: certs(n), LogKey: n.LogKey}, added); err != nil {
			t.Fatal(err)
		}
	}
	f.sign()
	f.startServer()
	f.out = &relay.Transport{Mailbox: w1.Node.Mailbox, Directory: f.dir.Load, Cert: tlsCert(w1.Node), HeloName: "hs01.kep.tr",
		Now: w1.Clock.Now, Timeout: 10 * time.Second}
	f.sender = w1.Person("Ali", "Veli")
	tckn := identity.GenerateTCKN(rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9)))
	signer, err := w1.CA.IssueSigner(pki.SignerSubject(tckn, "Mehmet", "Öztürk", "TCKN"), "", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	f.rcpt, err = f.n2.Accounts.Create(context.Background(), account.SystemActor, account.CreateRequest{
		Kind: account.Person, Owner: identity.ID{Scheme: identity.TCKN, Value: tckn}, GivenName: "Mehmet", Surname: "Öztürk",
		Password: "password of mehmet", Certificate: signer.Cert, Activate: true})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func certs(n *provider.Node) []*x509.Certificate { return []*x509.Certificate{n.Cert.Cert} }

func (f *fed) sign() {
	f.t.Helper()
	b, err := f.auth.Sign(f.w1.Clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	d, err := directory.Open(b, f.authKey)
	if err != nil {
		f.t.Fatal(err)
	}
	f.dir.Store(d)
}

func (f *fed) startServer() {
	f.t.Helper()
	if f.listener == nil {
		l, err := net.Listen("tcp", f.relayAt)
		if err != nil {
			f.t.Fatal(err)
		}
		f.listener = l
	}
	f.srv = &relay.Server{Mailbox: f.n2.Mailbox, Directory: f.dir.Load, Trust: f.n2.ESign, Cert: tlsCert(f.n2),
		Domain: f.n2.Config.Provider.Domain, Now: f.w1.Clock.Now}
	l := f.listener
	go f.srv.Serve(l)
	f.t.Cleanup(func() { f.srv.Close() })
}

func (f *fed) stopServer() {
	f.srv.Close()
	f.listener = nil
}

// submit accepts at hs01 a signed message from the sender to to, and
// returns it with the job the queue would hand to the relay.
func (f *fed) submit(to ...string) (*mailbox.KEPMessage, *queue.Job) {
	f.t.Helper()
	p := f.sender
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: Relay test\r\nDate: %s\r\nMessage-ID: <%d@client>\r\nX-TR-REM-iletiTip: standart\r\nMIME-Version: 1.0\r\n",
		p.Account.Address, strings.Join(to, ", "), time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
	raw, err := cms.BuildSigned([]byte(hdr), []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nÖdeme emri.\r\n"), p.Signer.Key, p.Signer.Cert, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.accept(raw, to...)
}

func (f *fed) accept(raw []byte, to ...string) (*mailbox.KEPMessage, *queue.Job) {
	f.t.Helper()
	return f.acceptAs(f.sender.Account, nil, raw, to...)
}

// acceptAs accepts raw at hs01 from the account acc, submitted by the
// operator op (nil: by its holder), as the access point would once its
// checks passed.
func (f *fed) acceptAs(acc *store.Account, op *store.Operator, raw []byte, to ...string) (*mailbox.KEPMessage, *queue.Job) {
	f.t.Helper()
	n := f.w1.Node
	bw, err := n.Blobs.Create()
	if err != nil {
		f.t.Fatal(err)
	}
	bw.Write(raw)
	d, gen, err := bw.CommitDeferred()
	if err != nil {
		f.t.Fatal(err)
	}
	msg, _, err := n.Mailbox.Accept(context.Background(), &mailbox.Submission{Sender: acc, Operator: op, Original: d, Size: int64(len(raw)), BlobGen: gen, Data: raw,
		From: acc.Address, Recipients: to, IletiID: "ileti-" + evidence.NewID(), IletiTip: "standart", AuthMethod: evidence.AuthSMTPCMS, AuthTime: f.w1.Clock.Now()})
	if err != nil {
		f.t.Fatal(err)
	}
	ds, err := mailbox.Deliveries(context.Background(), n.DB.Q(), msg.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	job := &queue.Job{MessageID: msg.ID, IletiTip: "standart", AcceptedAt: msg.SubmittedAt}
	for _, dl := range ds {
		job.Recipients = append(job.Recipients, queue.Recipient{DeliveryID: dl.ID, Address: dl.Recipient})
	}
	return msg, job
}

func codesOf(t *testing.T, q store.Querier, msgID int64) string {
	t.Helper()
	sts, err := evidence.ByMessage(context.Background(), q, msgID)
	if err != nil {
		t.Fatal(err)
	}
	var cs []string
	for _, s := range sts {
		cs = append(cs, fmt.Sprint(int(s.Code)))
	}
	return strings.Join(cs, ",")
}

func transportStates(t *testing.T, q store.Querier, msgID int64) string {
	t.Helper()
	ds, err := mailbox.Deliveries(context.Background(), q, msgID)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, d := range ds {
		s = append(s, string(d.Transport))
	}
	return strings.Join(s, ",")
}

// relayed returns the messages hs02 stored from hs01, by id.
func (f *fed) relayed() []int64 {
	f.t.Helper()
	rows, err := f.n2.DB.QueryContext(context.Background(), `SELECT id FROM messages WHERE origin_provider = 'hs01' ORDER BY id`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	return ids
}

func TestRoundTrip(t *testing.T) {
	for _, d := range storetest.Backends(t) {
		t.Run(string(d), func(t *testing.T) {
			f := newFed(t, d)
			ctx := context.Background()
			msg, job := f.submit(f.rcpt.Address)
			if err := f.out.Deliver(ctx, job, job.Recipients); err != nil {
				t.Fatal(err)
			}
			if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Awaiting) {
				t.Fatalf("hs01 transport state %q, want awaiting", got)
			}
			if got := codesOf(t, f.w1.Q(), msg.ID); got != "10" {
				t.Fatalf("hs01 evidence %q, want 10", got)
			}
			ids := f.relayed()
			if len(ids) != 1 {
				t.Fatalf("hs02 stored %d relayed messages", len(ids))
			}
			if got := codesOf(t, f.n2.DB.Q(), ids[0]); got != "20" {
				t.Fatalf("hs02 evidence %q, want 20", got)
			}
			var origin string
			if err := f.n2.DB.Q().QueryRow(ctx, `SELECT origin_evidence FROM messages WHERE id = ?`, ids[0]).Scan(&origin); err != nil || origin != msg.EvidenceID {
				t.Fatalf("origin_evidence %q (%v), want %q", origin, err, msg.EvidenceID)
			}

			// hs02 places it in the recipient's INBOX: 40, and the envelope
			// served is hs01's, byte for byte, its signature intact.
			if _, err := f.n2.Mailbox.DeliverQueued(ctx, 10); err != nil {
				t.Fatal(err)
			}
			if got := codesOf(t, f.n2.DB.Q(), ids[0]); got != "20,40" {
				t.Fatalf("hs02 evidence %q, want 20,40", got)
			}
			inbox, err := mailbox.GetFolder(ctx, f.n2.DB.Q(), f.rcpt.ID, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			ms, err := mailbox.ListMessages(ctx, f.n2.DB.Q(), inbox.ID)
			if err != nil || len(ms) != 1 {
				t.Fatalf("INBOX: %d messages (%v)", len(ms), err)
			}
			got, err := f.n2.Mailbox.Content(ctx, ms[0])
			if err != nil {
				t.Fatal(err)
			}
			if want := f.envelope(msg.ID); !bytes.Equal(got, want) {
				t.Fatalf("the INBOX copy differs from hs01's envelope (%d vs %d bytes)", len(got), len(want))
			}
			if sig, err := cms.Verify(got); err != nil || !sig.Signer.Equal(f.w1.Node.Cert.Cert) {
				t.Fatalf("the INBOX copy's signature: %v", err)
			}
			// A retransmission now still delivers nothing twice.
			if err := f.sendRaw(ptr(tlsCert(f.w1.Node)), f.sender.Account.Address, []string{f.rcpt.Address}, f.envelope(msg.ID)); err != nil {
				t.Fatal(err)
			}
			f.n2.Mailbox.DeliverQueued(ctx, 10)
			if got := codesOf(t, f.n2.DB.Q(), ids[0]); got != "20,40" || len(f.relayed()) != 1 {
				t.Fatalf("after a retransmission: hs02 evidence %q, %d messages", got, len(f.relayed()))
			}
		})
	}
}

// sendRaw speaks to hs02's reception point as a client presenting cert
// (none when nil), and returns the first error of the dialogue.
func (f *fed) sendRaw(cert *tls.Certificate, from string, rcpt []string, env []byte) error {
	f.t.Helper()
	return sendTo(f.relayAt, cert, from, rcpt, env)
}

// sendTo speaks to the reception point at addr as a client presenting cert.
func sendTo(addr string, cert *tls.Certificate, from string, rcpt []string, env []byte) error {
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("test.example"); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range rcpt {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	w.Write(env)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func (f *fed) envelope(msgID int64) []byte {
	f.t.Helper()
	env, _, err := f.w1.Node.Mailbox.RelayEnvelope(context.Background(), msgID)
	if err != nil {
		f.t.Fatal(err)
	}
	return env
}

func TestRefusals(t *testing.T) {
	f := newFed(t, store.SQLite)
	msg, _ := f.submit(f.rcpt.Address)
	env := f.envelope(msg.ID)
	hs01 := tlsCert(f.w1.Node)
	from, to := f.sender.Account.Address, []string{f.rcpt.Address}

	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Stranger CA"}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := ca.IssueProvider("hs01.kep.tr", []string{"hs01.kep.tr"}, pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	strangerTLS := tls.Certificate{Certificate: [][]byte{stranger.Cert.Raw}, PrivateKey: stranger.Key, Leaf: stranger.Cert}

	altered := bytes.Replace(env, []byte("Ödeme emri"), []byte("Ödeme emrİ"), 1) // inside the original, under both signatures
	if bytes.Equal(altered, env) {
		t.Fatal("the test did not alter the envelope")
	}
	// A forged envelope: the same content, signed by a key the directory
	// does not list for hs01 (the sender's own e-signature key).
	signed, err := cms.Verify(env)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := cms.BuildSigned([]byte("From: "+from+"\r\nMIME-Version: 1.0\r\n"), signed.Content, f.sender.Signer.Key, f.sender.Signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name     string
		cert     *tls.Certificate
		from     string
		to       []string
		env      []byte
		code     int
		contains string
	}{
		{"no client certificate", nil, from, to, env, 530, "no client certificate"},
		{"unpinned certificate", &strangerTLS, from, to, env, 530, "not pinned"},
		{"sender at another provider", &hs01, "x@hs02.kep.tr", to, env, 550, "not at a domain of hs01"},
		{"recipient at another provider", &hs01, from, []string{"y@hs03.kep.tr"}, env, 550, "not at hs02.kep.tr"},
		{"unknown recipient", &hs01, from, []string{"nobody@hs02.kep.tr"}, env, 550, "no KEP account"},
		{"altered envelope", &hs01, from, to, altered, 554, "signature does not verify"},
		{"forged envelope", &hs01, from, to, forged, 554, "does not list for hs01's envelopes"},
		{"envelope Message-ID changed", &hs01, from, to, bytes.Replace(env, []byte("Message-ID: <"), []byte("Message-ID: <x"), 1), 554, "does not name its acceptance"},
		{"MAIL FROM not the sender", &hs01, "other@hs01.kep.tr", to, env, 554, "is not the sender"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := f.sendRaw(c.cert, c.from, c.to, c.env)
			se, ok := err.(*smtp.SMTPError)
			if !ok || se.Code != c.code || !strings.Contains(se.Message, c.contains) {
				t.Fatalf("got %v, want %d …%s…", err, c.code, c.contains)
			}
		})
	}
	if n := len(f.relayed()); n != 0 {
		t.Fatalf("hs02 stored %d messages from refused attempts", n)
	}

	// A plain client without a certificate, as another MTA would come:
	// swaks over implicit TLS gets the same refusal.
	host, port, _ := net.SplitHostPort(f.relayAt)
	out, err := exec.Command("swaks", "--server", host, "--port", port, "--tls-on-connect", "--from", from, "--to", f.rcpt.Address,
		"--timeout", "10").CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("530 5.7.1")) || !bytes.Contains(out, []byte("no client certificate")) {
		t.Fatalf("swaks without a certificate: %v\n%s", err, out)
	}

	// The same envelope from hs01 goes through: the checks above refused
	// for their own reasons only.
	if err := f.sendRaw(&hs01, from, to, env); err != nil {
		t.Fatal(err)
	}

	// hs01 removed from the directory: its certificate no longer opens a
	// session.
	if err := f.auth.RemoveProvider("hs01", f.w1.Clock.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.sign()
	err = f.sendRaw(&hs01, from, to, env)
	if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 530 || !strings.Contains(se.Message, "removed") {
		t.Fatalf("removed provider: got %v", err)
	}
}

// A retransmission after a lost reply: hs02 committed the message, hs01
// did not see the 250 and sends it again: 250 again, one message, one 20.
func TestRetransmission(t *testing.T) {
	f := newFed(t, store.SQLite)
	msg, job := f.submit(f.rcpt.Address)
	hs01 := tlsCert(f.w1.Node)
	if err := f.sendRaw(&hs01, f.sender.Account.Address, []string{f.rcpt.Address}, f.envelope(msg.ID)); err != nil {
		t.Fatal(err)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Pending) {
		t.Fatalf("hs01 state %q before its retry", got)
	}
	if err := f.out.Deliver(context.Background(), job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Awaiting) {
		t.Fatalf("hs01 state %q after the retry", got)
	}
	ids := f.relayed()
	if len(ids) != 1 {
		t.Fatalf("hs02 stored %d messages", len(ids))
	}
	if got := codesOf(t, f.n2.DB.Q(), ids[0]); got != "20" {
		t.Fatalf("hs02 evidence %q, want one 20", got)
	}
}

// The receiving provider is down: the recipient stays pending (the queue
// backs off), and the message goes through once it is back.
func TestReceiverDown(t *testing.T) {
	f := newFed(t, store.SQLite)
	msg, job := f.submit(f.rcpt.Address)
	f.stopServer()
	if err := f.out.Deliver(context.Background(), job, job.Recipients); err == nil {
		t.Fatal("delivered to a provider that is down")
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Pending) {
		t.Fatalf("hs01 state %q while hs02 is down", got)
	}
	if got := codesOf(t, f.w1.Q(), msg.ID); got != "10" {
		t.Fatalf("hs01 evidence %q while hs02 is down", got)
	}
	f.startServer()
	if err := f.out.Deliver(context.Background(), job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Awaiting) {
		t.Fatalf("hs01 state %q after hs02 returned", got)
	}
	if n := len(f.relayed()); n != 1 {
		t.Fatalf("hs02 stored %d messages", n)
	}
}

// A recipient hs02 refuses at RCPT, and a domain no provider serves, get
// relay failure 31 at hs01; the other recipient goes through.
func TestRelayFailure(t *testing.T) {
	f := newFed(t, store.SQLite)
	msg, job := f.submit(f.rcpt.Address, "nobody@hs02.kep.tr", "x@hs09.kep.tr")
	if err := f.out.Deliver(context.Background(), job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	got := transportStates(t, f.w1.Q(), msg.ID)
	if got != "awaiting,failed,failed" {
		t.Fatalf("hs01 states %q", got)
	}
	if c := codesOf(t, f.w1.Q(), msg.ID); c != "10,31,31" {
		t.Fatalf("hs01 evidence %q, want 10,31,31", c)
	}
}

func ptr[T any](v T) *T { return &v }

// Still down past the queue's deadline: relay failure 31 (relay-timeout).
func TestReceiverDownPastDeadline(t *testing.T) {
	f := newFed(t, store.SQLite)
	msg, job := f.submit(f.rcpt.Address)
	f.stopServer()
	job.Expired = true
	if err := f.out.Deliver(context.Background(), job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Failed) {
		t.Fatalf("hs01 state %q", got)
	}
	if got := codesOf(t, f.w1.Q(), msg.ID); got != "10,31" {
		t.Fatalf("hs01 evidence %q, want 10,31", got)
	}
}

// Through hs01's delivery queue: the relay as the router's Other
// transport, with a local recipient beside the remote one; and through
// hs02's, local delivery of what it received.
func TestThroughQueues(t *testing.T) {
	f := newFed(t, store.SQLite)
	ctx := context.Background()
	n1 := f.w1.Node
	n1.Queue.Router = queue.DomainRouter{Domain: n1.Config.Provider.Domain, Local: n1.Mailbox.Local(), Other: f.out}
	local := f.w1.Person("Ayşe", "Yılmaz")
	msg, _ := f.submit(f.rcpt.Address, local.Account.Address)
	if _, err := n1.Mailbox.DeliverQueued(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != "awaiting,delivered" {
		t.Fatalf("hs01 states %q", got)
	}
	if got := codesOf(t, f.w1.Q(), msg.ID); got != "10,40" {
		t.Fatalf("hs01 evidence %q, want 10,40 (the local recipient's)", got)
	}
	var items int
	if err := n1.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM queue_items`).Scan(&items); err != nil || items != 0 {
		t.Fatalf("hs01 queue items left: %d (%v)", items, err)
	}
	if _, err := f.n2.Mailbox.DeliverQueued(ctx, 10); err != nil {
		t.Fatal(err)
	}
	ids := f.relayed()
	if len(ids) != 1 {
		t.Fatalf("hs02 stored %d", len(ids))
	}
	if got := codesOf(t, f.n2.DB.Q(), ids[0]); got != "20,40" {
		t.Fatalf("hs02 evidence %q, want 20,40", got)
	}
}

// A recipient whose account at hs02 is suspended: hs02 takes the message
// (250), issues 21 with the reason, and places nothing.
func TestRelayRejection(t *testing.T) {
	f := newFed(t, store.SQLite)
	ctx := context.Background()
	if _, err := f.n2.Accounts.Suspend(ctx, account.SystemActor, f.rcpt.Address, "test"); err != nil {
		t.Fatal(err)
	}
	msg, job := f.submit(f.rcpt.Address)
	if err := f.out.Deliver(ctx, job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Awaiting) {
		t.Fatalf("hs01 state %q (the 21 travels back)", got)
	}
	f.n2.Mailbox.DeliverQueued(ctx, 10)
	ids := f.relayed()
	if len(ids) != 1 {
		t.Fatalf("hs02 stored %d", len(ids))
	}
	if got := codesOf(t, f.n2.DB.Q(), ids[0]); got != "21" {
		t.Fatalf("hs02 evidence %q, want 21", got)
	}
	sts, _ := evidence.ByMessage(ctx, f.n2.DB.Q(), ids[0])
	e, err := evidence.Parse(sts[0].Document)
	if err != nil || len(e.Reasons) != 1 || e.Reasons[0].Code != evidence.ReasonMailboxClosed().Code {
		t.Fatalf("21's reason: %+v (%v)", e, err)
	}
}

// The original's signer is judged as of hs01's acceptance (evidence 10),
// not as of the relay: a signer certificate that expired between the two
// does not turn an accepted message into a refusal
// (docs/certificates.md).
func TestSignerAsOfAcceptance(t *testing.T) {
	f := newFed(t, store.SQLite)
	msg, job := f.submit(f.rcpt.Address)
	expiry := f.sender.Signer.Cert.NotAfter
	f.w1.Clock.Advance(expiry.Sub(f.w1.Clock.Now()) + 24*time.Hour)
	if err := f.out.Deliver(context.Background(), job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Awaiting) {
		t.Fatalf("hs01 state %q", got)
	}
	if ids := f.relayed(); len(ids) != 1 || codesOf(t, f.n2.DB.Q(), ids[0]) != "20" {
		t.Fatalf("hs02 did not accept a message whose signer expired after hs01's acceptance")
	}
}

// An original signed by a certificate hs02 does not trust is refused at
// DATA, and hs01 issues 31 with hs02's reply.
func TestUntrustedSigner(t *testing.T) {
	f := newFed(t, store.SQLite)
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "Unknown E-Signature CA"}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.IssueSigner(pki.SignerSubject(f.sender.TCKN, "Ali", "Veli", "TCKN"), "", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	hdr := "From: " + f.sender.Account.Address + "\r\nTo: " + f.rcpt.Address + "\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
	raw, err := cms.BuildSigned([]byte(hdr), []byte("Content-Type: text/plain\r\n\r\nx\r\n"), is.Key, is.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, job := f.accept(raw, f.rcpt.Address)
	if err := f.out.Deliver(context.Background(), job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	if got := codesOf(t, f.w1.Q(), msg.ID); got != "10,31" {
		t.Fatalf("hs01 evidence %q, want 10,31", got)
	}
	sts, _ := evidence.ByMessage(context.Background(), f.w1.Q(), msg.ID)
	e, err := evidence.Parse(sts[1].Document)
	if err != nil || len(e.Reasons) != 1 || e.Reasons[0].Code != relay.ReasonRelayRefused || !strings.Contains(e.Reasons[0].Text, "original's signer") {
		t.Fatalf("31's reason: %+v (%v)", e.Reasons, err)
	}
	if n := len(f.relayed()); n != 0 {
		t.Fatalf("hs02 stored %d", n)
	}
}
