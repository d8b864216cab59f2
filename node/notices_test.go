package node

import (
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/config"
	"github.com/kephs/kep/notice"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// TestNoticeService checks the wiring of the [notices] section: which
// channels a configuration gives, and the refusals of a wrong one.
func TestNoticeService(t *testing.T) {
	w := providertest.New(t, store.SQLite)
	for _, c := range []struct {
		name     string
		set      func(c *config.Notices)
		sms      string // type of the gateway, "" for none
		email    bool
		lead     time.Duration
		err      string
		nothing  bool
		mailFrom string
	}{
		{name: "no channel", set: func(c *config.Notices) {}, nothing: true},
		{name: "file", set: func(c *config.Notices) { c.SMSFile = "sms.jsonl" }, sms: "*notice.FileGateway", lead: 24 * time.Hour},
		{name: "http wins", set: func(c *config.Notices) { c.SMSFile, c.SMSURL = "sms.jsonl", "https://sms.example/send" }, sms: "*notice.HTTPGateway", lead: 24 * time.Hour},
		{name: "bad url", set: func(c *config.Notices) { c.SMSURL = "sms.example/send" }, err: "notices.sms_url"},
		{name: "relay", set: func(c *config.Notices) { c.EmailRelay = "127.0.0.1:587"; c.DeadlineLead = config.Duration{} }, email: true, lead: -1,
			mailFrom: "bildirim@hs01.kep.tr"},
		{name: "bad tls", set: func(c *config.Notices) { c.EmailRelay, c.EmailTLS = "127.0.0.1:587", "ssl" }, err: "notices.email_tls"},
		{name: "login in the clear", set: func(c *config.Notices) { c.EmailRelay, c.EmailTLS, c.EmailUsername = "127.0.0.1:25", "none", "u" }, err: "in the clear"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := w.Node
			n.Config.Notices = config.Default("", "hs01", "hs01.kep.tr").Notices
			c.set(&n.Config.Notices)
			s, err := noticeService(n)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one naming %s", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.nothing {
				if s != nil {
					t.Fatalf("a service without channels: %+v", s)
				}
				return
			}
			got := ""
			switch s.SMS.(type) {
			case *notice.FileGateway:
				got = "*notice.FileGateway"
			case *notice.HTTPGateway:
				got = "*notice.HTTPGateway"
			}
			if got != c.sms || (s.Email != nil) != c.email || s.Lead != c.lead {
				t.Fatalf("sms %s, email %v, lead %v", got, s.Email != nil, s.Lead)
			}
			if c.mailFrom != "" && s.Email.From != c.mailFrom {
				t.Fatalf("from %q", s.Email.From)
			}
		})
	}
}
