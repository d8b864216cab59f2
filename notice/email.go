package notice

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TLS modes of the outbound relay.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS (port 587); required, never skipped
	TLSImplicit = "tls"      // TLS from the first byte (port 465)
	TLSNone     = "none"     // no TLS: a relay on loopback or a trusted private network only
)

// Mailer sends e-mail notices through an outbound SMTP relay (the
// provider's own MTA or a mail service): ordinary Internet mail, not KEP.
// Each notice is one SMTP transaction with one recipient; a 4xx, a 5xx or
// a network fault is an error, and the notice is retried after the
// back-off.
type Mailer struct {
	Addr     string // host:port of the relay
	TLS      string // TLSStartTLS (default), TLSImplicit or TLSNone
	Username string // AUTH PLAIN, when set (only over TLS)
	Password string
	From     string // the envelope and header sender, e.g. bildirim@hs01.example
	HeloName string // the name in EHLO; default "localhost"
	// TLSConfig verifies the relay; nil: the system roots and the host
	// name of Addr.
	TLSConfig *tls.Config
	Timeout   time.Duration // per notice; zero: one minute
	Now       func() time.Time
}

// Send mails one notice to the address to.
func (m *Mailer) Send(ctx context.Context, to, subject, text string) error {
	msg, err := m.message(to, subject, text)
	if err != nil {
		return err
	}
	timeout := m.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return fmt.Errorf("the e-mail relay: %w", err)
	}
	conn.SetDeadline(time.Now().Add(timeout))
	host, _, _ := net.SplitHostPort(m.Addr)
	tc := m.TLSConfig
	if tc == nil {
		tc = &tls.Config{}
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	var c *smtp.Client
	switch m.TLS {
	case TLSImplicit:
		c = smtp.NewClient(tls.Client(conn, tc))
	case TLSNone:
		c = smtp.NewClient(conn)
	case "", TLSStartTLS:
		if c, err = smtp.NewClientStartTLS(conn, tc); err != nil {
			conn.Close()
			return fmt.Errorf("the e-mail relay's STARTTLS: %w", err)
		}
	default:
		conn.Close()
		return fmt.Errorf("notices.email_tls %q: want starttls, tls or none", m.TLS)
	}
	defer c.Close()
	// go-smtp sets its own deadline before each command (5 and 12 minutes
	// by default): ours, from here on.
	c.CommandTimeout, c.SubmissionTimeout = timeout, timeout
	helo := m.HeloName
	if helo == "" {
		helo = "localhost"
	}
	if err := c.Hello(helo); err != nil {
		return fmt.Errorf("the e-mail relay: %w", err)
	}
	if m.Username != "" {
		if m.TLS == TLSNone {
			return fmt.Errorf("notices.email_username is set but notices.email_tls is none: the password would cross in the clear")
		}
		if err := c.Auth(sasl.NewPlainClient("", m.Username, m.Password)); err != nil {
			return fmt.Errorf("the e-mail relay refused the login: %w", err)
		}
	}
	if err := c.SendMail(m.From, []string{to}, bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("the e-mail relay: %w", err)
	}
	_ = c.Quit()
	return nil
}

// message renders the notice as an RFC 5322 message: UTF-8 text in
// quoted-printable (RFC 2045), the subject as RFC 2047 encoded words, and
// Auto-Submitted: auto-generated (RFC 3834) so that no one auto-replies.
func (m *Mailer) message(to, subject, text string) ([]byte, error) {
	if strings.ContainsAny(to, "\r\n") || strings.ContainsAny(m.From, "\r\n") {
		return nil, fmt.Errorf("an address with a line break")
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	var id [12]byte
	rand.Read(id[:])
	dom := "localhost"
	if at := strings.LastIndexByte(m.From, '@'); at >= 0 {
		dom = m.From[at+1:]
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s <%s>\r\n", mime.QEncoding.Encode("utf-8", "KEP bildirimi"), m.From)
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <notice-%s@%s>\r\n", hex.EncodeToString(id[:]), dom)
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}
