package tlog

import (
	"crypto/sha256"
	"fmt"
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
