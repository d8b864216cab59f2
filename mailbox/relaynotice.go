package mailbox

// The relay's late notice (docs/relay.md, "Time-outs"): when the
// recipient's provider has not accepted a message within the queue's warn
// time, the sender finds a notice in Delil. It is not evidence (no code,
// no signature, no leaf): a plain text message from the provider, stored in
// the content store and filed as a notice item.

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// RelayLateNotice places in the sender's Delil a notice that recipients rs
// of job's message have not yet been accepted by their provider, in tx
// (queue.Warner). A message without a local sender gets none.
func (s *Service) RelayLateNotice(ctx context.Context, tx *store.Tx, job *queue.Job, rs []queue.Recipient, provider string) error {
	s.init()
	msg, err := GetKEPMessage(ctx, tx, job.MessageID)
	if err != nil {
		return err
	}
	if msg.SenderAccount == 0 {
		return nil
	}
	now := s.now()
	deadline := time.Time{}
	if job.Item != nil {
		deadline = job.Item.DeadlineAt
	}
	body := s.renderLateNotice(msg, rs, provider, now, deadline)
	d, size, err := s.Blobs.Put(bytes.NewReader(body))
	if err != nil {
		return err
	}
	f, err := s.folder(ctx, tx, msg.SenderAccount, Delil)
	if err != nil {
		return err
	}
	if _, err := Append(ctx, tx, f, New{Kind: KindNotice, MessageID: msg.ID, Content: &d, Size: size, InternalDate: now}); err != nil {
		return err
	}
	s.Hub.Notify(msg.SenderAccount, f.ID)
	return nil
}

func (s *Service) renderLateNotice(msg *KEPMessage, rs []queue.Recipient, provider string, now, deadline time.Time) []byte {
	var addrs []string
	for _, r := range rs {
		addrs = append(addrs, r.Address)
	}
	var b bytes.Buffer
	writeHeader(&b, "From", fmt.Sprintf("%s <postmaster@%s>", mime.QEncoding.Encode("utf-8", s.Provider), s.Domain))
	writeHeader(&b, "To", msg.From)
	writeHeader(&b, "Date", now.In(s.Policy.Location).Format(time.RFC1123Z))
	writeHeader(&b, "Subject", mime.QEncoding.Encode("utf-8", "KEP iletiniz henüz karşı tarafa ulaşmadı / your KEP message has not reached the recipient's provider yet"))
	writeHeader(&b, "Message-ID", fmt.Sprintf("<late-%s-%d@%s>", msg.EvidenceID, now.UnixMilli(), s.Domain))
	if ref := msgIDHeader(msg.HeaderID); ref != "" {
		writeHeader(&b, "In-Reply-To", ref)
		writeHeader(&b, "References", ref)
	}
	writeHeader(&b, "X-KEP-Bildirim", "relay-late")
	writeHeader(&b, "MIME-Version", "1.0")
	writeHeader(&b, "Content-Type", "text/plain; charset=utf-8")
	writeHeader(&b, "Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	var t strings.Builder
	fmt.Fprintf(&t, "Bu bir bildirimdir, delil değildir.\n")
	fmt.Fprintf(&t, "Kabul delili %s olan iletiniz, alıcının hizmet sağlayıcısı (%s) tarafından henüz kabul edilmedi:\n", msg.EvidenceID, provider)
	fmt.Fprintf(&t, "  %s\n", strings.Join(addrs, ", "))
	if !deadline.IsZero() {
		fmt.Fprintf(&t, "Denemeye %s tarihine kadar devam edilecek; o zamana kadar iletilemezse iletilemedi delili (31) düzenlenecek.\n", s.local(deadline))
	}
	fmt.Fprintf(&t, "\nThis is a notice, not evidence.\n")
	fmt.Fprintf(&t, "Your message of acceptance evidence %s has not yet been accepted by the recipient's provider (%s) for:\n", msg.EvidenceID, provider)
	fmt.Fprintf(&t, "  %s\n", strings.Join(addrs, ", "))
	if !deadline.IsZero() {
		fmt.Fprintf(&t, "It is tried until %s; if it cannot be relayed by then, relay failure evidence (31) is issued.\n", deadline.UTC().Format(time.RFC3339))
	}
	b.WriteString(crlf(t.String()))
	return b.Bytes()
}
