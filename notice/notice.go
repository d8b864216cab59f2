// Package notice is in charge of notices by SMS and ordinary e-mail (issue
// 13.5, docs/notices.md): which events produce one — a message placed in
// an account's mailbox, and a deemed-read or e-tebligat deadline about to
// fall on a message not yet opened —, to whom — the account's owner and
// each operator who chose a channel and holds its grant (account
// notifyprefs.go) —, through which channel — an SMS Gateway, a Mailer on
// an outbound SMTP relay —, and their rendering, which never carries
// content: the sender, the time and the deadline only, never the subject,
// the body or an attachment's name.
//
// Notices are durable: the delivery's own transaction records each one
// (Service.Enqueue) with a dedupe key (delivery, kind, channel, principal)
// and a queue item of kind notice; Service.RunDue claims due items, sends
// each once, and retries a failing gateway or relay after the queue's
// back-off until the notice is moot (docs/notices.md, "Reliability").
// Logs name destinations only masked (account.MaskPhone, MaskEmail).
package notice

import (
	"fmt"
	"strings"
	"time"

	"github.com/kephs/kep/evidence"
)

// Kind is what a notice tells.
type Kind string

const (
	// Arrival: a new message was placed in the account's mailbox.
	Arrival Kind = "arrival"
	// Deadline: a delivered message is still unopened and its deemed-read
	// (61) or e-tebligat deadline falls soon (docs/kep-rules.md, "Timing
	// rules").
	Deadline Kind = "deadline"
)

// Channel is how a notice travels.
type Channel string

const (
	SMS   Channel = "sms"
	Email Channel = "email"
)

// Notice is what a notice may say: who sent a message to which account,
// when it arrived and when it is deemed read. It has no field for the
// subject, the body or attachments, so no rendering can show them.
type Notice struct {
	Kind       Kind
	Account    string // the KEP address the message was delivered to
	SenderName string
	Sender     string // the sender's KEP address
	IletiTip   string // standart, eYazisma, eTebligat: names the deadline
	At         time.Time
	DeemedAt   time.Time // the deemed-read (or e-tebligat) deadline
	Provider   string    // the provider's name, signing the text
}

// clock is how times are shown to people: day.month.year hour:minute on
// the provider's calendar (timing.time_zone), with the zone's abbreviation.
func clock(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("02.01.2006 15:04 MST")
}

func (n *Notice) sender() string {
	if n.SenderName == "" {
		return n.Sender
	}
	return n.SenderName + " <" + n.Sender + ">"
}

// deemedTR and deemedEN name what happens at the deadline.
func (n *Notice) deemed() (tr, en string) {
	if n.IletiTip == evidence.IletiTipETebligat {
		return "tebliğ edilmiş sayılır", "it is deemed served (e-tebligat)"
	}
	return "okunmuş sayılır", "it is deemed read"
}

// SMSText is the notice as one SMS, in Turkish (an SMS carries little).
func (n *Notice) SMSText(loc *time.Location) string {
	tr, _ := n.deemed()
	switch n.Kind {
	case Deadline:
		return fmt.Sprintf("KEP %s: %s adresinden %s tarihinde gelen ileti henüz açılmadı; açılmazsa %s tarihinde %s. %s",
			n.Account, n.sender(), clock(n.At, loc), clock(n.DeemedAt, loc), tr, n.Provider)
	default:
		return fmt.Sprintf("KEP %s: %s adresinden yeni ileti, %s. Açılmazsa %s tarihinde %s. %s",
			n.Account, n.sender(), clock(n.At, loc), clock(n.DeemedAt, loc), tr, n.Provider)
	}
}

// MailText is the notice as an e-mail's subject and plain text, in
// Turkish and English.
func (n *Notice) MailText(loc *time.Location) (subject, text string) {
	tr, en := n.deemed()
	var b strings.Builder
	switch n.Kind {
	case Deadline:
		subject = fmt.Sprintf("KEP: açılmamış ileti, süre doluyor / unopened message, deadline near (%s)", n.Account)
		fmt.Fprintf(&b, "%s KEP adresinize gelen ileti henüz açılmadı.\n", n.Account)
		fmt.Fprintf(&b, "Açılmazsa %s tarihinde %s.\n\n", clock(n.DeemedAt, loc), tr)
	default:
		subject = fmt.Sprintf("KEP: yeni ileti / new message (%s)", n.Account)
		fmt.Fprintf(&b, "%s KEP adresinize yeni bir ileti geldi.\n", n.Account)
		fmt.Fprintf(&b, "Açılmazsa %s tarihinde %s.\n\n", clock(n.DeemedAt, loc), tr)
	}
	fmt.Fprintf(&b, "Gönderen / sender:  %s\n", n.sender())
	fmt.Fprintf(&b, "Geliş / delivered:  %s\n", clock(n.At, loc))
	fmt.Fprintf(&b, "Süre sonu / deadline: %s (%s)\n\n", clock(n.DeemedAt, loc), en)
	b.WriteString("İletiyi KEP hesabınızdan okuyabilirsiniz; bu bildirim içeriğini taşımaz.\n")
	b.WriteString("Read the message in your KEP account; this notice does not carry its content.\n\n")
	fmt.Fprintf(&b, "-- \n%s\n", n.Provider)
	return subject, b.String()
}
