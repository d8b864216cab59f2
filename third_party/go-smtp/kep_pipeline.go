package smtp

import (
	"errors"
	"net/textproto"
	"time"
)

// [kep patch] MailRcpt starts a mail transaction with MAIL FROM and a RCPT
// TO for each of to. When the server offers PIPELINING (RFC 2920), the
// commands go in one write and their replies are read after it, in order:
// one round trip instead of one per command (section 3.1 allows MAIL and
// RCPT anywhere in a group; DATA is left to Data, so that a refused
// recipient is known before the message is sent). Without PIPELINING it is
// Mail then Rcpt for each address. Every reply is read; the error is that
// of the first command refused, as Mail or Rcpt would have returned it, and
// after a refused MAIL the recipients' replies (503) are not reported. The
// client's state is what the lock-step calls would leave.
func (c *Client) MailRcpt(from string, mopts *MailOptions, to []string, ropts *RcptOptions) error {
	if err := c.hello(); err != nil {
		return err
	}
	if _, ok := c.ext["PIPELINING"]; !ok {
		if err := c.Mail(from, mopts); err != nil {
			return err
		}
		for _, r := range to {
			if err := c.Rcpt(r, ropts); err != nil {
				return err
			}
		}
		return nil
	}
	lines := make([]string, 0, 1+len(to))
	line, err := c.mailLine(from, mopts)
	if err != nil {
		return err
	}
	lines = append(lines, line)
	for _, r := range to {
		line, err := c.rcptLine(r, ropts)
		if err != nil {
			return err
		}
		lines = append(lines, line)
	}

	c.conn.SetDeadline(time.Now().Add(c.CommandTimeout))
	defer c.conn.SetDeadline(time.Time{})
	w := c.text.Writer.W
	for _, l := range lines {
		w.WriteString(l)
		w.WriteString("\r\n")
	}
	if err := w.Flush(); err != nil {
		return err
	}

	var first error
	for i := range lines {
		expect := 25
		if i == 0 {
			expect = 250
		}
		_, _, err := c.readResponse(expect)
		var protoErr *textproto.Error
		var smtpErr *SMTPError
		if err != nil && !errors.As(err, &smtpErr) && !errors.As(err, &protoErr) {
			return err // the connection failed: nothing more can be read
		}
		switch {
		case err == nil && i == 0:
			c.rcpts = nil // a new transaction, as Mail
		case err == nil:
			c.rcpts = append(c.rcpts, to[i-1]) // the server has it
		case first == nil:
			first = err
		}
	}
	return first
}
