package imapserver

// [kep patch] This file is not in upstream go-imap: hooks the kep project
// added (see third_party/go-imap/README.md).

import (
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionQuota is a session that supports QUOTA (RFC 9208): GETQUOTA and
// GETQUOTAROOT. When the session implements it, the server advertises QUOTA
// and QUOTA=RES-<type> for each of QuotaResourceTypes once the client is
// authenticated. SETQUOTA (QUOTASET) is not offered.
type SessionQuota interface {
	Session

	// QuotaResourceTypes lists the resources the session reports, such as
	// imap.QuotaResourceStorage (in units of 1024 octets, RFC 9208 section
	// 5.1) and imap.QuotaResourceMessage.
	QuotaResourceTypes() []imap.QuotaResourceType
	// GetQuota returns the usage and limits of a quota root (GETQUOTA,
	// RFC 9208 section 4.2). An unknown root is an *imap.Error NO
	// [NONEXISTENT].
	GetQuota(root string) (*QuotaData, error)
	// GetQuotaRoot returns the quota roots of a mailbox (GETQUOTAROOT,
	// RFC 9208 section 4.3), possibly none; the server then reports each
	// root's GetQuota.
	GetQuotaRoot(mailbox string) ([]string, error)
}

// QuotaData is what a QUOTA response reports of one quota root.
type QuotaData struct {
	Root      string
	Resources []QuotaResource
}

// QuotaResource is one resource's usage and limit.
type QuotaResource struct {
	Type         imap.QuotaResourceType
	Usage, Limit int64
}

// SessionExtension is a session that handles commands the library does not
// know, in the authenticated and selected states (before authentication an
// unknown command still ends the connection). ExtensionCapabilities are
// advertised once the client is authenticated.
type SessionExtension interface {
	Session

	ExtensionCapabilities() []imap.Cap
	// ExtensionCommand runs command name (upper case) with args, the rest
	// of the command line after the name and its space, without the CRLF.
	// Commands whose line carries a literal are refused BAD before the hook.
	// It writes untagged responses with w; the server then writes the
	// tagged OK, or the response for the error it returns. Returning
	// ErrUnknownCommand gives the usual BAD "Unknown command".
	ExtensionCommand(w *ExtensionWriter, name, args string) error
}

// ErrUnknownCommand is returned by SessionExtension.ExtensionCommand for a
// command it does not handle either.
var ErrUnknownCommand = errors.New("imapserver: unknown command")

// ExtensionWriter writes untagged responses for an extension command.
type ExtensionWriter struct {
	conn *Conn
}

// WriteUntagged writes "* " + line + CRLF. line must be a valid IMAP
// response without its CRLF; it must not contain CR or LF.
func (w *ExtensionWriter) WriteUntagged(line string) error {
	if strings.ContainsAny(line, "\r\n") {
		return errors.New("imapserver: untagged response contains CR or LF")
	}
	enc := newResponseEncoder(w.conn)
	defer enc.end()
	enc.Atom("*").SP()
	enc.Text(line)
	return enc.CRLF()
}

// kepCaps are the capabilities the kep hooks add in the authenticated
// state.
func (c *Conn) kepCaps() []imap.Cap {
	var caps []imap.Cap
	if q, ok := c.session.(SessionQuota); ok {
		caps = append(caps, imap.CapQuota)
		for _, t := range q.QuotaResourceTypes() {
			caps = append(caps, imap.Cap("QUOTA=RES-"+string(t)))
		}
	}
	if x, ok := c.session.(SessionExtension); ok {
		caps = append(caps, x.ExtensionCapabilities()...)
	}
	return caps
}

func (c *Conn) handleQuota(name string, dec *imapwire.Decoder) error {
	var arg string
	if !dec.ExpectSP() {
		return dec.Err()
	}
	if name == "GETQUOTAROOT" {
		if !dec.ExpectMailbox(&arg) {
			return dec.Err()
		}
	} else if !dec.ExpectAString(&arg) {
		return dec.Err()
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	q, ok := c.session.(SessionQuota)
	if !ok {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown command"}
	}
	roots := []string{arg}
	if name == "GETQUOTAROOT" {
		mailbox := arg
		var err error
		if roots, err = q.GetQuotaRoot(mailbox); err != nil {
			return err
		}
		enc := newResponseEncoder(c)
		enc.Atom("*").SP().Atom("QUOTAROOT").SP().Mailbox(mailbox)
		for _, r := range roots {
			enc.SP().String(r)
		}
		err = enc.CRLF()
		enc.end()
		if err != nil {
			return err
		}
	}
	for _, root := range roots {
		data, err := q.GetQuota(root)
		if err != nil {
			return err
		}
		enc := newResponseEncoder(c)
		enc.Atom("*").SP().Atom("QUOTA").SP().String(data.Root).SP().Special('(')
		for i, r := range data.Resources {
			if i > 0 {
				enc.SP()
			}
			enc.Atom(string(r.Type)).SP().Number64(r.Usage).SP().Number64(r.Limit)
		}
		enc.Special(')')
		err = enc.CRLF()
		enc.end()
		if err != nil {
			return err
		}
	}
	return nil
}

// handleExtension offers a command the library does not know to the
// session's SessionExtension. handled is false when there is none, when the
// client is not authenticated, or when it answers ErrUnknownCommand.
func (c *Conn) handleExtension(name string, dec *imapwire.Decoder) (handled bool, err error) {
	x, ok := c.session.(SessionExtension)
	if !ok || (c.state != imap.ConnStateAuthenticated && c.state != imap.ConnStateSelected) {
		return false, nil
	}
	var args string
	if dec.SP() {
		dec.Text(&args)
	}
	if !dec.ExpectCRLF() {
		return true, dec.Err()
	}
	if strings.HasSuffix(args, "}") && strings.LastIndexByte(args, '{') >= 0 {
		return true, imapwire.SyntaxError("literals are not supported in %s", name)
	}
	err = x.ExtensionCommand(&ExtensionWriter{conn: c}, name, args)
	if errors.Is(err, ErrUnknownCommand) {
		return true, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown command"}
	}
	return true, err
}
