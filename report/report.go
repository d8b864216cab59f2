// Package report is in charge of the evidence report of one KEP message
// (issue 14, point 3): every evidence about it — ours, and what other
// providers returned — with its time in Europe/Istanbul and UTC, its
// issuer, code and meaning in Turkish and English, the digests of the
// original and of the evidence, its reason, its log index and the
// checkpoint it is in; rendered as a printable HTML page and as a PDF a
// court expert can read, with a QR code that leads to the provider's
// public verification page (package publicweb) and carries only a digest
// and a log index.
//
// The report reads through mailbox.Service with the acting principal, so
// it shows exactly what ListEvidence lets that principal read: another
// account's message is "not found", as it is everywhere else.
package report

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/tlog"
	"github.com/kephs/kep/tsa"
)

// Report is the evidence report of one message.
type Report struct {
	HeaderID   string // RFC 5322 Message-ID, without angle brackets
	Subject    string // from the original, "" when not at hand (evidence withholds it)
	Sender     evidence.Party
	Operator   *evidence.Party // the işlem yetkilisi who sent it for a legal person
	Recipients []evidence.Party
	IletiTip   string // standart, eYazisma, eTebligat
	IletiID    string
	Submitted  Time
	// OriginalDigest is the digest of the signed original the evidence
	// states, in hex, with its algorithm's name.
	OriginalDigest, DigestAlgorithm string
	Size                            int64
	Evidence                        []*Item // oldest first
	Generated                       Time    // when the report was made
	Provider                        string  // the provider that made the report (its domain)
	// QR is what the QR code encodes (VerifyURL of our first evidence), ""
	// when none of the evidence is in a checkpoint of ours yet.
	QR string
}

// Time is one instant as the report shows it: in Europe/Istanbul (the
// time users read) and in UTC (the time evidence states).
type Time struct {
	UTC, Local time.Time
}

// IsZero reports whether the time is unset.
func (t Time) IsZero() bool { return t.UTC.IsZero() }

// String writes "2026-12-07 21:05:03 (Europe/Istanbul, UTC+03:00) · 2026-12-07 18:05:03 UTC".
func (t Time) String() string {
	if t.IsZero() {
		return "—"
	}
	return t.LocalString() + " · " + t.UTCString()
}

// LocalString is the local time with its zone.
func (t Time) LocalString() string {
	return t.Local.Format("2006-01-02 15:04:05.000") + " (" + t.Local.Location().String() + ", UTC" + t.Local.Format("-07:00") + ")"
}

// UTCString is the UTC time.
func (t Time) UTCString() string { return t.UTC.Format("2006-01-02 15:04:05.000") + " UTC" }

// Item is one evidence in the report.
type Item struct {
	ID       string
	Code     evidence.Code
	LabelTR  string // the code's meaning in Turkish
	LabelEN  string // and in English
	Positive bool
	Time     Time   // the event time the evidence states
	Issuer   string // the issuing provider: name (domain)
	Foreign  bool   // issued by another provider and returned to us
	Concerns string // the recipient it concerns, "" for the whole message
	Reason   string // reasons as a person reads them ("" for most positive evidence)
	// EvidenceDigest is the SHA-256 of the signed evidence document, in
	// hex: its entry in the issuer's log (tlog.EntryFor).
	EvidenceDigest string
	OriginalDigest string // the digest of the original this evidence states, hex
	// LogIndex is the evidence's leaf index in its issuer's log; for
	// evidence another provider returned, ReceiptIndex is the leaf of our
	// receipt of it in our own log.
	LogIndex     int64
	ReceiptIndex int64
	Checkpoint   *Checkpoint // nil while no checkpoint covers it yet
	VerifyURL    string      // our public verification page for it ("" for foreign evidence)
}

// Checkpoint is the signed log checkpoint an evidence's bundle carries.
type Checkpoint struct {
	Origin  string // the log's name
	Size    int64  // tree size
	Root    string // root hash, base64 (as the signed note writes it)
	Stamped Time   // the RFC 3161 time stamp over the checkpoint
}

// ErrNotFound: no evidence about the message that the principal may read.
var ErrNotFound = errors.New("report: no evidence about this message that you may read")

// Options adjust a report.
type Options struct {
	// BaseURL is where the provider's public pages are served
	// ("https://kep.example.org"): the QR code and the verification
	// links point there.
	BaseURL string
	Now     func() time.Time
}

// maxItems bounds the evidence of one report (a message to many
// recipients has a few per recipient).
const maxItems = 2000

// Build gathers the report of the message with RFC 5322 Message-ID
// headerID (with or without angle brackets), as p may read it.
func Build(ctx context.Context, mb *mailbox.Service, p *account.Principal, headerID string, o Options) (*Report, error) {
	bare := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(headerID), "<"), ">")
	if bare == "" {
		return nil, ErrNotFound
	}
	entries, err := mb.ListEvidence(ctx, p, mailbox.EvidenceQuery{HeaderID: bare, Limit: maxItems})
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, ErrNotFound
	}
	loc := mb.Policy.Location
	if loc == nil {
		loc = mailbox.DefaultPolicy().Location
	}
	at := func(t time.Time) Time { return Time{UTC: t.UTC(), Local: t.In(loc)} }
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	r := &Report{HeaderID: bare, Generated: at(now()), Provider: mb.Domain}
	var facts *evidence.Evidence // the evidence the message's facts come from
	for _, ent := range entries {
		it, e, err := item(ctx, mb, p, ent, o.BaseURL, at)
		if err != nil {
			return nil, fmt.Errorf("evidence %s: %w", ent.ID, err)
		}
		r.Evidence = append(r.Evidence, it)
		if facts == nil || submission(e.Code) && (!submission(facts.Code) || e.EventTime.Before(facts.EventTime)) {
			facts = e
		}
	}
	sort.SliceStable(r.Evidence, func(i, j int) bool {
		a, b := r.Evidence[i], r.Evidence[j]
		if !a.Time.UTC.Equal(b.Time.UTC) {
			return a.Time.UTC.Before(b.Time.UTC)
		}
		return a.Code < b.Code
	})
	r.Sender, r.Operator, r.Recipients = facts.Sender, facts.Operator, facts.Recipients
	r.IletiTip, r.IletiID, r.Size = facts.Message.IletiTip, facts.Message.IletiID, facts.Message.Size
	r.OriginalDigest, r.DigestAlgorithm = hex.EncodeToString(facts.Message.Digest), digestName(facts.Message.DigestAlgorithm)
	if !facts.SubmissionTime.IsZero() {
		r.Submitted = at(facts.SubmissionTime)
	}
	// The subject is the original's: there only for those who hold the
	// message (a rejected one has none kept).
	if subj, err := mb.MessageSubject(ctx, p, bare); err == nil {
		r.Subject = subj
	} else if !isNotFound(err) {
		return nil, err
	}
	for _, it := range r.Evidence {
		if it.VerifyURL != "" {
			r.QR = it.VerifyURL
			break
		}
	}
	return r, nil
}

func submission(c evidence.Code) bool { return c == evidence.Accepted || c == evidence.Rejected }

func isNotFound(err error) bool {
	var rf *mailbox.Refusal
	return errors.As(err, &rf) && rf.Kind == mailbox.NotFound
}

// item reads one evidence's bundle (or, while no checkpoint covers it yet,
// the evidence alone) into an Item.
func item(ctx context.Context, mb *mailbox.Service, p *account.Principal, ent *mailbox.EvidenceEntry, base string, at func(time.Time) Time) (*Item, *evidence.Evidence, error) {
	var doc []byte
	var b *evidence.Bundle
	data, err := mb.EvidenceBundle(ctx, p, ent.Seq)
	switch {
	case errors.Is(err, evidence.ErrNotYetCheckpointed):
		st, err := mb.GetEvidence(ctx, p, ent.ID)
		if err != nil {
			return nil, nil, err
		}
		doc = st.Document
	case err != nil:
		return nil, nil, err
	default:
		if b, err = evidence.ParseBundle(data); err != nil {
			return nil, nil, err
		}
		doc = b.Evidence
	}
	e, err := evidence.Parse(doc)
	if err != nil {
		return nil, nil, err
	}
	digest := tlog.EntryFor(doc)
	it := &Item{ID: e.ID, Code: e.Code, LabelTR: e.Code.LabelTR(), LabelEN: e.Code.Label(), Positive: e.Code.Positive(),
		Time: at(e.EventTime), Issuer: issuerName(e.Issuer), Concerns: ent.Concerns, Reason: ent.Reason,
		EvidenceDigest: hex.EncodeToString(digest[:]), OriginalDigest: hex.EncodeToString(e.Message.Digest), LogIndex: ent.Seq}
	it.Foreign = !strings.EqualFold(e.Issuer.Domain, mb.Domain)
	if it.Concerns == "" && len(e.Recipients) == 1 && e.Code != evidence.Accepted && e.Code != evidence.Rejected {
		it.Concerns = e.Recipients[0].Address
	}
	if b != nil {
		it.LogIndex = b.Index
		if it.Checkpoint, err = checkpointOf(b, at); err != nil {
			return nil, nil, err
		}
	}
	if it.Foreign {
		it.ReceiptIndex = ent.Seq
	} else if it.Checkpoint != nil {
		it.VerifyURL = VerifyURL(base, digest, it.LogIndex)
	}
	return it, e, nil
}

func checkpointOf(b *evidence.Bundle, at func(time.Time) Time) (*Checkpoint, error) {
	origin, size, root, err := tlog.ParseCheckpoint(tlog.NoteBody(b.Checkpoint))
	if err != nil {
		return nil, err
	}
	cp := &Checkpoint{Origin: origin, Size: size, Root: base64.StdEncoding.EncodeToString(root[:])}
	if tok, err := tsa.ParseResponse(b.Timestamp); err == nil {
		cp.Stamped = at(tok.Time)
	}
	return cp, nil
}

func issuerName(is evidence.Issuer) string {
	switch {
	case is.Name == "":
		return is.Domain
	case is.Domain == "":
		return is.Name
	}
	return is.Name + " (" + is.Domain + ")"
}

func digestName(uri string) string {
	switch uri {
	case "", evidence.DigestSHA256:
		return "SHA-256"
	case evidence.DigestSHA384:
		return "SHA-384"
	case evidence.DigestSHA512:
		return "SHA-512"
	}
	return uri
}

// VerifyURL is the address of the public verification page for the
// evidence with log entry digest (SHA-256 of the signed document) at leaf
// index of the provider's log at base: /dogrula?d=<hex>&i=<index>. It is
// what the QR code encodes, and all it encodes: a digest reveals nothing
// of the message, and finding the evidence by it needs the evidence itself.
func VerifyURL(base string, digest [sha256.Size]byte, index int64) string {
	q := url.Values{"d": {hex.EncodeToString(digest[:])}, "i": {fmt.Sprint(index)}}
	return strings.TrimSuffix(base, "/") + "/dogrula?" + q.Encode()
}
