package mailbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/kephs/kep/blob"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/store"
)

// Headers of the original that the envelope repeats.
type originalHeaders struct {
	From, To, Cc, Subject, Date, MessageID string
}

func readOriginalHeaders(r io.Reader) (originalHeaders, error) {
	m, err := mail.ReadMessage(io.LimitReader(r, 1<<20))
	if err != nil {
		return originalHeaders{}, fmt.Errorf("read the original's header: %w", err)
	}
	h := m.Header
	return originalHeaders{From: h.Get("From"), To: h.Get("To"), Cc: h.Get("Cc"), Subject: h.Get("Subject"), Date: h.Get("Date"), MessageID: h.Get("Message-Id")}, nil
}

// istanbul is the calendar shown to people (times in evidence stay UTC).
func (s *Service) local(t time.Time) string {
	return t.In(s.Policy.Location).Format("02.01.2006 15:04:05 MST")
}

// The provider's envelope (EN 319 532-3 layout; PEC's "busta di trasporto",
// RFC 6109 §3.1.1): multipart/signed by the provider, containing
// multipart/mixed with a human-readable introduction in Turkish and
// English, the acceptance evidence as XML, and the signed original, byte
// for byte, as message/rfc822. Its headers carry X-TR-REM-iletiTip and
// X-TR-REM-iletiID. It is the same for every recipient, and it is not
// stored: it is rendered, the same bytes every time, from the original,
// the acceptance evidence and the signature made at acceptance (at first
// delivery for a large message) — so a
// message costs its original once in the content store, whatever its size
// and its number of recipients.

// envelopeParams are the settings an envelope was rendered with, kept with
// the message so that a later change of configuration (the provider's
// name, the time zone) cannot change an envelope already signed.
type envelopeParams struct {
	Provider string `json:"provider"`
	Domain   string `json:"domain"`
	TimeZone string `json:"tz"`
}

func (s *Service) currentParams() envelopeParams {
	return envelopeParams{Provider: s.Provider, Domain: s.Domain, TimeZone: s.Policy.Location.String()}
}

// entityBufs holds the buffers signEnvelope renders entities into: the
// entity (the original, the acceptance evidence in base64 and the
// introduction, about 3 times the evidence plus the original) is hashed
// for the signature, counted and dropped, so its buffer serves the next
// message instead of being allocated again (about 28 KB per 10 KB message).
var entityBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// envelopeParts builds the envelope's outer header and the signed entity,
// which is rendered into b (reset first) and may share its bytes.
func (s *Service) envelopeParts(ctx context.Context, msg *KEPMessage, p envelopeParams, fresh *freshMessage, b *bytes.Buffer) (hdr, entity []byte, err error) {
	loc := s.Policy.Location
	if loc == nil || p.TimeZone != loc.String() { // an envelope signed under an earlier setting
		if loc, err = time.LoadLocation(p.TimeZone); err != nil {
			return nil, nil, fmt.Errorf("message %d: envelope time zone: %w", msg.ID, err)
		}
	}
	var original, accepted []byte
	if fresh != nil {
		original, accepted = fresh.original, fresh.accepted
	} else {
		if original, err = s.Blobs.ReadVerified(msg.Digest); err != nil {
			return nil, nil, fmt.Errorf("the original of message %d: %w", msg.ID, err)
		}
		acc, err := evidence.Get(ctx, s.DB.Q(), msg.EvidenceID)
		if err != nil {
			return nil, nil, fmt.Errorf("the acceptance evidence of message %d: %w", msg.ID, err)
		}
		accepted = acc.Document
	}
	oh, err := readOriginalHeaders(bytes.NewReader(original))
	if err != nil {
		return nil, nil, err
	}
	senderName := msg.SenderName
	boundary := "kep-mixed-" + strings.ReplaceAll(msg.EvidenceID, "-", "")
	b.Reset()
	b.Grow(len(original) + len(accepted)*2 + 4096)
	fmt.Fprintf(b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	b.WriteString(crlf(introduction(msg, senderName, oh, p.Provider, loc)))
	fmt.Fprintf(b, "\r\n--%s\r\nContent-Type: application/xml; charset=utf-8; name=\"delil-kabul.xml\"\r\n", boundary)
	b.WriteString("Content-Disposition: attachment; filename=\"delil-kabul.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	writeBase64(b, accepted)
	fmt.Fprintf(b, "--%s\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"ileti.eml\"\r\n\r\n", boundary)
	b.Write(original)
	if !bytes.HasSuffix(original, []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	fmt.Fprintf(b, "--%s--\r\n", boundary)
	if entity, err = cms.Canonical(b.Bytes()); err != nil {
		return nil, nil, err
	}

	var h bytes.Buffer
	writeHeader(&h, "From", oh.From)
	writeHeader(&h, "Sender", fmt.Sprintf("%s <postmaster@%s>", mime.QEncoding.Encode("utf-8", p.Provider), p.Domain))
	writeHeader(&h, "Reply-To", msg.From)
	writeHeader(&h, "To", oh.To)
	if oh.Cc != "" {
		writeHeader(&h, "Cc", oh.Cc)
	}
	writeHeader(&h, "Subject", "KEP: "+decodeHeader(oh.Subject))
	writeHeader(&h, "Date", msg.SubmittedAt.In(loc).Format(time.RFC1123Z))
	writeHeader(&h, "Message-ID", "<"+msg.EvidenceID+"@"+p.Domain+">")
	if oh.MessageID != "" {
		writeHeader(&h, "X-Original-Message-ID", oh.MessageID)
	}
	writeHeader(&h, "X-TR-REM-iletiTip", msg.IletiTip)
	writeHeader(&h, "X-TR-REM-iletiID", msg.IletiID)
	writeHeader(&h, "MIME-Version", "1.0")
	return h.Bytes(), entity, nil
}

// signEnvelope makes the envelope's signature (once per message) and
// returns it with the envelope's size.
func (s *Service) signEnvelope(ctx context.Context, msg *KEPMessage, fresh *freshMessage) ([]byte, int64, string, error) {
	if msg.EnvelopeSig != nil {
		return msg.EnvelopeSig, msg.EnvelopeSize, msg.EnvelopeParams, nil
	}
	if msg.Foreign() { // the envelope as received, signed by its provider (relay.go)
		return nil, msg.Size, "", nil
	}
	p := s.currentParams()
	pj, err := json.Marshal(p)
	if err != nil {
		return nil, 0, "", err
	}
	b := entityBufs.Get().(*bytes.Buffer)
	defer func() { // nothing below keeps the entity
		if b.Cap() <= 1<<20 { // a large message's buffer is not held on to
			entityBufs.Put(b)
		}
	}()
	hdr, entity, err := s.envelopeParts(ctx, msg, p, fresh, b)
	if err != nil {
		return nil, 0, "", err
	}
	sig, err := cms.SignDetached(entity, s.SignerKey, s.SignerCert, s.SignerChain)
	if err != nil {
		return nil, 0, "", fmt.Errorf("sign the envelope: %w", err)
	}
	var n countWriter
	if err := s.writeEnvelope(&n, msg, hdr, entity, sig); err != nil {
		return nil, 0, "", err
	}
	return sig, int64(n), string(pj), nil
}

func (s *Service) writeEnvelope(w io.Writer, msg *KEPMessage, hdr, entity, sig []byte) error {
	boundary, err := cms.Boundary(entity, "envelope "+msg.EvidenceID)
	if err != nil {
		return err
	}
	return cms.WriteSignedParts(w, hdr, entity, sig, boundary)
}

// renderEnvelope returns the envelope of an accepted message.
func (s *Service) renderEnvelope(ctx context.Context, messageID int64) ([]byte, error) {
	msg, err := GetKEPMessage(ctx, s.DB.Q(), messageID)
	if err != nil {
		return nil, err
	}
	if msg.Foreign() { // the envelope as received, signed by its provider (relay.go)
		return s.Blobs.ReadVerified(msg.Digest)
	}
	if msg.EnvelopeSig == nil {
		return nil, fmt.Errorf("message %d has not been delivered yet", messageID)
	}
	var p envelopeParams
	if err := json.Unmarshal([]byte(msg.EnvelopeParams), &p); err != nil {
		return nil, fmt.Errorf("message %d: envelope parameters: %w", messageID, err)
	}
	hdr, entity, err := s.envelopeParts(ctx, msg, p, nil, new(bytes.Buffer))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(hdr) + len(entity) + 2*len(msg.EnvelopeSig) + 512)
	if err := s.writeEnvelope(&b, msg, hdr, entity, msg.EnvelopeSig); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func introduction(msg *KEPMessage, senderName string, oh originalHeaders, provider string, loc *time.Location) string {
	var b strings.Builder
	when := msg.SubmittedAt.In(loc).Format("02.01.2006 15:04:05 MST")
	fmt.Fprintf(&b, "Bu ileti Kayıtlı Elektronik Posta (KEP) sistemi üzerinden iletilmiştir.\n\n")
	fmt.Fprintf(&b, "Gönderen:      %s (%s)\n", msg.From, senderName)
	fmt.Fprintf(&b, "Kabul zamanı:  %s\n", when)
	fmt.Fprintf(&b, "İleti türü:    %s\n", msg.IletiTip)
	fmt.Fprintf(&b, "İleti kimliği: %s\n", msg.IletiID)
	fmt.Fprintf(&b, "Konu:          %s\n\n", decodeHeader(oh.Subject))
	fmt.Fprintf(&b, "Gönderenin elektronik imzalı özgün iletisi ekteki ileti.eml dosyasındadır; %s\n", provider)
	fmt.Fprintf(&b, "tarafından imzalanan kabul delili delil-kabul.xml dosyasındadır. Bu zarf %s\n", provider)
	fmt.Fprintf(&b, "tarafından imzalanmıştır.\n\n")
	fmt.Fprintf(&b, "This message was delivered through the Registered Electronic Mail (KEP)\nsystem.\n\n")
	fmt.Fprintf(&b, "Sender:        %s (%s)\n", msg.From, senderName)
	fmt.Fprintf(&b, "Accepted at:   %s\n", when)
	fmt.Fprintf(&b, "Message type:  %s\n", msg.IletiTip)
	fmt.Fprintf(&b, "Message id:    %s\n\n", msg.IletiID)
	fmt.Fprintf(&b, "The sender's e-signed original is attached as ileti.eml; the acceptance\n")
	fmt.Fprintf(&b, "evidence signed by %s is attached as delil-kabul.xml. This envelope is\n", provider)
	fmt.Fprintf(&b, "signed by %s.\n", provider)
	return b.String()
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// lineBreaks are replaced by spaces in a header value.
var lineBreaks = strings.NewReplacer("\r", " ", "\n", " ")

func writeHeader(b *bytes.Buffer, name, value string) {
	value = lineBreaks.Replace(value)
	if !isASCII(value) && name != "From" && name != "To" && name != "Cc" {
		value = mime.QEncoding.Encode("utf-8", value)
	}
	b.WriteString(name)
	b.WriteString(": ")
	b.WriteString(value)
	b.WriteString("\r\n")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func decodeHeader(s string) string {
	d, err := new(mime.WordDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

func writeBase64(b *bytes.Buffer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
}

// renderNotice is the provider's quota notice (docs/kep-rules.md, "Accounts":
// warn at 80/90/100 % before it bites). It is rendered from the level and
// time alone, so it needs no storage of its own.
func renderNotice(domain, provider, addr string, level int, at time.Time) []byte {
	var b bytes.Buffer
	writeHeader(&b, "From", fmt.Sprintf("%s <postmaster@%s>", mime.QEncoding.Encode("utf-8", provider), domain))
	writeHeader(&b, "To", addr)
	writeHeader(&b, "Date", at.Format(time.RFC1123Z))
	writeHeader(&b, "Subject", fmt.Sprintf("KEP kota uyarısı / quota warning: %%%d", level))
	writeHeader(&b, "Message-ID", fmt.Sprintf("<quota-%d-%d@%s>", level, at.UnixMilli(), domain))
	writeHeader(&b, "MIME-Version", "1.0")
	writeHeader(&b, "Content-Type", "text/plain; charset=utf-8")
	writeHeader(&b, "Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	text := fmt.Sprintf("KEP hesabınız %s, kotasının %%%d'ine ulaştı.\n", addr, level)
	if level >= 100 {
		text += "Kota doldu: yeni gelen iletiler teslim edilemeyecek ve göndericilerine teslim edilemedi delili (41) gidecek.\n"
	}
	text += "Yer açmak için eski iletileri silin ya da arşivleyin; ek kota hizmet sağlayıcınızdan alınabilir.\n\n"
	text += fmt.Sprintf("Your KEP account %s has reached %d%% of its quota.\n", addr, level)
	if level >= 100 {
		text += "The mailbox is full: new messages cannot be delivered and their senders receive non-delivery evidence (41).\n"
	}
	text += "Delete or archive old messages to make room; more quota is available from your provider.\n"
	b.WriteString(crlf(text))
	return b.Bytes()
}

// renderEvidenceItem is the message in the Delil folder for one evidence:
// a short text in Turkish and English, the evidence XML and its bundle. It
// is rendered from the evidence store, the same bytes every time.
func (s *Service) renderEvidenceItem(ctx context.Context, seq int64, to string) ([]byte, error) {
	st, err := evidence.GetSeq(ctx, s.DB.Q(), seq)
	var bundle []byte
	if errors.Is(err, store.ErrNotFound) {
		st, bundle, err = s.foreignItem(ctx, seq) // returned by another provider (relayevidence.go)
	}
	if err != nil {
		return nil, err
	}
	e, err := evidence.Parse(st.Document)
	if err != nil {
		return nil, err
	}
	if s.Bundle != nil && bundle == nil {
		if bundle, err = s.Bundle(ctx, seq); err != nil {
			return nil, err
		}
	}
	id := e.ID
	concerning := e.Message.IletiID
	if len(e.Recipients) == 1 {
		concerning = e.Recipients[0].Address
	}
	// The item names the message it proves, so that a mail client shows
	// which message each item is about and threads it with the sent
	// message: the subject as the sender wrote it, from the sender's own
	// Sent copy (never from the evidence, which does not carry it), and
	// In-Reply-To / References to the original's Message-ID (RFC 5322
	// §3.6.4).
	subject, origID := "", e.Message.MessageID
	if st.MessageID != 0 {
		var id string
		if subject, id = s.sentHeader(ctx, st.AccountID, st.MessageID); id != "" {
			origID = id
		}
	}
	title := fmt.Sprintf("KEP delil %d: %s / %s — %s", int(e.Code), e.Code.LabelTR(), e.Code.Label(), concerning)
	if subject != "" {
		title = fmt.Sprintf("%s [KEP delil %d: %s / %s — %s]", subject, int(e.Code), e.Code.LabelTR(), e.Code.Label(), concerning)
	}
	var b bytes.Buffer
	writeHeader(&b, "From", fmt.Sprintf("%s <delil@%s>", mime.QEncoding.Encode("utf-8", s.Provider+" Delil"), s.Domain))
	writeHeader(&b, "To", to)
	writeHeader(&b, "Date", e.EventTime.In(s.Policy.Location).Format(time.RFC1123Z))
	writeHeader(&b, "Subject", title)
	writeHeader(&b, "Message-ID", "<delil-"+id+"@"+s.Domain+">")
	if ref := msgIDHeader(origID); ref != "" {
		writeHeader(&b, "In-Reply-To", ref)
		writeHeader(&b, "References", ref)
	}
	writeHeader(&b, "X-KEP-Delil-Kodu", fmt.Sprint(int(e.Code)))
	writeHeader(&b, "X-KEP-Delil-ID", id)
	if e.Message.IletiID != "" {
		writeHeader(&b, "X-TR-REM-iletiID", e.Message.IletiID)
	}
	writeHeader(&b, "MIME-Version", "1.0")
	boundary := "delil-" + strings.ReplaceAll(id, "-", "")
	writeHeader(&b, "Content-Type", fmt.Sprintf("multipart/mixed; boundary=%q", boundary))
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	var t strings.Builder
	fmt.Fprintf(&t, "Delil %d: %s\n", int(e.Code), e.Code.LabelTR())
	fmt.Fprintf(&t, "Zaman:          %s\n", s.local(e.EventTime))
	fmt.Fprintf(&t, "Gönderen:       %s\n", e.Sender.Address)
	for _, r := range e.Recipients {
		fmt.Fprintf(&t, "Alıcı:          %s\n", r.Address)
	}
	if e.Message.IletiID != "" {
		fmt.Fprintf(&t, "İleti kimliği:  %s\n", e.Message.IletiID)
	}
	for _, r := range e.Reasons {
		fmt.Fprintf(&t, "Gerekçe:        %s\n", r.Text)
	}
	fmt.Fprintf(&t, "Delil kimliği:  %s\n\n", id)
	fmt.Fprintf(&t, "Evidence %d: %s, at %s.\n", int(e.Code), e.Code.Label(), e.EventTime.UTC().Format(time.RFC3339))
	t.WriteString("The evidence XML is attached, signed by the provider, with its bundle\n(delil-" + id + ".zip): verify it offline with `kep verify`.\n")
	b.WriteString(crlf(t.String()))
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: application/xml; charset=utf-8; name=\"delil-%s.xml\"\r\n", boundary, id)
	fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"delil-%s.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", id)
	writeBase64(&b, st.Document)
	if bundle != nil {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; name=\"delil-%s.zip\"\r\n", boundary, evidence.BundleMediaType, id)
		fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"delil-%s.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", id)
		writeBase64(&b, bundle)
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes(), nil
}

// sentHeader returns the subject and Message-ID of KEP message messageID as
// its sender wrote them, read from the header of the sender's own Sent
// copy; when that copy was deleted, from the signed original the provider
// still keeps (the same bytes). They are "" when neither is at hand.
func (s *Service) sentHeader(ctx context.Context, accountID, messageID int64) (subject, msgID string) {
	var content []byte
	err := s.DB.Q().QueryRow(ctx, `SELECT mm.content FROM mailbox_messages mm JOIN mailboxes f ON f.id = mm.mailbox_id
		WHERE mm.message_id = ? AND mm.kind = 'sent' AND f.account_id = ? AND mm.content IS NOT NULL ORDER BY mm.id LIMIT 1`, messageID, accountID).Scan(&content)
	var d blob.Digest
	if err == nil && len(content) == len(d) {
		copy(d[:], content)
	} else if msg, err := GetKEPMessage(ctx, s.DB.Q(), messageID); err == nil && msg.SenderAccount == accountID {
		d = msg.Digest
	} else {
		return "", ""
	}
	f, err := s.Blobs.Open(d)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	oh, err := readOriginalHeaders(io.LimitReader(f, 256<<10))
	if err != nil {
		return "", ""
	}
	return strings.TrimSpace(decodeHeader(oh.Subject)), strings.TrimSpace(oh.MessageID)
}

// msgIDHeader spells a Message-ID with its angle brackets, or "" when it is
// not one.
func msgIDHeader(id string) string {
	id = strings.TrimSpace(id)
	if id == "" || strings.ContainsAny(id, " \r\n") {
		return ""
	}
	if !strings.HasPrefix(id, "<") {
		id = "<" + id + ">"
	}
	return id
}

// Content returns the bytes of a mailbox message: from the content store,
// or rendered for evidence items and notices.
func (s *Service) Content(ctx context.Context, m *Message) ([]byte, error) {
	s.init()
	switch {
	case m.Kind == KindKEP && m.MessageID != 0:
		return s.renderEnvelope(ctx, m.MessageID)
	case m.HasContent:
		b, err := s.Blobs.ReadVerified(m.Content)
		if errors.Is(err, blob.ErrNotFound) {
			return nil, fmt.Errorf("the content of this message was deleted: %w", err)
		}
		return b, err
	case m.Kind == KindEvidence || m.Kind == KindNotice:
		f, err := GetFolderByID(ctx, s.DB.Q(), m.FolderID)
		if err != nil {
			return nil, err
		}
		a, err := store.GetAccount(ctx, s.DB.Q(), f.AccountID)
		if err != nil {
			return nil, err
		}
		if m.Kind == KindNotice {
			return renderNotice(s.Domain, s.Provider, a.Address, int(m.Ref), m.InternalDate), nil
		}
		b, err := s.renderEvidenceItem(ctx, m.Ref, a.Address)
		if err != nil {
			return nil, err
		}
		if m.Size < 0 {
			_, _ = s.DB.Q().Exec(ctx, `UPDATE mailbox_messages SET size = ? WHERE id = ?`, len(b), m.ID)
			m.Size = int64(len(b))
		}
		return b, nil
	}
	return nil, errors.New("mailbox: message has no content")
}

// Size returns a message's size, rendering an evidence item the first time.
func (s *Service) Size(ctx context.Context, m *Message) (int64, error) {
	if m.Size >= 0 {
		return m.Size, nil
	}
	b, err := s.Content(ctx, m)
	if err != nil {
		return 0, err
	}
	return int64(len(b)), nil
}
