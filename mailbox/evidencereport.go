package mailbox

// What an evidence report (package report) reads beside the evidence list:
// the bundle of each evidence and the subject of the message, under the
// rule ListEvidence enforces (evidencelist.go): only a principal who may
// read the evidence gets it, and "not found" otherwise, so that the two
// cannot be told apart.

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/store"
)

// EvidenceBundle returns the bundle of the evidence at leaf seq of our
// log (EvidenceEntry.Seq): for our own evidence the bundle with the first
// checkpoint that covers it, for the receipt of an evidence another
// provider returned the bundle exactly as it was received.
func (s *Service) EvidenceBundle(ctx context.Context, p *account.Principal, seq int64) ([]byte, error) {
	s.init()
	if err := s.RefreshRoles(ctx, p); err != nil {
		return nil, err
	}
	st, err := evidence.GetSeq(ctx, s.DB.Q(), seq)
	if errors.Is(err, store.ErrNotFound) {
		fst, bundle, err := s.foreignItem(ctx, seq) // relayevidence.go
		if errors.Is(err, store.ErrNotFound) || (err == nil && p.Kind() != account.Staff && !p.Can(fst.AccountID, account.GrantRead)) {
			return nil, refuse(NotFound, "No evidence at leaf %d", seq)
		}
		return bundle, err
	}
	if err != nil {
		return nil, err
	}
	if !s.mayReadEvidence(ctx, p, st) {
		return nil, refuse(NotFound, "No evidence at leaf %d", seq)
	}
	if s.Bundle == nil {
		return nil, errNoBundler
	}
	return s.Bundle(ctx, seq)
}

// MessageSubject returns the subject of the message with RFC 5322
// Message-ID headerID, as its signed original says, when p may read the
// message: as its sender, or as one of its recipients here. Evidence
// withholds the subject; a report about the message shows it to those who
// hold the message anyway. It is "" once the content was deleted.
func (s *Service) MessageSubject(ctx context.Context, p *account.Principal, headerID string) (string, error) {
	s.init()
	if err := s.RefreshRoles(ctx, p); err != nil {
		return "", err
	}
	bare := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(headerID), "<"), ">")
	rows, err := s.DB.Q().Query(ctx, `SELECT `+kepMsgCols+` WHERE header_id IN (?, ?) ORDER BY id LIMIT 10`, "<"+bare+">", bare)
	if err != nil {
		return "", err
	}
	var msgs []*KEPMessage
	for rows.Next() {
		m, err := scanKEPMessage(rows)
		if err != nil {
			rows.Close()
			return "", err
		}
		msgs = append(msgs, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	for _, m := range msgs {
		if !s.mayReadMessage(ctx, p, m) {
			continue
		}
		f, err := s.Blobs.Open(m.Digest)
		if errors.Is(err, blob.ErrNotFound) {
			return "", nil // its holders deleted the content; the evidence stays
		}
		if err != nil {
			return "", err
		}
		oh, err := readOriginalHeaders(io.LimitReader(f, 256<<10))
		f.Close()
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(decodeHeader(oh.Subject)), nil
	}
	return "", refuse(NotFound, "No message %s", headerID)
}

// mayReadMessage: staff, the sender's readers, or a recipient's here.
func (s *Service) mayReadMessage(ctx context.Context, p *account.Principal, m *KEPMessage) bool {
	if p.Kind() == account.Staff || (m.SenderAccount != 0 && p.Can(m.SenderAccount, account.GrantRead)) {
		return true
	}
	ds, err := Deliveries(ctx, s.DB.Q(), m.ID)
	if err != nil {
		return false
	}
	for _, d := range ds {
		if d.AccountID != 0 && p.Can(d.AccountID, account.GrantRead) {
			return true
		}
	}
	return false
}
