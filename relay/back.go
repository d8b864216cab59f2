package relay

// Evidence that crosses (docs/relay.md): the receiving provider sends each
// evidence it issues for a message from another provider back to that
// provider's reception point as a REM message in the manner of EN 319
// 532-4 (Returner); the sending provider's reception point verifies the
// bundle against the directory and hands it to the mailbox (receiveEvidence).

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/queue"
)

// Header fields of a returned evidence (docs/relay.md, "Channel").
const (
	HeaderEvidence         = "X-KEP-Evidence"
	HeaderOriginalEvidence = "X-KEP-Original-Evidence"
)

// Returner carries the evidence_return items the Delil courier enqueues
// (mailbox/relayreturn.go) to the providers the messages came from: one
// SMTP transaction per evidence, MAIL FROM:<>, RCPT TO the original
// sender, over the same mutual TLS as the relay. A 250 ends the item; a
// 4xx or a network fault retries after the back-off; a 5xx is logged at
// error level and retried at the back-off's ceiling, since evidence must
// not be dropped silently.
type Returner struct {
	Mailbox   *mailbox.Service
	Directory func() *directory.Directory
	Cert      tls.Certificate // this provider's TLS certificate
	HeloName  string          // this provider's domain
	Now       func() time.Time
	Timeout   time.Duration // per connection; 0: one minute
	Backoff   queue.Backoff // zero: queue.DefaultPolicy's
	Lease     time.Duration // zero: two minutes
	Owner     string        // this node, in queue_items.lease_owner
	Log       *slog.Logger
	Metrics   *Metrics // nil counts nothing

	pool peerPool // sessions kept open per provider (pool.go)
}

func (r *Returner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Returner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// Run sends due evidence returns every interval until ctx ends.
func (r *Returner) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	const batch = 256
	for {
		sent, err := r.RunDue(ctx, batch)
		if err != nil && ctx.Err() == nil {
			r.log().Error("relay: evidence returns", "err", err)
		}
		if sent == batch && ctx.Err() == nil {
			continue // a full batch went: more may be due now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunDue sends up to limit due evidence returns and says how many were
// accepted by their providers.
func (r *Returner) RunDue(ctx context.Context, limit int) (int, error) {
	owner := r.Owner
	if owner == "" {
		h, _ := os.Hostname()
		owner = fmt.Sprintf("%s/%d", h, os.Getpid())
	}
	lease := r.Lease
	if lease == 0 {
		lease = 2 * time.Minute
	}
	bo := r.Backoff
	if bo.First == 0 {
		bo = queue.DefaultPolicy().Backoff
	}
	items, err := r.Mailbox.ClaimReturns(ctx, owner, r.now(), lease, limit)
	if err != nil {
		return 0, err
	}
	// Several at a time, over sessions kept open per provider (pool.go):
	// the receiving side stores each in its log's group commit, so returns
	// sent one after the other would each wait for a commit of their own.
	var (
		mu   sync.Mutex
		sent int
		done []int64 // items the providers took, ended together
		errs []error
		wg   sync.WaitGroup
	)
	work := make(chan mailbox.ReturnItem)
	for range min(returnWorkers, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				ok, err := r.one(ctx, it, bo)
				mu.Lock()
				if ok {
					sent++
					done = append(done, it.ID)
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
	if err := r.Mailbox.ReturnsDone(ctx, done); err != nil {
		errs = append(errs, err)
	}
	return sent, errors.Join(errs...)
}

// returnWorkers is how many evidence returns are in flight at once: the
// receiving side stores each in a group commit of its log, so the more in
// flight, the fewer commits.
const returnWorkers = 32

// one sends the evidence return it and records the outcome: ok when the
// provider took it; an error only when recording failed.
func (r *Returner) one(ctx context.Context, it mailbox.ReturnItem, bo queue.Backoff) (bool, error) {
	err := r.send(ctx, it.Seq)
	if err == nil {
		r.Metrics.returnInc("sent")
		return true, nil // ended with the batch (RunDue)
	}
	if errors.Is(err, errProviderGone) {
		r.log().Error("relay: evidence not returned: the provider was removed from the directory", "evidence_seq", it.Seq)
		r.Metrics.returnInc("refused")
		return false, r.Mailbox.ReturnDone(ctx, it.ID)
	}
	delay := bo.Delay(it.Attempts + 1)
	if permanent(err) {
		delay = bo.Ceiling
		r.Metrics.returnInc("refused")
		r.log().Error("relay: evidence return refused", "evidence_seq", it.Seq, "err", err)
	} else {
		r.Metrics.returnInc("retry")
		r.log().Warn("relay: evidence return failed, will retry", "evidence_seq", it.Seq, "err", err)
	}
	if r.now().After(it.Deadline) {
		r.log().Error("relay: evidence return late", "evidence_seq", it.Seq, "deadline", it.Deadline, "err", err)
	}
	return false, r.Mailbox.ReturnRetry(ctx, it.ID, r.now().Add(delay), err.Error())
}

var errProviderGone = errors.New("the provider was removed from the directory")

// send carries the evidence at leaf seq to the provider its message came
// from, over a session kept open to it (pool.go).
func (r *Returner) send(ctx context.Context, seq int64) error {
	d := r.Directory()
	if d == nil {
		return errors.New("no provider directory loaded")
	}
	ret, err := r.Mailbox.ReturnLetter(ctx, seq)
	if err != nil {
		return err
	}
	p := d.Provider(ret.Provider)
	if p == nil {
		return fmt.Errorf("provider %s is not in the directory", ret.Provider)
	}
	if !p.Active(r.now()) {
		// Nothing is exchanged with a provider whose licence ended
		// (docs/relay.md, "removed"): the evidence stays here, in our log.
		return errProviderGone
	}
	msg := ReturnMessage(r.HeloName, ret)
	pc, err := r.pool.get(ctx, r.Cert, p, r.now, r.Timeout, r.HeloName)
	if err != nil {
		return err
	}
	err = pc.c.SendMail("", []string{ret.To}, bytes.NewReader(msg))
	if answered(err) {
		r.pool.put(pc)
	} else {
		pc.c.Close()
	}
	return err
}

// Close ends the sessions kept open to other providers.
func (r *Returner) Close() error {
	r.pool.closeAll()
	return nil
}

// ReturnMessage is the REM message that carries one evidence back
// (docs/relay.md, "Channel"): a multipart/mixed with a short text and the
// bundle, routed by its X-KEP-Evidence and X-KEP-Original-Evidence fields.
func ReturnMessage(domain string, ret *mailbox.EvidenceReturn) []byte {
	var b bytes.Buffer
	boundary := "kep-return-" + strings.ReplaceAll(ret.EvidenceID, "-", "")
	fmt.Fprintf(&b, "From: <delil@%s>\r\nTo: <%s>\r\n", domain, ret.To)
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <return-%s@%s>\r\n", ret.EvidenceID, domain)
	fmt.Fprintf(&b, "Subject: KEP delil %d / evidence %d\r\n", ret.Code, ret.Code)
	fmt.Fprintf(&b, "%s: %s\r\n%s: %s\r\n", HeaderEvidence, ret.EvidenceID, HeaderOriginalEvidence, ret.OriginalEvidence)
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Evidence %d (%s) from %s about the message of acceptance evidence %s.\r\n", ret.Code, ret.EvidenceID, domain, ret.OriginalEvidence)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/zip; name=\"delil-%s.zip\"\r\n", boundary, ret.EvidenceID)
	fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"delil-%s.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", ret.EvidenceID)
	enc := base64.StdEncoding.EncodeToString(ret.Bundle)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

// returnParts reads a returned evidence message: its two header fields and
// the bundle.
func returnParts(data []byte) (evID, origID string, bundle []byte, err error) {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return "", "", nil, fmt.Errorf("the message: %w", err)
	}
	evID, origID = strings.TrimSpace(m.Header.Get(HeaderEvidence)), strings.TrimSpace(m.Header.Get(HeaderOriginalEvidence))
	if evID == "" || origID == "" {
		return "", "", nil, fmt.Errorf("a returned evidence needs the %s and %s header fields", HeaderEvidence, HeaderOriginalEvidence)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return "", "", nil, fmt.Errorf("a returned evidence is multipart/mixed, not %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", "", nil, fmt.Errorf("the message's parts: %w", err)
		}
		pt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if pt != "application/zip" && pt != evidence.BundleMediaType {
			continue
		}
		if bundle != nil {
			return "", "", nil, errors.New("a returned evidence carries one bundle, this one two")
		}
		body, err := io.ReadAll(part)
		if err != nil {
			return "", "", nil, err
		}
		if bundle, err = base64.StdEncoding.DecodeString(strings.Map(dropSpace, string(body))); err != nil {
			return "", "", nil, fmt.Errorf("the bundle's base64: %w", err)
		}
	}
	if bundle == nil {
		return "", "", nil, errors.New("the message carries no evidence bundle (application/zip)")
	}
	return evID, origID, bundle, nil
}

// returnable are the codes a recipient's provider issues and returns.
var returnable = map[evidence.Code]bool{
	evidence.RelayAccepted: true, evidence.RelayRejected: true,
	evidence.Delivered: true, evidence.NotDelivered: true,
	evidence.Read: true, evidence.DeemedRead: true,
}

// VerifyForeignBundle verifies a bundle provider p issued (any code),
// against the directory alone (evidence.VerifyWithDirectory), and returns
// its evidence.
func VerifyForeignBundle(p *directory.Provider, bundle []byte, tsaRoots *x509.CertPool) (*evidence.Evidence, error) {
	return verifyForeign(nil, p, bundle, tsaRoots)
}

// verifyForeign is VerifyForeignBundle with the checkpoints and time
// stamps a batch of returns shares checked once (evidence.VerifyCache).
func verifyForeign(c *evidence.VerifyCache, p *directory.Provider, bundle []byte, tsaRoots *x509.CertPool) (*evidence.Evidence, error) {
	rep := c.VerifyWithDirectory(p, bundle, tsaRoots, nil)
	if err := rep.Failed(); err != nil {
		return nil, fmt.Errorf("the bundle does not verify (%w)", err)
	}
	return rep.Evidence, nil
}

// checkReturned checks that e is evidence a recipient's provider p returns
// about one of its own recipients.
func checkReturned(p *directory.Provider, e *evidence.Evidence) error {
	if !returnable[e.Code] {
		return fmt.Errorf("evidence %d is not one a recipient's provider returns", int(e.Code))
	}
	for _, r := range e.Recipients {
		if !p.Serves(domainOf(r.Address)) {
			return fmt.Errorf("the evidence concerns <%s>, not at a domain of %s", r.Address, p.ID)
		}
	}
	return nil
}

// receiveEvidence handles a returned evidence (MAIL FROM:<>) from
// provider p for the original sender to.
func (s *Server) receiveEvidence(ctx context.Context, p *directory.Provider, to string, data []byte) error {
	evID, origID, bundle, err := returnParts(data)
	if err == nil {
		var e *evidence.Evidence
		if e, err = verifyForeign(&s.verified, p, bundle, s.TSARoots); err == nil {
			switch {
			case checkReturned(p, e) != nil:
				err = checkReturned(p, e)
			case e.ID != evID:
				err = fmt.Errorf("%s %s names another evidence than the bundle's %s", HeaderEvidence, evID, e.ID)
			case e.RelatedEvidence != "" && e.RelatedEvidence != origID:
				err = fmt.Errorf("%s %s is not the acceptance evidence %s the evidence relates to", HeaderOriginalEvidence, origID, e.RelatedEvidence)
			default:
				var res *mailbox.ForeignResult
				res, err = s.Mailbox.StoreForeignEvidence(ctx, &mailbox.ForeignEvidence{Provider: p.ID, Bundle: bundle, Evidence: e, OriginalEvidence: origID, To: to})
				if err == nil {
					if res.Duplicate {
						s.Metrics.receivedInc("duplicate")
					} else {
						s.Metrics.receivedInc("stored")
					}
					s.log().Info("relay: evidence received", "provider", p.ID, "evidence", e.ID, "code", int(e.Code), "seq", res.Seq, "duplicate", res.Duplicate)
					return nil
				}
				if !errors.Is(err, mailbox.ErrForeignUnknown) {
					s.log().Error("relay: store a returned evidence", "provider", p.ID, "evidence", e.ID, "err", err)
					return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "temporary fault storing the evidence; try again later")
				}
			}
		}
	}
	s.log().Error("relay: returned evidence refused", "provider", p.ID, "evidence", evID, "err", err)
	s.Metrics.receivedInc("refused")
	return smtpErr(554, smtp.EnhancedCode{5, 7, 0}, "returned evidence refused: %v", err)
}
