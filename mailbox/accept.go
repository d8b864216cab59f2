package mailbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

// Submission is a message that passed the access-point checks.
type Submission struct {
	Sender   *store.Account
	Operator *store.Operator // the operator who sent it for a company account
	Original blob.Digest     // the signed original, in the content store
	Size     int64
	BlobGen  int64 // from blob.Writer.CommitDeferred: made durable before the evidence
	// Data, when the caller holds the original in memory, spares delivery
	// reading it back from the content store.
	Data       []byte
	From       string
	Recipients []string
	HeaderID   string
	IletiID    string
	IletiTip   string
	AuthMethod string
	AuthTime   time.Time
	Properties []evidence.Property // KEP properties of the acceptance evidence (revocation data cited)
	// IdempotencyKey, when set, is recorded with the message in the same
	// transaction, for the sending account (idempotency.go): a second
	// acceptance under the same key fails with store.ErrConflict.
	IdempotencyKey string
}

// Accept records an accepted message in one transaction (docs/kep-rules.md,
// "Messages and envelopes"; TS 102 640-2 SubmissionAcceptanceRejection):
// the signed original is durable in the content store before anything
// refers to it; then the message row, the acceptance evidence (10) signed
// and logged, one pending delivery per recipient, the copy in the sender's
// Sent folder commit together, and with them, for recipients in this
// provider's mailboxes, the delivery: evidence 40 or 41 and the INBOX
// copy (see deliverMessage). When Accept returns
// nil the message cannot be lost; when it fails nothing of it remains.
func (s *Service) Accept(ctx context.Context, sub *Submission) (*KEPMessage, *evidence.Record, error) {
	s.init()
	// The original is durable before anything refers to it: the log
	// writes the message only once its sync is done (tlog.AppendWhen), and
	// the sync starts here, to run while the evidence and the envelope are
	// signed. Syncs coalesce: one under way covers the originals written
	// before it started.
	synced := tlog.Go(func() error {
		if err := s.Blobs.Sync(sub.BlobGen); err != nil {
			return fmt.Errorf("store the original: %w", err)
		}
		return nil
	})
	now := s.now()
	msg := &KEPMessage{Digest: sub.Original, Size: sub.Size, SenderAccount: sub.Sender.ID, From: sub.From, SenderName: sub.Sender.OwnerName, HeaderID: sub.HeaderID,
		IletiID: sub.IletiID, IletiTip: sub.IletiTip, SubmittedAt: now}
	if sub.Operator != nil {
		msg.OperatorID = sub.Operator.ID
	}
	ev := &evidence.Evidence{
		ID: evidence.NewID(), Code: evidence.Accepted, EventTime: now, SubmissionTime: now,
		SenderAuthentication: evidence.Authentication{Method: sub.AuthMethod, Time: sub.AuthTime},
		Sender:               senderParty(sub.Sender, sub.From),
		Operator:             operatorParty(sub.Operator, sub.Sender.Address),
		Message: evidence.Message{MessageID: sub.HeaderID, IletiID: sub.IletiID, IletiTip: sub.IletiTip,
			DigestAlgorithm: evidence.DigestSHA256, Digest: append([]byte(nil), sub.Original[:]...), Size: sub.Size},
		Properties: sub.Properties,
	}
	for _, r := range sub.Recipients {
		ev.Recipients = append(ev.Recipients, evidence.Party{Address: r})
	}
	msg.EvidenceID = ev.ID
	rec := &evidence.Record{Evidence: ev, AccountID: sub.Sender.ID}
	// For a message held in memory (the usual, small one) the provider's
	// envelope is signed here, once for all recipients, and delivery has
	// nothing left to sign; it carries the acceptance evidence, signed
	// first. A large message's envelope is signed at delivery, so that
	// acceptance never holds the message twice.
	var fresh *freshMessage
	if sub.Data != nil {
		if err := s.Issuer.Prepare([]*evidence.Record{rec}); err != nil {
			return nil, nil, err
		}
		fresh = &freshMessage{msg: msg, sender: sub.Sender, operator: sub.Operator, original: sub.Data, accepted: rec.Document}
		sig, size, params, err := s.signEnvelope(ctx, msg, fresh)
		if err != nil {
			return nil, nil, err
		}
		msg.EnvelopeSig, msg.EnvelopeSize, msg.EnvelopeParams = sig, size, params
	}
	// Recipients in this provider's mailboxes are delivered in the same
	// transaction: the local transport joins the acceptance (one commit,
	// evidence 10 then 40 or 41 in the log), writing the same queue state
	// it would have written a moment later. The others wait, pending, for
	// their transport; so do all recipients of a large message, whose
	// envelope is signed at delivery.
	var joined []*outcome
	var jrecs []*evidence.Record
	rest := sub.Recipients
	if fresh != nil {
		var local []queue.Recipient
		rest = nil
		for _, r := range sub.Recipients {
			if _, ok := s.Queue.Router.Route(r).(localTransport); ok {
				local = append(local, queue.Recipient{Address: r})
			} else {
				rest = append(rest, r)
			}
		}
		if len(local) > 0 {
			var err error
			if joined, jrecs, err = s.outcomes(ctx, s.DB.Q(), msg, makeBase(msg, sub.Sender, sub.Operator), sub.Sender, local, nil, msg.EnvelopeSize, now); err != nil {
				return nil, nil, err
			}
		}
	}
	var sent *Folder
	var notify [][2]int64
	job := &queue.Job{IletiTip: sub.IletiTip, AcceptedAt: now}
	horizon := store.Millis(s.Queue.Horizon(now))
	write := func(ctx context.Context, tx *store.Tx) error {
		if err := insertMessage(ctx, tx, msg); err != nil {
			return err
		}
		rec.MessageID = msg.ID
		if sub.IdempotencyKey != "" {
			if err := recordIdempotencyKey(ctx, tx, sub, msg.ID, now); err != nil {
				return err
			}
		}
		// Each recipient left to its transport waits, pending; this node
		// holds the message in memory until the horizon (queue.Handoff).
		job.Recipients = job.Recipients[:0]
		for _, r := range rest {
			id, err := store.InsertID(ctx, tx, `INSERT INTO deliveries (message_id, recipient, state, transport_state, next_at) VALUES (?, ?, ?, ?, ?)`,
				msg.ID, r, string(Queued), string(queue.Pending), horizon)
			if err != nil {
				return err
			}
			job.Recipients = append(job.Recipients, queue.Recipient{DeliveryID: id, Address: r})
		}
		f, err := s.folder(ctx, tx, sub.Sender.ID, Sent)
		if err != nil {
			return err
		}
		sent = f
		// The Sent copy holds the original, and so do the queued deliveries
		// until they are done (see Unused).
		d := sub.Original
		if _, err = Append(ctx, tx, f, New{Kind: KindSent, MessageID: msg.ID, Ref: -1, Content: &d, Size: sub.Size, InternalDate: now, Flags: []string{`\Seen`}}); err != nil {
			return err
		}
		for i, o := range joined {
			o.d.DeliveryID = 0 // a row of this transaction (it may run again)
			jrecs[i].MessageID = msg.ID
		}
		notify, _, err = s.settle(ctx, tx, msg, joined, msg.EnvelopeSize, now)
		return err
	}
	err := s.Issuer.IssueWhen(ctx, append([]*evidence.Record{rec}, jrecs...), synced, write)
	if errors.Is(err, errQuotaRace) {
		// A mailbox filled up since it was read: accept alone, and leave
		// every recipient to the queue, which reads the quota again.
		joined, jrecs, rest = nil, nil, sub.Recipients
		err = s.Issuer.IssueWhen(ctx, []*evidence.Record{rec}, synced, write)
	}
	if err != nil {
		return nil, nil, err
	}
	s.Metrics.delivered(joined)
	s.Hub.Notify(sub.Sender.ID, sent.ID)
	for _, n := range notify {
		s.Hub.Notify(n[0], n[1])
	}
	if len(rest) > 0 {
		if fresh != nil {
			s.fresh.put(fresh)
		}
		job.MessageID = msg.ID
		s.Queue.Handoff(job)
	}
	return msg, rec, nil
}

// Rejection is a submission refused at the access point.
type Rejection struct {
	Sender     *store.Account // nil when the sender is not known (then no Delil copy)
	Operator   *store.Operator
	From       string
	Recipients []string
	Digest     []byte // SHA-256 of the message as received, when there was one
	Size       int64
	HeaderID   string
	IletiID    string
	IletiTip   string
	Reason     evidence.Reason
	AuthMethod string
	AuthTime   time.Time
}

// Reject issues the rejection evidence (11) for a refused submission. It
// reaches the sender's evidence folder; the message itself is not kept.
func (s *Service) Reject(ctx context.Context, rj *Rejection) (*evidence.Record, error) {
	s.init()
	now := s.now()
	ev := &evidence.Evidence{
		ID: evidence.NewID(), Code: evidence.Rejected, EventTime: now, SubmissionTime: now,
		Reasons:              []evidence.Reason{rj.Reason},
		SenderAuthentication: evidence.Authentication{Method: rj.AuthMethod, Time: rj.AuthTime},
		Operator:             operatorParty(rj.Operator, rj.From),
		Message:              evidence.Message{MessageID: rj.HeaderID, IletiID: rj.IletiID, IletiTip: rj.IletiTip, Size: rj.Size},
	}
	if ev.Message.IletiTip == "" {
		ev.Message.IletiTip = evidence.IletiTipStandart
	}
	if len(rj.Digest) > 0 {
		ev.Message.DigestAlgorithm, ev.Message.Digest = evidence.DigestSHA256, rj.Digest
	}
	rec := &evidence.Record{Evidence: ev}
	if rj.Sender != nil {
		ev.Sender = senderParty(rj.Sender, rj.From)
		rec.AccountID = rj.Sender.ID
	} else {
		ev.Sender = evidence.Party{Address: rj.From}
	}
	for _, r := range rj.Recipients {
		ev.Recipients = append(ev.Recipients, evidence.Party{Address: r})
	}
	if err := s.Issuer.Issue(ctx, []*evidence.Record{rec}, nil); err != nil {
		return nil, err
	}
	return rec, nil
}
