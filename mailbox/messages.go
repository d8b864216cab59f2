package mailbox

import (
	"context"
	"time"

	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// KEPMessage is an accepted message (messages row).
type KEPMessage struct {
	ID            int64
	Digest        blob.Digest // SHA-256 of the signed original: its name in the content store
	Size          int64
	SenderAccount int64
	OperatorID    int64
	From          string
	SenderName    string // the sender's name at acceptance (the envelope shows it)
	HeaderID      string // RFC 5322 Message-ID
	IletiID       string // X-TR-REM-iletiID
	IletiTip      string // standart, eYazisma, eTebligat
	SubmittedAt   time.Time
	EvidenceID    string // the acceptance evidence (10)
	// EnvelopeSig is the provider's detached signature over its envelope,
	// made at acceptance (at first delivery for a large message); the envelope itself is rendered from the
	// original, the acceptance evidence and this signature (render.go).
	EnvelopeSig    []byte
	EnvelopeSize   int64
	EnvelopeParams string // JSON of envelopeParams
}

func insertMessage(ctx context.Context, q store.Querier, m *KEPMessage) error {
	id, err := store.InsertID(ctx, q, `INSERT INTO messages (digest, size, sender_account, operator_id, from_addr, sender_name, header_id, ileti_id, ileti_tip, submitted_at, evidence_id, envelope_sig, envelope_size, envelope_params)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.Digest[:], m.Size, m.SenderAccount, nullID(m.OperatorID), m.From, m.SenderName, m.HeaderID, m.IletiID, m.IletiTip, store.Millis(m.SubmittedAt), m.EvidenceID,
		m.EnvelopeSig, nullInt(m.EnvelopeSize), nullStr(m.EnvelopeParams))
	if err != nil {
		return err
	}
	m.ID = id
	return nil
}

const kepMsgCols = `id, digest, size, COALESCE(sender_account, 0), COALESCE(operator_id, 0), from_addr, sender_name, header_id, ileti_id, ileti_tip, submitted_at, evidence_id, envelope_sig, COALESCE(envelope_size, 0), COALESCE(envelope_params, '') FROM messages`

func scanKEPMessage(s interface{ Scan(...any) error }) (*KEPMessage, error) {
	var m KEPMessage
	var digest []byte
	var at int64
	if err := s.Scan(&m.ID, &digest, &m.Size, &m.SenderAccount, &m.OperatorID, &m.From, &m.SenderName, &m.HeaderID, &m.IletiID, &m.IletiTip, &at, &m.EvidenceID, &m.EnvelopeSig, &m.EnvelopeSize, &m.EnvelopeParams); err != nil {
		return nil, store.MapErr(err)
	}
	copy(m.Digest[:], digest)
	m.SubmittedAt = store.FromMillis(at)
	return &m, nil
}

// GetKEPMessage loads an accepted message.
func GetKEPMessage(ctx context.Context, q store.Querier, id int64) (*KEPMessage, error) {
	return scanKEPMessage(q.QueryRow(ctx, `SELECT `+kepMsgCols+` WHERE id = ?`, id))
}

// DeliveryState is where one recipient's copy stands for reading; where it
// travels is its transport state (queue.State), kept apart.
type DeliveryState string

const (
	Queued      DeliveryState = "queued"
	DeliveredTo DeliveryState = "delivered"
	Failed      DeliveryState = "failed"
	ReadBy      DeliveryState = "read"
	Deemed      DeliveryState = "deemed"
)

// Delivery is one recipient of a message.
type Delivery struct {
	ID          int64
	MessageID   int64
	Recipient   string
	State       DeliveryState
	Attempts    int
	NextAt      time.Time
	AccountID   int64
	DeliveredAt time.Time
	DeemedAt    time.Time
	Rule        string
	Reason      string
	Transport   queue.State // the queue's transport state
}

const deliveryCols = `id, message_id, recipient, state, attempts, next_at, COALESCE(account_id, 0), COALESCE(delivered_at, 0), COALESCE(deemed_at, 0), rule, reason, transport_state FROM deliveries`

func scanDelivery(s interface{ Scan(...any) error }) (*Delivery, error) {
	var d Delivery
	var state, transport string
	var next, delivered, deemed int64
	if err := s.Scan(&d.ID, &d.MessageID, &d.Recipient, &state, &d.Attempts, &next, &d.AccountID, &delivered, &deemed, &d.Rule, &d.Reason, &transport); err != nil {
		return nil, store.MapErr(err)
	}
	d.Transport = queue.State(transport)
	d.State, d.NextAt, d.DeliveredAt, d.DeemedAt = DeliveryState(state), store.FromMillis(next), store.FromMillis(delivered), store.FromMillis(deemed)
	return &d, nil
}

func queryDeliveries(ctx context.Context, q store.Querier, where string, args ...any) ([]*Delivery, error) {
	rows, err := q.Query(ctx, `SELECT `+deliveryCols+` `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Deliveries returns the recipients of a message.
func Deliveries(ctx context.Context, q store.Querier, messageID int64) ([]*Delivery, error) {
	return queryDeliveries(ctx, q, `WHERE message_id = ? ORDER BY id`, messageID)
}

// GetDelivery loads one delivery.
func GetDelivery(ctx context.Context, q store.Querier, id int64) (*Delivery, error) {
	return scanDelivery(q.QueryRow(ctx, `SELECT `+deliveryCols+` WHERE id = ?`, id))
}

// MessagesOf lists the messages an account sent, newest first.
func MessagesOf(ctx context.Context, q store.Querier, accountID int64, limit int) ([]*KEPMessage, error) {
	rows, err := q.Query(ctx, `SELECT `+kepMsgCols+` WHERE sender_account = ? ORDER BY id DESC LIMIT ?`, accountID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*KEPMessage
	for rows.Next() {
		m, err := scanKEPMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func nullInt(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}
