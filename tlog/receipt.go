package tlog

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"time"
)

// ReceiptFormat opens the text of a receipt leaf (docs/relay.md, "Data
// model").
const ReceiptFormat = "kep-receipt/1"

// ReceiptDocument is the text a receipt leaf stands for: this provider
// received, from provider, the evidence evidenceID as a bundle with the
// given bytes, at the given time (kept to the millisecond, as stored). One
// item per line:
//
//	kep-receipt/1
//	hs02
//	<evidence id>
//	<hex SHA-256 of the bundle>
//	2026-12-07T21:40:00.123Z
//
// As for an evidence document, the log entry is its SHA-256 (EntryFor),
// and the leaf the RFC 6962 leaf hash of that entry (LeafHash).
func ReceiptDocument(provider, evidenceID string, bundle []byte, at time.Time) []byte {
	sum := sha256.Sum256(bundle)
	return fmt.Appendf(nil, "%s\n%s\n%s\n%x\n%s\n", ReceiptFormat, provider, evidenceID, sum,
		at.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00"))
}

// LeafKind says what a leaf of the log stands for.
type LeafKind string

const (
	// LeafEvidence: an evidence this provider signed (the evidence table).
	LeafEvidence LeafKind = ""
	// LeafReceipt: the receipt of evidence another provider returned
	// (foreign_evidence), its document a ReceiptDocument.
	LeafReceipt LeafKind = "receipt"
)

// MergeAuditReaders reads leaves of every kind for Audit: each reader
// returns the rows of its own table, and the merge is in leaf order.
func MergeAuditReaders(readers ...AuditReader) AuditReader {
	return func(ctx context.Context, start, end int64) ([]AuditEntry, error) {
		var all []AuditEntry
		for _, r := range readers {
			es, err := r(ctx, start, end)
			if err != nil {
				return nil, err
			}
			all = append(all, es...)
		}
		sort.SliceStable(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
		return all, nil
	}
}
