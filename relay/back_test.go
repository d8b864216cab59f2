package relay_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/relay"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
	"github.com/kephs/kep/tlog"
)

// startBack opens hs01's reception point, where hs02 returns evidence.
func (f *fed) startBack() *relay.Server {
	f.t.Helper()
	n := f.w1.Node
	f.reg = prometheus.NewRegistry()
	s := &relay.Server{Mailbox: n.Mailbox, Directory: f.dir.Load, Trust: n.ESign, Cert: tlsCert(n),
		Domain: n.Config.Provider.Domain, Now: f.w1.Clock.Now, TSARoots: f.tsaRoots(), Metrics: relay.NewMetrics(f.reg)}
	f.reg.MustRegister(relay.AwaitingCollector(n.DB, f.w1.Clock.Now))
	go s.Serve(f.back)
	f.t.Cleanup(func() { s.Close() })
	return s
}

// tsaRoots are the TSA CAs of both providers (each runs a development TSA
// of its own): the TSAs hs01 trusts.
func (f *fed) tsaRoots() *x509.CertPool {
	f.t.Helper()
	pool := f.w1.Node.TSARoots.Clone()
	cfg := f.n2.Config
	for _, p := range cfg.Paths(cfg.TSA.TrustAnchors) {
		certs, err := pki.LoadCertsPEM(p)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool
}

func (f *fed) returner() *relay.Returner {
	return &relay.Returner{Mailbox: f.n2.Mailbox, Directory: f.dir.Load, Cert: tlsCert(f.n2), HeloName: f.n2.Config.Provider.Domain,
		Now: f.w1.Clock.Now, Timeout: 10 * time.Second, Owner: "test"}
}

func (f *fed) returnsQueued() int {
	f.t.Helper()
	var n int
	if err := f.n2.DB.Q().QueryRow(context.Background(), `SELECT COUNT(*) FROM queue_items WHERE kind = 'evidence_return'`).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// delil returns the sender's Delil items at hs01: code → rendered item.
func (f *fed) delil() map[int][]byte {
	f.t.Helper()
	ctx := context.Background()
	fo, err := mailbox.GetFolder(ctx, f.w1.Q(), f.sender.Account.ID, mailbox.Delil)
	if err != nil {
		f.t.Fatal(err)
	}
	ms, err := mailbox.ListMessages(ctx, f.w1.Q(), fo.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[int][]byte{}
	for _, m := range ms {
		b, err := f.w1.Node.Mailbox.Content(ctx, m)
		if err != nil {
			f.t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(b))
		if err != nil {
			f.t.Fatal(err)
		}
		var code int
		fmt.Sscan(msg.Header.Get("X-KEP-Delil-Kodu"), &code)
		out[code] = b
	}
	return out
}

func codeList(m map[int][]byte) string {
	var cs []int
	for c := range m {
		cs = append(cs, c)
	}
	sort.Ints(cs)
	return strings.Trim(fmt.Sprint(cs), "[]")
}

// itemParts returns the evidence XML and the bundle of a Delil item.
func itemParts(t *testing.T, item []byte) (xml, bundle []byte) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(item))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		dec, _ := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, string(body)))
		switch ct {
		case "application/xml":
			xml = dec
		case evidence.BundleMediaType:
			bundle = dec
		}
	}
	return xml, bundle
}

// TestEvidenceReturned is the round trip of docs/relay.md, "Evidence that
// crosses": send at hs01, deliver and read at hs02, and hs01's sender ends
// with 10, 20, 40 and 60 in Delil, each bundle verifying against the
// directory and each evidence with xmlsec1; the transport state follows;
// the receipts are leaves of hs01's log that the audit recomputes.
func TestEvidenceReturned(t *testing.T) {
	for _, d := range storetest.Backends(t) {
		t.Run(string(d), func(t *testing.T) { testEvidenceReturned(t, d) })
	}
}

func testEvidenceReturned(t *testing.T, dialect store.Dialect) {
	f := newFed(t, dialect)
	ctx := context.Background()
	f.startBack()
	msg, job := f.submit(f.rcpt.Address)
	if err := f.out.Deliver(ctx, job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	if _, err := f.n2.Mailbox.DeliverQueued(ctx, 10); err != nil {
		t.Fatal(err)
	}
	inbox, _ := mailbox.GetFolder(ctx, f.n2.DB.Q(), f.rcpt.ID, "INBOX")
	ms, _ := mailbox.ListMessages(ctx, f.n2.DB.Q(), inbox.ID)
	if len(ms) != 1 {
		t.Fatalf("hs02 INBOX: %d messages", len(ms))
	}
	acct, err := f.n2.Accounts.Get(ctx, f.rcpt.Address)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.n2.Mailbox.MarkRead(ctx, &account.Principal{Account: acct}, ms[0]); err != nil {
		t.Fatal(err)
	}
	ids := f.relayed()
	if got := codesOf(t, f.n2.DB.Q(), ids[0]); got != "20,40,60" {
		t.Fatalf("hs02 evidence %q, want 20,40,60", got)
	}
	// Nothing goes back before a checkpoint covers it.
	if n := f.returnsQueued(); n != 0 {
		t.Fatalf("%d evidence returns queued before a checkpoint", n)
	}
	if _, err := f.n2.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.returnsQueued(); n != 3 {
		t.Fatalf("%d evidence returns queued, want 3", n)
	}
	// A second courier pass enqueues nothing twice.
	if _, err := f.n2.Checkpoint(ctx); err != nil || f.returnsQueued() != 3 {
		t.Fatalf("after a second checkpoint: %d queued (%v)", f.returnsQueued(), err)
	}
	sent, err := f.returner().RunDue(ctx, 10)
	if err != nil || sent != 3 {
		t.Fatalf("returned %d (%v), want 3", sent, err)
	}
	if n := f.returnsQueued(); n != 0 {
		t.Fatalf("%d evidence returns left", n)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != "delivered" {
		t.Fatalf("hs01 transport state %q, want delivered", got)
	}
	if _, err := f.w1.Node.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	items := f.delil()
	if got := codeList(items); got != "10 20 40 60" {
		t.Fatalf("hs01 Delil holds %q, want 10 20 40 60", got)
	}
	d := f.dir.Load()
	xmlsec := testtool.Require(t, testtool.XMLSec1OpenSSL)
	dir := t.TempDir()
	for code, item := range items {
		xml, bundle := itemParts(t, item)
		if xml == nil || bundle == nil {
			t.Fatalf("Delil item %d lacks its XML or bundle", code)
		}
		// The directory alone is the anchor: it names the issuer (hs01 for
		// its 10, hs02 for the rest) and lists its keys.
		issuer := evidence.IssuerIn(d, bundle)
		if want := map[bool]string{true: "hs01", false: "hs02"}[code == 10]; issuer == nil || issuer.ID != want {
			t.Fatalf("bundle of %d: issuer %v, want %s", code, issuer, want)
		}
		rep := evidence.VerifyWithDirectory(issuer, bundle, f.tsaRoots(), nil)
		if err := rep.Failed(); err != nil {
			t.Fatalf("bundle of %d: %v", code, err)
		}
		if int(rep.Evidence.Code) != code {
			t.Fatalf("bundle of item %d holds evidence %d", code, rep.Evidence.Code)
		}
		// Under another provider's entry it does not verify.
		other := d.Provider(map[bool]string{true: "hs02", false: "hs01"}[code == 10])
		if evidence.VerifyWithDirectory(other, bundle, f.tsaRoots(), nil).Valid {
			t.Fatalf("bundle of %d verifies as %s's", code, other.ID)
		}
		// xmlsec1, trusting the issuing provider's CA.
		cfg := f.w1.Node.Config
		if code != 10 {
			cfg = f.n2.Config
		}
		ca := cfg.Path("keys/provider-ca.crt")
		doc := filepath.Join(dir, fmt.Sprintf("delil-%d.xml", code))
		os.WriteFile(doc, xml, 0o644)
		if out, err := exec.Command(xmlsec, "--verify", "--trusted-pem", ca, doc).CombinedOutput(); err != nil {
			t.Fatalf("xmlsec1 on evidence %d: %v\n%s", code, err, out)
		}
	}
	// The receipts are leaves of hs01's log: each entry recomputed from
	// foreign_evidence is the one the log holds.
	size := f.w1.Node.Log.Size()
	entries, err := mailbox.ForeignAuditEntries(ctx, f.w1.Q(), 0, size)
	if err != nil || len(entries) != 3 {
		t.Fatalf("receipt leaves: %d (%v)", len(entries), err)
	}
	for _, e := range entries {
		if !bytes.HasPrefix(e.Document, []byte(tlog.ReceiptFormat+"\nhs02\n"+e.ID+"\n")) {
			t.Fatalf("receipt text %q", e.Document)
		}
		entry := tlog.EntryFor(e.Document)
		root, err := tlog.TreeHash(ctx, f.w1.Q(), size)
		if err != nil {
			t.Fatal(err)
		}
		proof, err := tlog.ProveInclusion(ctx, f.w1.Q(), e.Seq, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckInclusion(proof, size, root, e.Seq, entry[:]); err != nil {
			t.Fatalf("receipt leaf %d is not the recomputed one: %v", e.Seq, err)
		}
	}
	// The audit recomputes every leaf, receipts from foreign_evidence; a
	// bundle changed behind the log's back is named.
	if probs := f.audit(); len(probs) != 0 {
		t.Fatalf("audit of hs01: %v", probs)
	}
	var fseq int64
	f.w1.Q().QueryRow(ctx, `SELECT MIN(seq) FROM foreign_evidence`).Scan(&fseq)
	var orig []byte
	f.w1.Q().QueryRow(ctx, `SELECT bundle FROM foreign_evidence WHERE seq = ?`, fseq).Scan(&orig)
	changed := append(append([]byte(nil), orig...), 0)
	f.w1.Q().Exec(ctx, `UPDATE foreign_evidence SET bundle = ? WHERE seq = ?`, changed, fseq)
	if probs := f.audit(); len(probs) == 0 || probs[0].Kind != tlog.ProblemEvidenceChanged || probs[0].Seq != fseq {
		t.Fatalf("audit after a receipt's bundle changed: %v", probs)
	}
	f.w1.Q().Exec(ctx, `UPDATE foreign_evidence SET bundle = ? WHERE seq = ?`, orig, fseq)

	// The public entry bundles hold every leaf, receipts included.
	es, err := mailbox.LogEntries(ctx, f.w1.Q(), 0, size)
	if err != nil || int64(len(es)) != size {
		t.Fatalf("log entries: %d of %d (%v)", len(es), size, err)
	}

	// A retransmission of the same evidence stores nothing new.
	before := f.w1.Node.Log.Size()
	var seq int64
	f.n2.DB.Q().QueryRow(ctx, `SELECT seq FROM evidence WHERE message_id = ? AND code = 40`, ids[0]).Scan(&seq)
	ret, err := f.n2.Mailbox.ReturnLetter(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.sendBack(ret); err != nil {
		t.Fatalf("retransmitted evidence: %v", err)
	}
	if f.w1.Node.Log.Size() != before || len(f.delil()) != 4 {
		t.Fatal("a retransmitted evidence was stored twice")
	}

	// Forgeries are refused with 5xx and reach no Delil.
	for _, tc := range []struct {
		name   string
		mutate func(r *mailbox.EvidenceReturn)
		want   string
	}{
		{"altered bundle", func(r *mailbox.EvidenceReturn) {
			b, _ := evidence.ParseBundle(r.Bundle)
			b.Evidence = bytes.Replace(b.Evidence, []byte(f.rcpt.Address), []byte("x"+f.rcpt.Address), 1)
			r.Bundle, _ = b.Marshal()
		}, "554"},
		{"hs01's own evidence passed off as hs02's", func(r *mailbox.EvidenceReturn) {
			var seq10 int64
			f.w1.Q().QueryRow(ctx, `SELECT seq FROM evidence WHERE message_id = ? AND code = 10`, msg.ID).Scan(&seq10)
			r.Bundle, _ = f.w1.Node.Bundle(ctx, seq10)
		}, "554"},
		{"wrong evidence id", func(r *mailbox.EvidenceReturn) { r.EvidenceID = evidence.NewID() }, "554"},
		{"another message", func(r *mailbox.EvidenceReturn) { r.OriginalEvidence = evidence.NewID() }, "554"},
	} {
		r := *ret
		tc.mutate(&r)
		err := f.sendBack(&r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	if got := codeList(f.delil()); got != "10 20 40 60" {
		t.Fatalf("after forgeries, Delil holds %q", got)
	}
	for label, want := range map[string]float64{"stored": 3, "duplicate": 1, "refused": 4} {
		if got := f.metric("kep_relay_evidence_received_total", label); got != want {
			t.Fatalf("kep_relay_evidence_received_total{%s} = %v, want %v", label, got, want)
		}
	}
	if got := f.metric("kep_relay_awaiting_oldest_seconds", ""); got != 0 {
		t.Fatalf("kep_relay_awaiting_oldest_seconds = %v with nothing awaiting", got)
	}
}

// sendBack sends a returned evidence from hs02 to hs01 by hand.
func (f *fed) sendBack(r *mailbox.EvidenceReturn) error {
	f.t.Helper()
	n := f.n2
	cert := tlsCert(n)
	return sendTo(f.back.Addr().String(), &cert, "", []string{r.To}, relay.ReturnMessage(n.Config.Provider.Domain, r))
}

// TestEvidenceReturnRetries: with hs01's reception point down, the
// returns stay queued (in the store, so they survive a restart) with a
// back-off, and go once it is back.
func TestEvidenceReturnRetries(t *testing.T) {
	f := newFed(t, "sqlite")
	ctx := context.Background()
	_, job := f.submit(f.rcpt.Address)
	if err := f.out.Deliver(ctx, job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	if _, err := f.n2.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	f.reg = prometheus.NewRegistry()
	f.reg.MustRegister(relay.AwaitingCollector(f.w1.Node.DB, f.w1.Clock.Now))
	f.w1.Clock.Advance(time.Hour)
	if got := f.metric("kep_relay_awaiting_oldest_seconds", ""); got < 3600 {
		t.Fatalf("kep_relay_awaiting_oldest_seconds = %v, an hour after the 250", got)
	}
	r := f.returner()
	r.Timeout = time.Second
	if sent, _ := r.RunDue(ctx, 10); sent != 0 {
		t.Fatalf("sent %d with hs01 down", sent)
	}
	var attempts int
	var next int64
	if err := f.n2.DB.Q().QueryRow(ctx, `SELECT attempts, next_at FROM queue_items WHERE kind = 'evidence_return'`).Scan(&attempts, &next); err != nil || attempts != 1 {
		t.Fatalf("item after a failed attempt: attempts %d (%v)", attempts, err)
	}
	// Not due again before its back-off.
	if sent, _ := r.RunDue(ctx, 10); sent != 0 {
		t.Fatal("retried before the back-off")
	}
	// A node that claims the item and dies holds it for its lease only.
	f.w1.Clock.Advance(time.Minute)
	if its, err := f.n2.Mailbox.ClaimReturns(ctx, "dead-node", f.w1.Clock.Now(), 2*time.Minute, 10); err != nil || len(its) != 1 {
		t.Fatalf("claim: %d (%v)", len(its), err)
	}
	f.startBack()
	if sent, _ := f.returner().RunDue(ctx, 10); sent != 0 {
		t.Fatal("sent an item another node holds")
	}
	// A new Returner (as after a restart) finds the item in the store once
	// the lease ends.
	f.w1.Clock.Advance(2*time.Minute + time.Second)
	if sent, err := f.returner().RunDue(ctx, 10); sent != 1 || err != nil {
		t.Fatalf("after hs01 came back: sent %d (%v)", sent, err)
	}
	if n := f.returnsQueued(); n != 0 {
		t.Fatalf("%d returns left", n)
	}
}

// audit runs tlog.Audit over hs01's log, evidence and receipt leaves
// together (as `kep log verify` does), and returns its problems.
func (f *fed) audit() []tlog.Problem {
	f.t.Helper()
	n := f.w1.Node
	evidenceRows := func(ctx context.Context, start, end int64) ([]tlog.AuditEntry, error) {
		sts, err := evidence.Range(ctx, n.DB.Q(), start, end)
		if err != nil {
			return nil, err
		}
		var out []tlog.AuditEntry
		for _, st := range sts {
			out = append(out, tlog.AuditEntry{Seq: st.Seq, ID: st.ID, Document: st.Document, Time: st.EventTime})
		}
		return out, nil
	}
	receipts := func(ctx context.Context, start, end int64) ([]tlog.AuditEntry, error) {
		return mailbox.ForeignAuditEntries(ctx, n.DB.Q(), start, end)
	}
	var probs []tlog.Problem
	_, err := tlog.Audit(context.Background(), n.DB, tlog.MergeAuditReaders(evidenceRows, receipts),
		tlog.AuditOptions{VerifierKey: n.LogKey, TSARoots: n.TSARoots, Now: f.w1.Clock.Now, Report: func(p tlog.Problem) { probs = append(probs, p) }})
	if err != nil {
		f.t.Fatal(err)
	}
	return probs
}

// TestTimeouts: hs02 down past the warn time gives the sender a notice in
// Delil (not evidence); past the deadline, 31. A 20 that hs02 issues
// afterwards is still stored and shown beside the 31, which stands.
func TestTimeouts(t *testing.T) {
	f := newFed(t, "sqlite")
	ctx := context.Background()
	n1 := f.w1.Node
	n1.Queue.Router = queue.DomainRouter{Domain: n1.Config.Provider.Domain, Local: n1.Mailbox.Local(), Other: f.out}
	f.out.Timeout = time.Second
	f.stopServer()
	msg, _ := f.submit(f.rcpt.Address)
	if _, err := n1.Mailbox.DeliverQueued(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Pending) {
		t.Fatalf("hs01 state %q while hs02 is down", got)
	}
	notices := func() int {
		fo, _ := mailbox.GetFolder(ctx, f.w1.Q(), f.sender.Account.ID, mailbox.Delil)
		ms, _ := mailbox.ListMessages(ctx, f.w1.Q(), fo.ID)
		n := 0
		for _, m := range ms {
			if m.Kind == mailbox.KindNotice {
				b, err := n1.Mailbox.Content(ctx, m)
				if err != nil || !bytes.Contains(b, []byte("X-KEP-Bildirim: relay-late")) || !bytes.Contains(b, []byte(msg.EvidenceID)) {
					t.Fatalf("the notice: %v\n%s", err, b)
				}
				n++
			}
		}
		return n
	}
	if n := notices(); n != 0 {
		t.Fatalf("%d notices before the warn time", n)
	}
	f.w1.Clock.Advance(12*time.Hour + time.Minute)
	if _, err := n1.Queue.RunDue(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if n := notices(); n != 1 {
		t.Fatalf("%d notices after the warn time, want 1", n)
	}
	if got := codesOf(t, f.w1.Q(), msg.ID); got != "10" {
		t.Fatalf("hs01 evidence %q after the warning: a notice is not evidence", got)
	}
	// Once only.
	f.w1.Clock.Advance(2 * time.Hour)
	n1.Queue.RunDue(ctx, 10)
	if n := notices(); n != 1 {
		t.Fatalf("%d notices after a later attempt, want 1", n)
	}
	f.w1.Clock.Advance(10 * time.Hour)
	if _, err := n1.Queue.RunDue(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if got := codesOf(t, f.w1.Q(), msg.ID); got != "10,31" {
		t.Fatalf("hs01 evidence %q past the deadline, want 10,31", got)
	}
	// hs02 took the message after all (its 250 was lost, say): its 20
	// comes back, is stored and shown; the 31 stands.
	f.startServer()
	f.startBack()
	if err := f.sendRaw(ptr(tlsCert(n1)), f.sender.Account.Address, []string{f.rcpt.Address}, f.envelope(msg.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.n2.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if sent, err := f.returner().RunDue(ctx, 10); sent != 1 || err != nil {
		t.Fatalf("returned %d (%v)", sent, err)
	}
	if _, err := n1.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if got := codeList(f.delil()); got != "0 10 20 31" { // 0: the notice
		t.Fatalf("hs01 Delil %q, want the notice, 10, 20 and 31", got)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Failed) {
		t.Fatalf("hs01 state %q after a late 20, want failed (the 31 stands)", got)
	}
	// The sender's evidence list, newest first, shows both.
	p := &account.Principal{Account: f.w1.Refresh(f.sender.Account)}
	list, err := n1.Mailbox.ListEvidence(ctx, p, mailbox.EvidenceQuery{Account: p.Account})
	if err != nil {
		t.Fatal(err)
	}
	var cs []string
	for _, e := range list {
		cs = append(cs, fmt.Sprint(int(e.Code)))
	}
	if got := strings.Join(cs, ","); got != "20,31,10" {
		t.Fatalf("the sender's evidence list %q, want 20,31,10", got)
	}
}

// metric reads a metric of hs01's reception point: name, or name{label}.
func (f *fed) metric(name, label string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	f.t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// TestEvidenceReturnProviderRemoved: nothing is sent to a provider whose
// licence ended; the item ends (the evidence stays in hs02's log).
func TestEvidenceReturnProviderRemoved(t *testing.T) {
	f := newFed(t, "sqlite")
	ctx := context.Background()
	f.startBack()
	_, job := f.submit(f.rcpt.Address)
	if err := f.out.Deliver(ctx, job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	if _, err := f.n2.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.auth.RemoveProvider("hs01", f.w1.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	f.w1.Clock.Advance(time.Minute)
	f.sign()
	if sent, _ := f.returner().RunDue(ctx, 10); sent != 0 {
		t.Fatalf("sent %d to a removed provider", sent)
	}
	if n := f.returnsQueued(); n != 0 {
		t.Fatalf("%d returns left for a removed provider", n)
	}
	var n int
	f.w1.Q().QueryRow(ctx, `SELECT COUNT(*) FROM foreign_evidence`).Scan(&n)
	if n != 0 {
		t.Fatalf("hs01 stored %d", n)
	}
}

// TestRejectionReturned: hs02's 21 (a suspended account) comes back, and
// the recipient fails at hs01 with hs02's reason.
func TestRejectionReturned(t *testing.T) {
	f := newFed(t, "sqlite")
	ctx := context.Background()
	f.startBack()
	if _, err := f.n2.Accounts.Suspend(ctx, account.SystemActor, f.rcpt.Address, "test"); err != nil {
		t.Fatal(err)
	}
	msg, job := f.submit(f.rcpt.Address)
	if err := f.out.Deliver(ctx, job, job.Recipients); err != nil {
		t.Fatal(err)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Awaiting) {
		t.Fatalf("hs01 state %q after the 250", got)
	}
	if _, err := f.n2.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if sent, err := f.returner().RunDue(ctx, 10); sent != 1 || err != nil {
		t.Fatalf("returned %d (%v)", sent, err)
	}
	if got := transportStates(t, f.w1.Q(), msg.ID); got != string(queue.Failed) {
		t.Fatalf("hs01 state %q after hs02's 21, want failed", got)
	}
	ds, _ := mailbox.Deliveries(ctx, f.w1.Q(), msg.ID)
	if len(ds) != 1 || ds[0].State != mailbox.Failed || ds[0].Reason == "" {
		t.Fatalf("hs01 delivery %+v", ds)
	}
	if _, err := f.w1.Node.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if got := codeList(f.delil()); got != "10 21" {
		t.Fatalf("hs01 Delil %q, want 10 21", got)
	}
}
