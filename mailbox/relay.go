package mailbox

// What the relay (package relay, docs/relay.md) needs of the mailbox: the
// envelope of an accepted message to carry to another provider, the
// recipient states and evidence of the sending side (awaiting, 31), and at
// the receiving side a message from another provider stored with its
// evidence 20 (docs/relay.md, "Data model").

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// RelayEnvelope returns the provider envelope of an accepted message,
// exactly as a local recipient gets it (render.go), and the message. A
// message whose envelope was not signed at acceptance (a large one) has it
// signed and recorded here, once.
func (s *Service) RelayEnvelope(ctx context.Context, messageID int64) ([]byte, *KEPMessage, error) {
	s.init()
	msg, err := GetKEPMessage(ctx, s.DB.Q(), messageID)
	if err != nil {
		return nil, nil, err
	}
	if msg.EnvelopeSig == nil {
		sig, size, params, err := s.signEnvelope(ctx, msg, nil)
		if err != nil {
			return nil, nil, err
		}
		err = s.DB.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE messages SET envelope_sig = ?, envelope_size = ?, envelope_params = ? WHERE id = ? AND envelope_sig IS NULL`, sig, size, params, msg.ID)
			return err
		})
		if err != nil {
			return nil, nil, err
		}
	}
	env, err := s.renderEnvelope(ctx, messageID)
	if err != nil {
		return nil, nil, err
	}
	return env, msg, nil
}

// RelayHanded records that the recipients rs were accepted by the other
// provider's reception point (its 250): each waits, awaiting, for that
// provider's evidence (queue.Awaiting), and the job's item ends once no
// recipient is pending.
func (s *Service) RelayHanded(ctx context.Context, job *queue.Job, rs []queue.Recipient) error {
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		for _, r := range rs {
			if _, err := tx.Exec(ctx, `UPDATE deliveries SET transport_state = ?, attempts = attempts + 1 WHERE id = ? AND `+queue.PendingOnly,
				string(queue.Awaiting), r.DeliveryID); err != nil {
				return err
			}
		}
		return queue.Done(ctx, tx, job)
	})
}

// RelayFailed issues relay failure evidence (31, TS 102 640-2
// RelayREMMDFailure) for each recipient of rs with reason, and marks them
// failed, in one transaction.
func (s *Service) RelayFailed(ctx context.Context, job *queue.Job, rs []queue.Recipient, reason evidence.Reason) error {
	s.init()
	q := s.DB.Q()
	msg, err := GetKEPMessage(ctx, q, job.MessageID)
	if err != nil {
		return err
	}
	base, sender, err := s.baseEvidence(ctx, q, msg)
	if err != nil {
		return err
	}
	now := s.now()
	var recs []*evidence.Record
	for _, r := range rs {
		e := *base
		e.ID, e.EventTime, e.Code = evidence.NewID(), now, evidence.RelayFailure
		e.Recipients = []evidence.Party{recipientParty(r.Address, nil)}
		e.Reasons = []evidence.Reason{reason}
		recs = append(recs, &evidence.Record{Evidence: &e, AccountID: sender.ID, MessageID: msg.ID, Subject: r.Address})
	}
	err = s.Issuer.Issue(ctx, recs, func(ctx context.Context, tx *store.Tx) error {
		for _, r := range rs {
			if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = ?, transport_state = ?, attempts = attempts + 1, reason = ? WHERE id = ? AND `+queue.PendingOnly,
				string(Failed), string(queue.Failed), reason.Code, r.DeliveryID); err != nil {
				return err
			}
		}
		return queue.Done(ctx, tx, job)
	})
	if errors.Is(err, evidence.ErrAlreadyIssued) {
		return nil
	}
	return err
}

// Relayed is a message another provider relayed to this one, checked by
// the reception point (package relay).
type Relayed struct {
	Provider   string // the sending provider's directory id (hsNN)
	Envelope   []byte // the envelope as received, the sending provider's signature intact
	Accepted   *evidence.Evidence
	From       string
	Recipients []string // at this provider's domains
	// Refused maps a recipient to the reason it is refused (evidence 21).
	Refused map[string]evidence.Reason
}

// RelayedResult is what the reception point answers with.
type RelayedResult struct {
	MessageID int64
	Duplicate bool               // stored before (a retransmission): nothing new was issued
	Evidence  []*evidence.Stored // this provider's 20/21 for the message, one per recipient
}

// AcceptRelayed stores a message from another provider (docs/relay.md,
// "Data model"): a messages row without a local sender, keyed by (provider,
// id of its evidence 10); the envelope as received in the content store;
// one delivery per recipient; and this provider's evidence 20 (accepted
// for relay) or 21 (refused, with the reason) per recipient, all in one
// transaction. A second call with the same key stores nothing and returns
// the evidence issued the first time, so a retransmission after a lost
// reply delivers nothing twice.
// The pending recipients are then handed to the queue, whose local
// transport places the envelope as received in their INBOX (40/41).
func (s *Service) AcceptRelayed(ctx context.Context, in *Relayed) (*RelayedResult, error) {
	s.init()
	if id, err := s.relayedMessage(ctx, s.DB.Q(), in.Provider, in.Accepted.ID); err == nil {
		return s.relayedResult(ctx, id, true)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	d, size, err := s.Blobs.Put(bytes.NewReader(in.Envelope))
	if err != nil {
		return nil, fmt.Errorf("store the envelope: %w", err)
	}
	now := s.now()
	horizon := store.Millis(s.Queue.Horizon(now))
	job := &queue.Job{IletiTip: in.Accepted.Message.IletiTip, AcceptedAt: now}
	acc := in.Accepted
	msg := &KEPMessage{Digest: d, Size: size, From: in.From, SenderName: acc.Sender.Name, HeaderID: acc.Message.MessageID,
		IletiID: acc.Message.IletiID, IletiTip: acc.Message.IletiTip, SubmittedAt: acc.SubmissionTime, EvidenceID: acc.ID}
	if msg.IletiTip == "" {
		msg.IletiTip = "standart"
	}
	job.IletiTip = msg.IletiTip
	var recs []*evidence.Record
	for _, r := range in.Recipients {
		e := &evidence.Evidence{ID: evidence.NewID(), Code: evidence.RelayAccepted, EventTime: now, SubmissionTime: acc.SubmissionTime,
			Sender: acc.Sender, Recipients: []evidence.Party{{Address: r}}, Message: acc.Message, RelatedEvidence: acc.ID}
		if reason, ok := in.Refused[r]; ok {
			e.Code, e.Reasons = evidence.RelayRejected, []evidence.Reason{reason}
		}
		recs = append(recs, &evidence.Record{Evidence: e, Subject: r})
	}
	err = s.Issuer.Issue(ctx, recs, func(ctx context.Context, tx *store.Tx) error {
		id, err := store.InsertID(ctx, tx, `INSERT INTO messages (digest, size, sender_account, from_addr, sender_name, header_id, ileti_id, ileti_tip, submitted_at, evidence_id, envelope_size, origin_provider, origin_evidence)
			VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			msg.Digest[:], msg.Size, msg.From, msg.SenderName, msg.HeaderID, msg.IletiID, msg.IletiTip, store.Millis(msg.SubmittedAt), msg.EvidenceID, msg.Size,
			in.Provider, acc.ID)
		if err != nil {
			return err
		}
		msg.ID = id
		for i, r := range in.Recipients {
			recs[i].MessageID = id
			state, ts, reason := string(Queued), string(queue.Pending), ""
			if rr, ok := in.Refused[r]; ok {
				state, ts, reason = string(Failed), string(queue.Failed), rr.Code
			}
			did, err := store.InsertID(ctx, tx, `INSERT INTO deliveries (message_id, recipient, state, transport_state, next_at, reason) VALUES (?, ?, ?, ?, ?, ?)`,
				id, r, state, ts, horizon, reason)
			if err != nil {
				return err
			}
			if ts == string(queue.Pending) {
				job.Recipients = append(job.Recipients, queue.Recipient{DeliveryID: did, Address: r})
			}
		}
		return nil
	})
	if err != nil {
		// Lost a race with a retransmission on another connection: answer
		// as for a duplicate.
		if id, err2 := s.relayedMessage(ctx, s.DB.Q(), in.Provider, acc.ID); err2 == nil {
			return s.relayedResult(ctx, id, true)
		}
		return nil, err
	}
	if len(job.Recipients) > 0 {
		// Local delivery (40/41) as for a message accepted here.
		job.MessageID = msg.ID
		s.Queue.Handoff(job)
	}
	return s.relayedResult(ctx, msg.ID, false)
}

func (s *Service) relayedMessage(ctx context.Context, q store.Querier, provider, evidenceID string) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `SELECT id FROM messages WHERE origin_provider = ? AND origin_evidence = ?`, provider, evidenceID).Scan(&id)
	return id, store.MapErr(err)
}

func (s *Service) relayedResult(ctx context.Context, id int64, dup bool) (*RelayedResult, error) {
	res := &RelayedResult{MessageID: id, Duplicate: dup}
	all, err := evidence.ByMessage(ctx, s.DB.Q(), id)
	if err != nil {
		return nil, err
	}
	for _, st := range all {
		if st.Code == evidence.RelayAccepted || st.Code == evidence.RelayRejected {
			res.Evidence = append(res.Evidence, st)
		}
	}
	return res, nil
}

// Foreign reports whether the message came from another provider (it has
// no local sender; migration 0015 lets only such a message lack one). Its
// content in the content store is the envelope as received, served as is.
func (m *KEPMessage) Foreign() bool { return m.SenderAccount == 0 }

// foreignBase is baseEvidence for a message from another provider: the
// sender and the message as the sending provider's acceptance described
// them, read back from this provider's evidence 20, which repeats them.
// The sender has no account here (no Delil copy: the evidence travels
// back to the sending provider instead).
func (s *Service) foreignBase(ctx context.Context, q store.Querier, msg *KEPMessage) (*evidence.Evidence, *store.Account, error) {
	sts, err := evidence.ByMessage(ctx, q, msg.ID)
	if err != nil {
		return nil, nil, err
	}
	for _, st := range sts {
		if st.Code != evidence.RelayAccepted {
			continue
		}
		e, err := evidence.Parse(st.Document)
		if err != nil {
			return nil, nil, fmt.Errorf("message %d: its relay acceptance: %w", msg.ID, err)
		}
		return &evidence.Evidence{SubmissionTime: e.SubmissionTime, Sender: e.Sender, Message: e.Message, RelatedEvidence: msg.EvidenceID}, &store.Account{}, nil
	}
	return nil, nil, fmt.Errorf("message %d from %s: no relay acceptance (20) to deliver it by", msg.ID, msg.From)
}
