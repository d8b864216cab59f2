package node

import (
	"fmt"
	"strings"

	"github.com/kephs/kep/notice"
	"github.com/kephs/kep/provider"
)

// noticeService builds the notice service of the [notices] section
// (docs/notices.md), or returns nil when no channel is configured.
func noticeService(n *provider.Node) (*notice.Service, error) {
	c := n.Config.Notices
	s := &notice.Service{DB: n.DB, Lead: c.DeadlineLead.Duration, Location: n.Mailbox.Policy.Location,
		Provider: n.Config.Provider.Name, Owner: queueOwner(), Now: n.Now, Log: n.Logger, Write: n.Log.Write}
	if c.DeadlineLead.Duration <= 0 {
		s.Lead = -1 // reminders off
	}
	switch {
	case c.SMSURL != "":
		if !strings.HasPrefix(c.SMSURL, "https://") && !strings.HasPrefix(c.SMSURL, "http://") {
			return nil, fmt.Errorf("notices.sms_url: %q is not an http(s):// URL", c.SMSURL)
		}
		s.SMS = &notice.HTTPGateway{URL: c.SMSURL, Token: c.SMSToken, Username: c.SMSUsername, Password: c.SMSPassword}
	case c.SMSFile != "":
		s.SMS = &notice.FileGateway{Path: n.Config.Path(c.SMSFile), Now: n.Now}
	}
	if c.EmailRelay != "" {
		switch c.EmailTLS {
		case "", notice.TLSStartTLS, notice.TLSImplicit, notice.TLSNone:
		default:
			return nil, fmt.Errorf("notices.email_tls: %q: want starttls, tls or none", c.EmailTLS)
		}
		if c.EmailTLS == notice.TLSNone && c.EmailUsername != "" {
			return nil, fmt.Errorf("notices.email_username is set with notices.email_tls = \"none\": the password would cross in the clear; use starttls or tls")
		}
		from := c.EmailFrom
		if from == "" {
			from = "bildirim@" + n.Config.Provider.Domain
		}
		s.Email = &notice.Mailer{Addr: c.EmailRelay, TLS: c.EmailTLS, Username: c.EmailUsername, Password: c.EmailPassword,
			From: from, HeloName: n.Config.SMTP.Hostname, Now: n.Now}
	}
	if s.SMS == nil && s.Email == nil {
		return nil, nil
	}
	return s, nil
}
