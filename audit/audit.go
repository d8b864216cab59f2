// Package audit is in charge of the store-side half of the evidence audit
// (`kep log verify`, issue 9.4): it reads the evidence rows for tlog's
// audit, comparing every column with the row's signed document, and checks
// the tables and files users rely on against the signed evidence: the
// messages and deliveries rows, and the originals in the content store
// against their digests. Package tlog checks the log itself (hashes,
// checkpoints, time stamps).
package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

// auditRows reads evidence rows for tlog.Audit: each document decoded, and
// its identifier, code, stage and event time compared with the row's
// columns, so that a column changed behind the log's back is named too.
func EvidenceRows(q store.Querier) tlog.AuditReader {
	look := &lookups{q: q, accounts: map[int64]*auditAccount{}}
	return func(ctx context.Context, start, end int64) ([]tlog.AuditEntry, error) {
		rows, err := q.Query(ctx, `SELECT seq, id, code, stage, COALESCE(account_id, 0), COALESCE(message_id, 0), subject, event_time, format, xml
			FROM evidence WHERE seq >= ? AND seq < ? ORDER BY seq`, start, end)
		if err != nil {
			return nil, err
		}
		var rs []evidenceRow
		for rows.Next() {
			var r evidenceRow
			if err := rows.Scan(&r.seq, &r.id, &r.code, &r.stage, &r.account, &r.message, &r.subject, &r.at, &r.format, &r.xml); err != nil {
				rows.Close()
				return nil, err
			}
			rs = append(rs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		// The rows the filing columns point at, read before the parallel
		// part.
		var msgIDs []int64
		for i := range rs {
			if rs[i].message != 0 {
				msgIDs = append(msgIDs, rs[i].message)
			}
		}
		msgs, err := look.messages(ctx, msgIDs)
		if err != nil {
			return nil, err
		}
		for i := range rs {
			if rs[i].message != 0 {
				rs[i].msg = msgs[rs[i].message]
			}
			if rs[i].account != 0 {
				if rs[i].acct, err = look.account(ctx, rs[i].account); err != nil {
					return nil, err
				}
			}
		}
		// Decode after the rows are closed (a dictionary may have to be
		// read), parsing on every core: parsing costs more than the rest of
		// the audit together.
		out := make([]tlog.AuditEntry, len(rs))
		var wg sync.WaitGroup
		work := make(chan int)
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					out[i] = auditRow(ctx, q, &rs[i])
				}
			}()
		}
		for i := range rs {
			work <- i
		}
		close(work)
		wg.Wait()
		return out, nil
	}
}

// evidenceRow is one evidence row, with the rows its filing columns
// point at.
type evidenceRow struct {
	seq, at, format, account, message int64
	id, stage, subject                string
	code                              int
	xml                               []byte
	acct                              *auditAccount
	msg                               *auditMessage
}

// auditRow decodes one evidence row and compares its columns with its
// document.
func auditRow(ctx context.Context, q store.Querier, r *evidenceRow) tlog.AuditEntry {
	seq, id, code, stage, at := r.seq, r.id, r.code, r.stage, r.at
	out := tlog.AuditEntry{Seq: seq, ID: id}
	doc, err := evidence.Decode(ctx, q, r.format, r.xml)
	if err != nil {
		out.Err = err
		return out
	}
	out.Document = doc
	e, err := evidence.Parse(doc)
	if err != nil {
		out.Err = fmt.Errorf("its document is not a valid evidence: %w", err)
		return out
	}
	out.Time = e.EventTime
	var diffs []string
	if e.ID != id {
		diffs = append(diffs, fmt.Sprintf("id column says %s, its document %s", id, e.ID))
	}
	if int(e.Code) != code {
		diffs = append(diffs, fmt.Sprintf("code column says %d, its document %d", code, int(e.Code)))
	}
	if st := string(evidence.StageOf(e.Code)); st != stage {
		diffs = append(diffs, fmt.Sprintf("stage column says %s, its document %s", stage, st))
	}
	if ms := store.Millis(e.EventTime); ms != at {
		diffs = append(diffs, fmt.Sprintf("event_time column says %s, its document %s",
			store.FromMillis(at).Format(time.RFC3339Nano), e.EventTime.UTC().Format(time.RFC3339Nano)))
	}
	diffs = append(diffs, filing(e, r.account, r.acct, r.message, r.msg, r.subject)...)
	if len(diffs) > 0 {
		out.Err = fmt.Errorf("its %s (the row was changed after it was logged)", strings.Join(diffs, "; its "))
	}
	return out
}

// The store-side half of `kep log verify` (issue 9.4): every column a
// user relies on is either covered by a signature or checked here against
// the signed evidence, which package tlog's audit has tied to the log.
//
//   - evidence: id, code, stage, event_time against the row's own
//     document; account_id, message_id and subject against it too, through
//     the accounts and messages rows they point at (auditRow);
//   - messages: digest, size, sender_account, from_addr, header_id,
//     ileti_id, ileti_tip, submitted_at and evidence_id against the
//     message's acceptance evidence (10) (auditMessages);
//   - deliveries: recipient, state and account_id against the delivery
//     and retrieval evidence of the message and recipient (auditMessages);
//   - the content store: each original against its digest (auditOriginals).
//
// Not covered, by design: checkpoints.created_at (the time stamp's time,
// which is checked, is the one relied on), mailbox rows and flags (the
// user's own working state, which the user changes), and the rows of
// messages' envelope columns (envelope_sig is itself a signature over the
// envelope, checked by whoever receives it).

// auditAccount is what the evidence checks need of an account.
type auditAccount struct {
	owner, address string
}

// auditMessage is what the evidence checks need of a message row.
type auditMessage struct {
	digest     []byte
	evidenceID string
}

// lookups caches accounts and reads message rows by chunk for auditRow.
type lookups struct {
	q        store.Querier
	accounts map[int64]*auditAccount // nil value: no such account
}

func (l *lookups) account(ctx context.Context, id int64) (*auditAccount, error) {
	if a, ok := l.accounts[id]; ok {
		return a, nil
	}
	var a auditAccount
	err := l.q.QueryRow(ctx, `SELECT owner_id, address FROM accounts WHERE id = ?`, id).Scan(&a.owner, &a.address)
	if errors.Is(store.MapErr(err), store.ErrNotFound) {
		l.accounts[id] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l.accounts[id] = &a
	return &a, nil
}

// messages reads the message rows with the given ids.
func (l *lookups) messages(ctx context.Context, ids []int64) (map[int64]*auditMessage, error) {
	out := map[int64]*auditMessage{}
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		rows, err := l.q.Query(ctx, `SELECT id, digest, evidence_id FROM messages WHERE id IN (?`+strings.Repeat(", ?", n-1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id int64
			var m auditMessage
			if err := rows.Scan(&id, &m.digest, &m.evidenceID); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = &m
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		ids = ids[n:]
	}
	return out, nil
}

// filing compares the columns that file an evidence (account_id,
// message_id, subject) with its document, and returns what differs.
func filing(e *evidence.Evidence, accountID int64, acct *auditAccount, messageID int64, msg *auditMessage, subject string) []string {
	var diffs []string
	// account_id: the account whose evidence folder (Delil) it reaches, the
	// sender's (mailbox/accept.go, deliver.go, retrieve.go); none for a
	// rejection of an unknown sender, whose document names no identity.
	switch {
	case accountID == 0 && e.Sender.Identity != "":
		diffs = append(diffs, fmt.Sprintf("account_id column is empty, its document names the sender %s", e.Sender.Address))
	case accountID != 0 && acct == nil:
		diffs = append(diffs, fmt.Sprintf("account_id column says %d, an account that does not exist", accountID))
	case accountID != 0 && (acct.owner != e.Sender.Identity || !strings.EqualFold(acct.address, e.Sender.Address)):
		diffs = append(diffs, fmt.Sprintf("account_id column says %d (%s), its document the sender %s", accountID, acct.address, e.Sender.Address))
	}
	// message_id: the message it is about; none for a rejection (11).
	switch {
	case e.Code == evidence.Rejected && messageID != 0:
		diffs = append(diffs, fmt.Sprintf("message_id column says %d, its document is a rejection, of no stored message", messageID))
	case e.Code == evidence.Rejected:
	case messageID == 0:
		diffs = append(diffs, "message_id column is empty, its document is about a message")
	case msg == nil:
		diffs = append(diffs, fmt.Sprintf("message_id column says %d, a message that does not exist", messageID))
	case !bytes.Equal(msg.digest, e.Message.Digest):
		diffs = append(diffs, fmt.Sprintf("message_id column says %d, a message with another digest than its document's", messageID))
	case e.Code == evidence.Accepted && msg.evidenceID != e.ID, e.Code != evidence.Accepted && msg.evidenceID != e.RelatedEvidence:
		diffs = append(diffs, fmt.Sprintf("message_id column says %d, a message accepted with evidence %s, not the one its document follows", messageID, msg.evidenceID))
	}
	// subject: the recipient it concerns; "" for the whole message.
	want := ""
	if st := evidence.StageOf(e.Code); st == evidence.StageDelivery || st == evidence.StageRetrieval {
		if len(e.Recipients) == 1 {
			want = e.Recipients[0].Address
		} else {
			want = fmt.Sprintf("(one recipient, not %d)", len(e.Recipients))
		}
	}
	if subject != want {
		diffs = append(diffs, fmt.Sprintf("subject column says %q, its document %q", subject, want))
	}
	return diffs
}

// Problem is a finding of the store-side checks, printed as the
// tlog audit's are.
type Problem struct {
	Kind, Detail string
}

func (p Problem) String() string { return p.Detail }

// Store-side problem kinds.
const (
	problemMessage  = "message"          // a messages row differs from its acceptance evidence
	problemDelivery = "delivery"         // a deliveries row differs from its evidence
	problemOriginal = "original"         // an original is missing or does not match its digest
	problemNoEvid   = "message-evidence" // a message's acceptance evidence is not stored
)

// Summary counts what the store-side checks went through.
type Summary struct {
	Messages, Deliveries, Originals, OriginalsOf int64
	Mode                                         string
}

// auditMessages checks every messages row against its acceptance evidence
// and every deliveries row against the evidence of its recipient.
func Messages(ctx context.Context, q store.Querier, sum *Summary, report func(Problem)) error {
	type msgRow struct {
		id, size, sender, submitted        int64
		digest                             []byte
		from, header, ileti, tip, evidence string
	}
	for after := int64(0); ; {
		rows, err := q.Query(ctx, `SELECT id, digest, size, sender_account, from_addr, header_id, ileti_id, ileti_tip, submitted_at, evidence_id
			FROM messages WHERE id > ? ORDER BY id LIMIT 500`, after)
		if err != nil {
			return err
		}
		var ms []msgRow
		for rows.Next() {
			var m msgRow
			if err := rows.Scan(&m.id, &m.digest, &m.size, &m.sender, &m.from, &m.header, &m.ileti, &m.tip, &m.submitted, &m.evidence); err != nil {
				rows.Close()
				return err
			}
			ms = append(ms, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ms) == 0 {
			return nil
		}
		after = ms[len(ms)-1].id
		for _, m := range ms {
			sum.Messages++
			name := fmt.Sprintf("message %d", m.id)
			st, err := evidence.Get(ctx, q, m.evidence)
			if errors.Is(err, store.ErrNotFound) {
				report(Problem{problemNoEvid, fmt.Sprintf("%s: its acceptance evidence %s is not in the store (its evidence_id column was changed, or the evidence removed)", name, m.evidence)})
				continue
			}
			if err != nil {
				report(Problem{problemNoEvid, fmt.Sprintf("%s: its acceptance evidence %s cannot be read: %v", name, m.evidence, err)})
				continue
			}
			e, err := evidence.Parse(st.Document)
			if err != nil {
				continue // the tlog audit names it
			}
			var diffs []string
			col := func(c string, got, want any) {
				if fmt.Sprint(got) != fmt.Sprint(want) {
					diffs = append(diffs, fmt.Sprintf("%s column says %v, its acceptance evidence %v", c, got, want))
				}
			}
			col("evidence_id (code)", int(e.Code), int(evidence.Accepted))
			col("id (the evidence's message_id)", st.MessageID, m.id)
			col("digest", fmt.Sprintf("%x", m.digest), fmt.Sprintf("%x", e.Message.Digest))
			col("size", m.size, e.Message.Size)
			col("sender_account (the evidence's account_id)", m.sender, st.AccountID)
			col("from_addr", m.from, e.Sender.Address)
			col("header_id", m.header, e.Message.MessageID)
			col("ileti_id", m.ileti, e.Message.IletiID)
			col("ileti_tip", m.tip, e.Message.IletiTip)
			col("submitted_at", store.FromMillis(m.submitted).Format(time.RFC3339Nano), e.SubmissionTime.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano))
			if len(diffs) > 0 {
				report(Problem{problemMessage, fmt.Sprintf("%s (evidence %s): its %s (the row was changed)", name, m.evidence, strings.Join(diffs, "; its "))})
			}
			if err := auditDeliveries(ctx, q, m.id, sum, report); err != nil {
				return err
			}
		}
	}
}

// deliveryEvidence is the delivery and retrieval evidence each delivery
// state needs (mailbox/deliver.go, retrieve.go): codes that must be there,
// and the retrieval codes, none of which may be there otherwise.
var deliveryEvidence = map[string][]evidence.Code{
	"queued":    nil,
	"delivered": {evidence.Delivered},
	"failed":    {evidence.NotDelivered},
	"read":      {evidence.Delivered, evidence.Read},
	"deemed":    {evidence.Delivered, evidence.DeemedRead},
}

// auditDeliveries checks the deliveries of one message against the
// evidence filed for each recipient.
func auditDeliveries(ctx context.Context, q store.Querier, msgID int64, sum *Summary, report func(Problem)) error {
	codes := map[string][]evidence.Code{}
	rows, err := q.Query(ctx, `SELECT subject, code FROM evidence WHERE message_id = ? AND stage IN ('delivery', 'retrieval')`, msgID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var subject string
		var code int
		if err := rows.Scan(&subject, &code); err != nil {
			rows.Close()
			return err
		}
		codes[strings.ToLower(subject)] = append(codes[strings.ToLower(subject)], evidence.Code(code))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	type dRow struct {
		id, account int64
		recipient   string
		state       string
		address     *string
	}
	var ds []dRow
	rows, err = q.Query(ctx, `SELECT d.id, COALESCE(d.account_id, 0), d.recipient, d.state, a.address FROM deliveries d LEFT JOIN accounts a ON a.id = d.account_id WHERE d.message_id = ? ORDER BY d.id`, msgID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var d dRow
		if err := rows.Scan(&d.id, &d.account, &d.recipient, &d.state, &d.address); err != nil {
			rows.Close()
			return err
		}
		ds = append(ds, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, d := range ds {
		sum.Deliveries++
		name := fmt.Sprintf("delivery %d (message %d to %s)", d.id, msgID, d.recipient)
		have := codes[strings.ToLower(d.recipient)]
		want, known := deliveryEvidence[d.state]
		if !known {
			report(Problem{problemDelivery, fmt.Sprintf("%s: unknown state %q", name, d.state)})
			continue
		}
		same := len(have) == len(want)
		for _, c := range want {
			found := false
			for _, h := range have {
				found = found || h == c
			}
			same = same && found
		}
		if !same {
			report(Problem{problemDelivery, fmt.Sprintf("%s: its state column says %s, which needs evidence %v, but the evidence for this recipient is %v (the row was changed)", name, d.state, codeList(want), codeList(have))})
		}
		if d.account != 0 && (d.address == nil || !strings.EqualFold(*d.address, d.recipient)) {
			report(Problem{problemDelivery, fmt.Sprintf("%s: its account_id column says %d, not the account of %s (the row was changed)", name, d.account, d.recipient)})
		}
	}
	return nil
}

func codeList(cs []evidence.Code) string {
	if len(cs) == 0 {
		return "none"
	}
	var s []string
	for _, c := range cs {
		s = append(s, fmt.Sprint(int(c)))
	}
	return strings.Join(s, ", ")
}

// auditOriginals checks originals in the content store against their
// digests: every message's in mode "full", sample of them at random in
// mode "sample", none in mode "none".
func Originals(ctx context.Context, q store.Querier, blobs *blob.Store, mode string, sample int, sum *Summary, report func(Problem)) error {
	sum.Mode = mode
	var query string
	var args []any
	switch mode {
	case "none":
		return nil
	case "full":
		query = `SELECT id, digest, evidence_id FROM messages ORDER BY id`
	case "sample":
		query, args = `SELECT id, digest, evidence_id FROM messages ORDER BY RANDOM() LIMIT ?`, []any{sample}
	default:
		return fmt.Errorf("--originals %q: say full, sample or none", mode)
	}
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM messages`).Scan(&sum.OriginalsOf); err != nil {
		return err
	}
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	type orig struct {
		id       int64
		digest   []byte
		evidence string
	}
	var origs []orig
	for rows.Next() {
		var o orig
		if err := rows.Scan(&o.id, &o.digest, &o.evidence); err != nil {
			rows.Close()
			return err
		}
		origs = append(origs, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, o := range origs {
		if err := ctx.Err(); err != nil {
			return err
		}
		sum.Originals++
		name := fmt.Sprintf("message %d (evidence %s)", o.id, o.evidence)
		if len(o.digest) != len(blob.Digest{}) {
			report(Problem{problemOriginal, fmt.Sprintf("%s: its digest column is %d bytes, not a SHA-256", name, len(o.digest))})
			continue
		}
		err := blobs.Check(blob.Digest(o.digest))
		switch {
		case errors.Is(err, blob.ErrNotFound):
			report(Problem{problemOriginal, fmt.Sprintf("%s: its original %x is missing from the content store (removed)", name, o.digest)})
		case errors.Is(err, blob.ErrMismatch):
			report(Problem{problemOriginal, fmt.Sprintf("%s: its original %x in the content store does not match its digest (changed or replaced)", name, o.digest)})
		case err != nil:
			report(Problem{problemOriginal, fmt.Sprintf("%s: its original %x cannot be read: %v", name, o.digest, err)})
		}
	}
	return nil
}
