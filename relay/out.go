package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// ReasonRelayRefused is the reason code of a relay failure (31) because
// the recipient's provider refused the message with a permanent SMTP error.
const ReasonRelayRefused = evidence.ReasonKEPBase + "relay-refused"

// ReasonProviderRemoved: the recipient's provider was removed from the
// directory before the message could be relayed.
const ReasonProviderRemoved = evidence.ReasonKEPBase + "provider-removed"

// Transport is the delivery queue's transport for recipients at other
// providers (queue.DomainRouter.Other). For one message it sends, to each
// provider concerned, one envelope with all its recipients there
// (docs/relay.md, "The dialogue"):
//
//   - 250 after DATA: those recipients wait for that provider's evidence
//     (queue.Awaiting);
//   - a 5xx to a RCPT or to the DATA: the provider refused the message in a
//     way it could not attribute to evidence of its own (its 21 exists
//     only for a message it accepted to examine), so this provider issues
//     31 (RelayREMMDFailure) with the refusal's text as the reason, and
//     the recipient fails;
//   - a 4xx, a network or TLS fault: an error, and the queue tries again
//     after its back-off, until its deadline (the 24 h 31 is the queue's).
//
// A recipient at a domain no provider in the directory serves, or at a
// provider that was removed, gets 31 at once.
type Transport struct {
	Mailbox   *mailbox.Service
	Directory func() *directory.Directory
	Cert      tls.Certificate // this provider's TLS certificate, pinned for it in the directory
	HeloName  string          // this provider's domain
	Now       func() time.Time
	Timeout   time.Duration // per transaction; 0: one minute
	Log       *slog.Logger

	pool peerPool // sessions kept open per peer (pool.go)
}

var _ queue.Warner = (*Transport)(nil)

// Name implements queue.Transport.
func (*Transport) Name() string { return "relay" }

func (t *Transport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Transport) log() *slog.Logger {
	if t.Log != nil {
		return t.Log
	}
	return slog.Default()
}

func domainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

// Deliver implements queue.Transport.
func (t *Transport) Deliver(ctx context.Context, job *queue.Job, rs []queue.Recipient) error {
	d := t.Directory()
	if d == nil {
		return errors.New("relay: no provider directory loaded")
	}
	now := t.now()
	groups := map[string][]queue.Recipient{}
	var order []*directory.Provider
	for _, r := range rs {
		p := d.ProviderFor(domainOf(r.Address))
		switch {
		case p == nil:
			reason := evidence.ReasonUnknownProvider(domainOf(r.Address))
			if err := t.Mailbox.RelayFailed(ctx, job, []queue.Recipient{r}, reason); err != nil {
				return err
			}
			continue
		case !p.Active(now):
			reason := evidence.Reason{Code: ReasonProviderRemoved, Text: fmt.Sprintf("Alıcının hizmet sağlayıcısı (%s) KEP rehberinden çıkarıldı / the recipient's provider %s was removed from the KEP directory.", p.ID, p.ID)}
			if err := t.Mailbox.RelayFailed(ctx, job, []queue.Recipient{r}, reason); err != nil {
				return err
			}
			continue
		}
		if _, ok := groups[p.ID]; !ok {
			order = append(order, p)
		}
		groups[p.ID] = append(groups[p.ID], r)
	}
	var errs []error
	for _, p := range order {
		err := t.send(ctx, job, p, groups[p.ID])
		if err != nil && job.Expired && ctx.Err() == nil {
			// Past the queue's deadline (kep-domain.md, "Timing rules": 31
			// at 24 h): what is still pending fails with the last error.
			t.log().Error("relay: deadline passed, issuing relay failure", "message", job.MessageID, "provider", p.ID, "err", err)
			reason := evidence.Reason{Code: evidence.ReasonCodeRelayTimeout,
				Text: fmt.Sprintf("Alıcının hizmet sağlayıcısına (%s) süresi içinde iletilemedi / could not be relayed to %s in time: %v", p.ID, p.ID, err)}
			err = t.Mailbox.RelayFailed(ctx, job, groups[p.ID], reason)
		}
		if err != nil {
			t.log().Warn("relay: send failed, will retry", "message", job.MessageID, "provider", p.ID, "err", err)
			errs = append(errs, fmt.Errorf("relay to %s: %w", p.ID, err))
		}
	}
	return errors.Join(errs...)
}

// send carries the envelope to provider p for recipients rs and records
// the outcome. A returned error leaves rs pending.
func (t *Transport) send(ctx context.Context, job *queue.Job, p *directory.Provider, rs []queue.Recipient) error {
	env, msg, err := t.Mailbox.RelayEnvelope(ctx, job.MessageID)
	if err != nil {
		return err
	}
	pc, err := t.pool.get(ctx, t.Cert, p, t.now, t.Timeout, t.HeloName)
	if err != nil {
		return t.outcome(ctx, job, p, rs, err)
	}
	// The session goes back to the pool when the dialogue ended in step
	// (the peer's reply, whatever it said); on a network fault it is closed.
	var last error
	defer func() {
		if answered(last) {
			t.pool.put(pc)
		} else {
			pc.c.Close()
		}
	}()
	c := pc.c
	if last = c.Mail(msg.From, &smtp.MailOptions{Size: int64(len(env))}); last != nil {
		return t.outcome(ctx, job, p, rs, last)
	}
	var ok []queue.Recipient
	for _, r := range rs {
		if last = c.Rcpt(r.Address, nil); last != nil {
			if permanent(last) {
				if ferr := t.Mailbox.RelayFailed(ctx, job, []queue.Recipient{r}, refusal(p, last)); ferr != nil {
					return ferr
				}
				continue
			}
			return last
		}
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		return nil // every recipient was refused, and settled with 31; RSET at the next use
	}
	w, err := c.Data()
	if last = err; err != nil {
		return t.outcome(ctx, job, p, ok, err)
	}
	if _, err := w.Write(env); err != nil {
		last = err
		return err
	}
	if last = w.Close(); last != nil {
		return t.outcome(ctx, job, p, ok, last)
	}
	testPauseAfterData(t.log(), job.MessageID)
	return t.Mailbox.RelayHanded(ctx, job, ok)
}

// Close ends the relay sessions kept open (docs/relay.md, "Sessions").
func (t *Transport) Close() error {
	t.pool.closeAll()
	return nil
}

// outcome turns an SMTP error into 31 for rs (permanent) or an error for
// the queue's back-off (anything else).
func (t *Transport) outcome(ctx context.Context, job *queue.Job, p *directory.Provider, rs []queue.Recipient, err error) error {
	if !permanent(err) {
		return err
	}
	t.log().Warn("relay: refused by the recipient's provider", "message", job.MessageID, "provider", p.ID, "err", err)
	return t.Mailbox.RelayFailed(ctx, job, rs, refusal(p, err))
}

func permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500 && se.Code < 600
}

func refusal(p *directory.Provider, err error) evidence.Reason {
	return evidence.Reason{Code: ReasonRelayRefused,
		Text: fmt.Sprintf("Alıcının hizmet sağlayıcısı (%s) iletiyi reddetti / the recipient's provider %s refused the message: %v", p.ID, p.ID, err)}
}

// Warn implements queue.Warner: past the queue's warn time (relay.warn_after,
// 12 h by default) with the recipients' provider still not accepting, the
// sender finds a notice in Delil (docs/relay.md, "Time-outs"); 31 follows
// at the deadline.
func (t *Transport) Warn(ctx context.Context, tx *store.Tx, job *queue.Job, rs []queue.Recipient) error {
	provider := "?"
	if d := t.Directory(); d != nil && len(rs) > 0 {
		if p := d.ProviderFor(domainOf(rs[0].Address)); p != nil {
			provider = p.ID
		}
	}
	t.log().Warn("relay: not accepted within the warn time, notice to the sender", "message", job.MessageID, "provider", provider)
	return t.Mailbox.RelayLateNotice(ctx, tx, job, rs, provider)
}

// PauseAfterDataEnv names a test hook: when set to a duration, the relay
// sleeps that long after the peer's reply to DATA, before recording it, so
// that a test can kill the process in the window where the peer has
// committed the message and this provider has not seen its 250 (issue 11,
// "Bad input and faults"). Unset, as in production, it does nothing.
const PauseAfterDataEnv = "KEP_TEST_RELAY_PAUSE_AFTER_DATA"

func testPauseAfterData(log *slog.Logger, message int64) {
	v := os.Getenv(PauseAfterDataEnv)
	if v == "" {
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		log.Error("relay: "+PauseAfterDataEnv+" is not a duration", "value", v)
		return
	}
	log.Warn("relay: "+PauseAfterDataEnv+": pausing after the peer's reply to DATA, before recording it", "message", message, "pause", d.String())
	time.Sleep(d)
}
