package evidence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

// Stage is the step of a message's life an evidence is about.
type Stage string

const (
	StageSubmission Stage = "submission" // 10, 11
	StageRelay      Stage = "relay"      // 20, 21, 31
	StageDelivery   Stage = "delivery"   // 40, 41
	StageRetrieval  Stage = "retrieval"  // 60, 61
)

// StageOf returns the stage of a code.
func StageOf(c Code) Stage {
	switch c {
	case Accepted, Rejected:
		return StageSubmission
	case RelayAccepted, RelayRejected, RelayFailure:
		return StageRelay
	case Delivered, NotDelivered:
		return StageDelivery
	}
	return StageRetrieval
}

// Record is an evidence to issue, with what the store files it under.
type Record struct {
	Evidence  *Evidence
	AccountID int64  // the account whose evidence folder (Delil) it reaches; 0 for none
	MessageID int64  // the message it is about; 0 for none (a rejected submission)
	Subject   string // the recipient it concerns; "" for the whole message

	// Set by Issue.
	Document []byte // the signed XML document
	Seq      int64  // its leaf index in the log
	stored   []byte // Document as stored (Encode)
	format   int64
}

// IssuerService issues evidence: it signs each document, appends its digest
// to the log and stores it, in the same transaction as the caller's own
// writes (the message, the mailbox entry): no evidence without its log
// entry, no accepted message without its evidence.
type IssuerService struct {
	Signer   *Signer
	Log      *tlog.Log
	Issuer   Issuer
	PolicyID string
	Now      func() time.Time
	// Dict compresses stored evidence (EnsureDict); nil stores it raw.
	Dict    *Dict
	Metrics *Metrics // nil counts nothing
	// Ready, when set, says whether the provider can stand behind evidence
	// signed now: its certificate valid, its time stamps coming (issue
	// 9.3). A non-nil error (a *NotReadyError) refuses every issue.
	Ready func(now time.Time) error
}

// ErrNotReady is wrapped by the error of an issue refused because the
// provider cannot stand behind evidence right now: nothing was signed, and
// the caller answers a temporary failure (451) with no rejection evidence.
var ErrNotReady = errors.New("evidence: the provider cannot issue evidence now")

// NotReadyError names the key or service that stops the issuer, and why,
// in words for the operator (never personal data).
type NotReadyError struct {
	Key    string // "provider", "tsa", "log"
	Reason string // "the provider certificate expired at 2026-12-07T10:00:00Z"
}

func (e *NotReadyError) Error() string {
	return "evidence is not issued: " + e.Reason + " (key " + e.Key + ")"
}

func (e *NotReadyError) Unwrap() error { return ErrNotReady }

// CheckReady returns the error of Ready at the issuer's clock, or nil.
func (s *IssuerService) CheckReady() error {
	if s.Ready == nil {
		return nil
	}
	return s.Ready(s.now())
}

// ErrAlreadyIssued is returned when the store already holds a delivery or
// retrieval evidence for the same message and recipient.
var ErrAlreadyIssued = errors.New("evidence: this evidence was issued already")

// Prepare signs and encodes recs without logging them, for a caller that
// needs the signed documents before the transaction that logs them (the
// envelope carries the acceptance evidence). Issue then logs them as they
// are.
func (s *IssuerService) Prepare(recs []*Record) error {
	if err := s.CheckReady(); err != nil {
		return err
	}
	for _, r := range recs {
		if err := s.prepare(r); err != nil {
			return err
		}
	}
	return nil
}

func (s *IssuerService) prepare(r *Record) error {
	if r.Document != nil && r.stored != nil {
		return nil
	}
	e := r.Evidence
	if e.ID == "" {
		e.ID = NewID()
	}
	if e.EventTime.IsZero() {
		e.EventTime = s.now()
	}
	if e.Issuer == (Issuer{}) {
		e.Issuer = s.Issuer
	}
	if e.IssuerPolicyID == "" {
		e.IssuerPolicyID = s.PolicyID
	}
	doc, err := s.Signer.Sign(e)
	if err != nil {
		return err
	}
	r.Document = doc
	// Compressed here, by the caller's goroutine, not in the log's
	// sequencer: the commit path stays short.
	r.format, r.stored = Encode(doc, s.Dict)
	return nil
}

// Issue signs and logs recs. write, when not nil, runs first in the same
// transaction and may fill the records' MessageID. Issue fills each
// record's Document and Seq.
func (s *IssuerService) Issue(ctx context.Context, recs []*Record, write func(ctx context.Context, tx *store.Tx) error) error {
	return s.IssueWhen(ctx, recs, nil, write)
}

// IssueWhen is Issue for records that must not be logged before pre holds
// (tlog.AppendWhen): the acceptance of a message waits for its original's
// sync, while the log commits the batches of others.
func (s *IssuerService) IssueWhen(ctx context.Context, recs []*Record, pre tlog.Precondition, write func(ctx context.Context, tx *store.Tx) error) error {
	if err := s.CheckReady(); err != nil {
		return err
	}
	entries := make([][32]byte, len(recs))
	for i, r := range recs {
		if err := s.prepare(r); err != nil {
			return err
		}
		entries[i] = tlog.EntryFor(r.Document)
	}
	_, err := s.Log.AppendWhen(ctx, entries, pre, func(ctx context.Context, tx *store.Tx, first int64) error {
		if write != nil {
			if err := write(ctx, tx); err != nil {
				return err
			}
		}
		for i, r := range recs {
			r.Seq = first + int64(i)
		}
		return insert(ctx, tx, recs)
	})
	s.Metrics.count(recs, err)
	return err
}

func (s *IssuerService) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// insertCols is the evidence row insert, one "(?, …)" per record.
const insertCols = `INSERT INTO evidence (seq, id, code, stage, account_id, message_id, subject, event_time, format, xml) VALUES `

// insert stores recs in one multi-row statement (an acceptance with local
// delivery logs its 10 and 40 together): one statement per batch of a
// message instead of one per evidence, and a cached statement for each
// small count.
func insert(ctx context.Context, tx *store.Tx, recs []*Record) error {
	if len(recs) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(insertCols)
	args := make([]any, 0, 10*len(recs))
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		e := r.Evidence
		args = append(args, r.Seq, e.ID, int(e.Code), string(StageOf(e.Code)), nullID(r.AccountID), nullID(r.MessageID), r.Subject, store.Millis(e.EventTime), r.format, r.stored)
	}
	_, err := tx.Exec(ctx, b.String(), args...)
	if errors.Is(err, store.ErrConflict) && strings.Contains(err.Error(), "evidence_once") || errors.Is(err, store.ErrConflict) && strings.Contains(err.Error(), "evidence.message_id") {
		what := make([]string, len(recs))
		for i, r := range recs {
			what[i] = fmt.Sprintf("%s for %s", r.Evidence.Code, r.Subject)
		}
		return fmt.Errorf("%w: %s", ErrAlreadyIssued, strings.Join(what, ", "))
	}
	return err
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Stored is an evidence as the store holds it.
type Stored struct {
	Seq       int64
	ID        string
	Code      Code
	Stage     Stage
	AccountID int64
	MessageID int64
	Subject   string
	EventTime time.Time
	Document  []byte
}

const storedCols = `seq, id, code, stage, COALESCE(account_id, 0), COALESCE(message_id, 0), subject, event_time, format, xml FROM evidence`

func scanStored(ctx context.Context, q store.Querier, s interface{ Scan(...any) error }) (*Stored, error) {
	var st Stored
	var code int
	var format int64
	var stage string
	var at int64
	var data []byte
	if err := s.Scan(&st.Seq, &st.ID, &code, &stage, &st.AccountID, &st.MessageID, &st.Subject, &at, &format, &data); err != nil {
		return nil, store.MapErr(err)
	}
	doc, err := Decode(ctx, q, format, data)
	if err != nil {
		return nil, fmt.Errorf("evidence %d: %w", st.Seq, err)
	}
	st.Code, st.Stage, st.EventTime, st.Document = Code(code), Stage(stage), store.FromMillis(at), doc
	return &st, nil
}

func queryStored(ctx context.Context, q store.Querier, where string, args ...any) ([]*Stored, error) {
	rows, err := q.Query(ctx, `SELECT `+storedCols+` `+where, args...)
	if err != nil {
		return nil, err
	}
	type raw struct {
		st     Stored
		code   int
		format int64
		data   []byte
		stage  string
		at     int64
	}
	var rs []raw
	for rows.Next() {
		var r raw
		if err := rows.Scan(&r.st.Seq, &r.st.ID, &r.code, &r.stage, &r.st.AccountID, &r.st.MessageID, &r.st.Subject, &r.at, &r.format, &r.data); err != nil {
			rows.Close()
			return nil, err
		}
		rs = append(rs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Decode after the rows are closed: a dictionary may have to be read.
	out := make([]*Stored, len(rs))
	for i := range rs {
		r := &rs[i]
		doc, err := Decode(ctx, q, r.format, r.data)
		if err != nil {
			return nil, fmt.Errorf("evidence %d: %w", r.st.Seq, err)
		}
		r.st.Code, r.st.Stage, r.st.EventTime, r.st.Document = Code(r.code), Stage(r.stage), store.FromMillis(r.at), doc
		out[i] = &r.st
	}
	return out, nil
}

// Get returns a stored evidence by its identifier.
func Get(ctx context.Context, q store.Querier, id string) (*Stored, error) {
	return scanStored(ctx, q, q.QueryRow(ctx, `SELECT `+storedCols+` WHERE id = ?`, id))
}

// GetSeq returns a stored evidence by its leaf index.
func GetSeq(ctx context.Context, q store.Querier, seq int64) (*Stored, error) {
	return scanStored(ctx, q, q.QueryRow(ctx, `SELECT `+storedCols+` WHERE seq = ?`, seq))
}

// ByMessage returns every evidence about a message, in log order.
func ByMessage(ctx context.Context, q store.Querier, messageID int64) ([]*Stored, error) {
	return queryStored(ctx, q, `WHERE message_id = ? ORDER BY seq`, messageID)
}

// Range returns the evidences with leaf indexes in [start, end), in order.
func Range(ctx context.Context, q store.Querier, start, end int64) ([]*Stored, error) {
	return queryStored(ctx, q, `WHERE seq >= ? AND seq < ? ORDER BY seq`, start, end)
}

// Entries returns the log entries (document digests) of [start, end), for
// the log's public entry bundles.
func Entries(ctx context.Context, q store.Querier, start, end int64) ([][]byte, error) {
	sts, err := Range(ctx, q, start, end)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(sts))
	for i, st := range sts {
		if st.Seq != start+int64(i) {
			return nil, fmt.Errorf("evidence: leaf %d is missing from the store", start+int64(i))
		}
		e := tlog.EntryFor(st.Document)
		out[i] = e[:]
	}
	return out, nil
}
