// Package client is in charge of the sending side of KEP as a user's
// software does it: composing a MIME message (text, attachments, the
// X-TR-REM headers), signing it with the user's qualified e-signature
// (S/MIME, CMS) and submitting it over SMTP with TLS and AUTH. `kep send`
// and `kep bench` use it.
package client

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/cms"
)

// Attachment is a file attached to a message.
type Attachment struct {
	Name        string
	ContentType string // default from the name's extension, else application/octet-stream
	Data        []byte
}

// Message is what a user sends.
type Message struct {
	From        string
	To, Cc      []string
	Subject     string
	Body        string // text/plain, UTF-8
	Attachments []Attachment
	IletiTip    string // standart (default), eYazisma, eTebligat
	IletiID     string // optional X-TR-REM-iletiID
	Date        time.Time
	MessageID   string // default: generated
}

// Signer is the user's signing key and certificate (and its chain).
type Signer struct {
	Key   crypto.Signer
	Cert  *x509.Certificate
	Chain []*x509.Certificate
}

func header(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteString(name + ": " + value + "\r\n")
}

func encodeWord(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Header returns the outer header of m (without Content-Type, which the
// signature adds), each line CRLF-terminated.
func (m *Message) Header() []byte {
	var b bytes.Buffer
	header(&b, "From", m.From)
	header(&b, "To", strings.Join(m.To, ", "))
	header(&b, "Cc", strings.Join(m.Cc, ", "))
	header(&b, "Subject", encodeWord(m.Subject))
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	header(&b, "Date", date.Format(time.RFC1123Z))
	id := m.MessageID
	if id == "" {
		domain := "kep.tr"
		if i := strings.LastIndexByte(m.From, '@'); i >= 0 {
			domain = m.From[i+1:]
		}
		id = "<" + randomHex(12) + "@" + domain + ">"
	}
	header(&b, "Message-ID", id)
	tip := m.IletiTip
	if tip == "" {
		tip = "standart"
	}
	header(&b, "X-TR-REM-iletiTip", tip)
	header(&b, "X-TR-REM-iletiID", m.IletiID)
	header(&b, "MIME-Version", "1.0")
	return b.Bytes()
}

// Entity returns the MIME entity that is signed: the text alone, or
// multipart/mixed with the text and the attachments.
func (m *Message) Entity() []byte {
	var b bytes.Buffer
	text := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	if !strings.HasSuffix(text, "\r\n") {
		text += "\r\n"
	}
	if len(m.Attachments) == 0 {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(text)
		return b.Bytes()
	}
	boundary := "kep-" + randomHex(16)
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s", boundary, text)
	for _, a := range m.Attachments {
		ct := a.ContentType
		if ct == "" {
			ct = mime.TypeByExtension(filepath.Ext(a.Name))
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		name := encodeWord(filepath.Base(a.Name))
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; name=%q\r\nContent-Disposition: attachment; filename=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			boundary, ct, name, name)
		enc := base64.StdEncoding.EncodeToString(a.Data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

// Sign returns the message signed with s: multipart/signed with a detached
// CMS signature (RFC 8551), as Thunderbird and Outlook send it.
func (m *Message) Sign(s *Signer) ([]byte, error) {
	p, err := m.Prepare()
	if err != nil {
		return nil, err
	}
	return p.Sign(s)
}

// Prepared is a message whose header and signed entity are fixed (the
// Date, Message-ID and MIME boundary chosen), so that what a user is shown
// before signing (Digest) is exactly what is signed.
type Prepared struct {
	Header, Entity []byte
}

// Prepare fixes the message's header and entity.
func (m *Message) Prepare() (*Prepared, error) {
	if m.From == "" || len(m.To) == 0 {
		return nil, errors.New("a message needs From and at least one To")
	}
	if err := m.checkFields(); err != nil {
		return nil, err
	}
	return &Prepared{Header: m.Header(), Entity: m.Entity()}, nil
}

// checkFields refuses a line break or NUL in any field that becomes a
// header line: it would add header fields the signer never saw (RFC 5322
// §2.2: a field body has no bare CR or LF). Other control characters are
// left to the front-ends that show the fields (kep signer neutralises
// them on the terminal).
func (m *Message) checkFields() error {
	fields := []struct{ name, value string }{{"From", m.From}, {"Subject", m.Subject}, {"iletiTip", m.IletiTip},
		{"iletiID", m.IletiID}, {"Message-ID", m.MessageID}}
	for _, a := range m.To {
		fields = append(fields, struct{ name, value string }{"To", a})
	}
	for _, a := range m.Cc {
		fields = append(fields, struct{ name, value string }{"Cc", a})
	}
	for _, a := range m.Attachments {
		fields = append(fields, struct{ name, value string }{"attachment name", a.Name}, struct{ name, value string }{"attachment type", a.ContentType})
	}
	for _, f := range fields {
		if i := strings.IndexAny(f.value, "\r\n\x00"); i >= 0 {
			return fmt.Errorf("the %s field has a line break or NUL at byte %d; remove it", f.name, i)
		}
	}
	return nil
}

// Digest is the SHA-256 of the signed content: the entity in canonical
// CRLF form, whose digest the signature's messageDigest attribute carries
// (RFC 5652 §11.2).
func (p *Prepared) Digest() ([32]byte, error) {
	c, err := cms.Canonical(p.Entity)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(c), nil
}

// Sign signs the prepared message with s, as Message.Sign does.
func (p *Prepared) Sign(s *Signer) ([]byte, error) {
	return cms.BuildSigned(p.Header, p.Entity, s.Key, s.Cert, s.Chain)
}

// Recipients are the SMTP recipients of m: To and Cc (KEP has no Bcc).
func (m *Message) Recipients() []string {
	return append(append([]string(nil), m.To...), m.Cc...)
}

// Submission is how to reach a provider's submission service.
type Submission struct {
	Addr     string // host:port
	Implicit bool   // TLS from the first byte (port 465); false: STARTTLS (port 587)
	TLS      *tls.Config
	Username string
	Password string
	Timeout  time.Duration
}

// Result is the provider's answer to one message.
type Result struct {
	Accepted   bool
	EvidenceID string // the acceptance evidence, from the 250 reply
	Reply      string // the server's reply text
	Code       int
	Enhanced   string
}

// Conn is an authenticated submission session that can send many messages.
type Conn struct {
	c *smtp.Client
}

// Dial connects, starts TLS and authenticates.
func Dial(s Submission) (*Conn, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	d := &net.Dialer{Timeout: timeout}
	var c *smtp.Client
	var err error
	if s.Implicit {
		conn, e := tls.DialWithDialer(d, "tcp", s.Addr, s.TLS)
		if e != nil {
			return nil, fmt.Errorf("connect to %s: %w", s.Addr, e)
		}
		c = smtp.NewClient(conn)
	} else {
		conn, e := d.Dial("tcp", s.Addr)
		if e != nil {
			return nil, fmt.Errorf("connect to %s: %w", s.Addr, e)
		}
		c, err = smtp.NewClientStartTLS(conn, s.TLS)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("STARTTLS with %s: %w", s.Addr, err)
		}
	}
	c.CommandTimeout, c.SubmissionTimeout = timeout, 10*time.Minute
	if err := c.Auth(sasl.NewPlainClient("", s.Username, s.Password)); err != nil {
		c.Close()
		return nil, fmt.Errorf("log in as %s: %w", s.Username, err)
	}
	return &Conn{c: c}, nil
}

// Close ends the session.
func (c *Conn) Close() error {
	c.c.Quit()
	return c.c.Close()
}

// Send submits one signed message. A refusal by the provider is a Result
// with Accepted false and the provider's reason, not an error; errors are
// for connections that fail.
func (c *Conn) Send(from string, rcpt []string, msg []byte) (*Result, error) {
	refused := func(err error) (*Result, error) {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return &Result{Code: se.Code, Enhanced: fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2]), Reply: se.Message}, nil
		}
		return nil, err
	}
	// MAIL FROM and the RCPT TOs in one round trip when the server offers
	// PIPELINING (RFC 2920; third_party/go-smtp's MailRcpt); DATA only once
	// every recipient is accepted.
	if err := c.c.MailRcpt(from, nil, rcpt, nil); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			c.c.Reset()
		}
		return refused(err)
	}
	w, err := c.c.Data()
	if err != nil {
		return refused(err)
	}
	if _, err := w.Write(msg); err != nil {
		return nil, err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return refused(err)
	}
	r := &Result{Accepted: true, Code: 250, Reply: resp.StatusText, Enhanced: "2.0.0"}
	if _, rest, ok := strings.Cut(resp.StatusText, "KEP evidence "); ok {
		r.EvidenceID, _, _ = strings.Cut(rest, " ")
	}
	return r, nil
}
