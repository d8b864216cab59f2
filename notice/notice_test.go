package notice_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/notice"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
)

// The secret content of the test messages: no notice may show any of it.
const (
	secretSubject = "Gizli: Şirket birleşmesi"
	secretBody    = "Birleşme bedeli 42.000.000 TL"
)

var secrets = []string{secretSubject, secretBody, "Gizli", "irleşme", "42.000.000", mime.QEncoding.Encode("utf-8", secretSubject)}

func submit(t *testing.T, w *providertest.World, p *providertest.Person, tip string, to ...string) *mailbox.KEPMessage {
	t.Helper()
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@client>\r\nX-TR-REM-iletiTip: %s\r\nMIME-Version: 1.0\r\n",
		p.Account.Address, strings.Join(to, ", "), mime.QEncoding.Encode("utf-8", secretSubject), time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), tip)
	entity := []byte("Content-Type: text/plain; charset=utf-8\r\n\r\n" + secretBody + "\r\n")
	raw, err := cms.BuildSigned([]byte(hdr), entity, p.Signer.Key, p.Signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	bw, err := w.Node.Blobs.Create()
	if err != nil {
		t.Fatal(err)
	}
	bw.Write(raw)
	d, gen, err := bw.CommitDeferred()
	if err != nil {
		t.Fatal(err)
	}
	msg, _, err := w.Node.Mailbox.Accept(context.Background(), &mailbox.Submission{Sender: p.Account, Original: d, Size: int64(len(raw)), BlobGen: gen,
		From: p.Account.Address, Recipients: to, IletiID: "ileti-" + evidence.NewID(), IletiTip: tip, AuthMethod: evidence.AuthSMTPCMS, AuthTime: w.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Node.Mailbox.DeliverQueued(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	return msg
}

// syncBuffer collects log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func readSMS(t *testing.T, path string) []notice.FileSMS {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []notice.FileSMS
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m notice.FileSMS
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("SMS file line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func noSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s carries the message's content %q:\n%s", what, s, text)
		}
	}
}

// outcomes counts notices by kind/channel/outcome.
func outcomes(t *testing.T, w *providertest.World) map[string]int {
	t.Helper()
	rows, err := w.Q().Query(context.Background(), `SELECT kind, channel, outcome FROM notices`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]int{}
	for rows.Next() {
		var k, c, o string
		rows.Scan(&k, &c, &o)
		m[k+"/"+c+"/"+o]++
	}
	return m
}

func TestNotices(t *testing.T) {
	smtpd := startSMTPD(t, notice.TLSStartTLS)
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		ctx := context.Background()
		loc, _ := time.LoadLocation("Europe/Istanbul")
		// Nothing listens here: the relay fails until the test points the
		// mailer at the real server.
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := l.Addr().String()
		l.Close()
		logs := &syncBuffer{}
		smsFile := filepath.Join(t.TempDir(), "sms.jsonl")
		mailer := &notice.Mailer{Addr: dead, TLS: notice.TLSStartTLS, Username: smtpd.User, Password: smtpd.Password,
			From: "bildirim@hs01.example", HeloName: "hs01.kep.tr", TLSConfig: smtpd.TLSConfig, Now: w.Clock.Now, Timeout: 10 * time.Second}
		svc := &notice.Service{DB: w.Node.DB, Write: w.Node.Log.Write, SMS: &notice.FileGateway{Path: smsFile, Now: w.Clock.Now}, Email: mailer,
			Location: loc, Provider: "HS01 KEP", Now: w.Clock.Now, Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		reg := prometheus.NewRegistry()
		svc.Metrics = notice.NewMetrics(reg)
		w.Node.Mailbox.Delivered = svc.Enqueue

		ayse := w.Person("Ayşe", "Yılmaz")
		co, mainOp := w.Company("Deniz Lojistik", account.AllGrants)
		sub := w.Operator(co, "Emre", "Şahin", account.SubOperator, account.GrantRead|account.GrantSMSNotice)
		str := func(s string) *string { return &s }
		for _, p := range []struct {
			tckn string
			ch   account.NoticeChange
		}{
			{"", account.NoticeChange{SMS: str("+905321112233"), Email: str("muhasebe@deniz.example")}},
			{mainOp.TCKN, account.NoticeChange{Email: str("zeynep@deniz.example")}},
			{sub.TCKN, account.NoticeChange{SMS: str("+905324445566")}},
		} {
			if _, err := w.Node.Accounts.SetNoticePrefs(ctx, account.SystemActor, co.Address, p.tckn, p.ch); err != nil {
				t.Fatal(err)
			}
		}

		delivered := w.Clock.Now()
		submit(t, w, ayse, evidence.IletiTipStandart, co.Address)
		if got := outcomes(t, w); got["arrival/sms/"] != 2 || got["arrival/email/"] != 2 || got["deadline/sms/"] != 2 || got["deadline/email/"] != 2 {
			t.Fatalf("queued notices: %v", got)
		}
		// Enqueue again for the same delivery (a retried batch runs it
		// twice): nothing more is queued, neither notices nor queue items.
		queueItems := func() (n int) {
			w.Node.DB.Q().QueryRow(ctx, `SELECT COUNT(*) FROM queue_items WHERE kind = 'notice'`).Scan(&n)
			return n
		}
		items := queueItems()
		var did int64
		if err := w.Node.DB.Q().QueryRow(ctx, `SELECT id FROM deliveries WHERE recipient = ?`, co.Address).Scan(&did); err != nil {
			t.Fatal(err)
		}
		if err := w.Node.DB.InTx(ctx, func(tx *store.Tx) error {
			return svc.Enqueue(ctx, tx, did, co.ID, delivered, delivered.Add(24*time.Hour))
		}); err != nil {
			t.Fatal(err)
		}
		if got := outcomes(t, w); len(got) != 4 || got["arrival/sms/"] != 2 || got["deadline/email/"] != 2 || queueItems() != items || items != 8 {
			t.Fatalf("after enqueueing twice: %v, %d queue items (had %d)", got, queueItems(), items)
		}

		// The relay is down: the SMS go, the e-mails wait for a retry.
		n, err := svc.RunDue(ctx, 100)
		if err != nil || n != 2 {
			t.Fatalf("first run: %d sent, %v", n, err)
		}
		sms := readSMS(t, smsFile)
		if len(sms) != 2 {
			t.Fatalf("SMS: %+v", sms)
		}
		for _, m := range sms {
			noSecret(t, "an SMS", m.Text)
			for _, want := range []string{"Ayşe Yılmaz <" + ayse.Account.Address + ">", co.Address, delivered.In(loc).Format("02.01.2006 15:04"),
				delivered.Add(24 * time.Hour).In(loc).Format("02.01.2006 15:04"), "okunmuş sayılır"} {
				if !strings.Contains(m.Text, want) {
					t.Errorf("SMS %q lacks %q", m.Text, want)
				}
			}
		}
		if out := logs.String(); !strings.Contains(out, "will retry") {
			t.Fatalf("no retry logged:\n%s", out)
		}
		mailer.Addr = smtpd.Addr
		before := len(smtpd.Messages(t))
		if n, err := svc.RunDue(ctx, 100); err != nil || n != 0 {
			t.Fatalf("run within the back-off: %d sent, %v", n, err)
		}
		w.Clock.Advance(31 * time.Second)
		if n, err := svc.RunDue(ctx, 100); err != nil || n != 2 {
			t.Fatalf("retry: %d sent, %v", n, err)
		}
		if n, err := svc.RunDue(ctx, 100); err != nil || n != 0 {
			t.Fatalf("sent twice: %d, %v", n, err)
		}
		msgs := smtpd.Messages(t)[before:]
		if len(msgs) != 2 {
			t.Fatalf("the relay received %d messages", len(msgs))
		}
		rcpts := map[string]bool{}
		for _, r := range msgs {
			rcpts[strings.Join(r.RcptTos, ",")] = true
			if r.MailFrom != "bildirim@hs01.example" {
				t.Errorf("MAIL FROM %q", r.MailFrom)
			}
			noSecret(t, "an e-mail notice as sent", string(r.Raw))
			m, err := mail.ReadMessage(bytes.NewReader(r.Raw))
			if err != nil {
				t.Fatal(err)
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
			if err != nil || !strings.Contains(subject, "yeni ileti / new message") || !strings.Contains(subject, co.Address) {
				t.Errorf("Subject %q (%v)", subject, err)
			}
			if ct := m.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || m.Header.Get("Content-Transfer-Encoding") != "quoted-printable" ||
				m.Header.Get("Auto-Submitted") != "auto-generated" || m.Header.Get("Message-Id") == "" {
				t.Errorf("headers %v", m.Header)
			}
			body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
			if err != nil {
				t.Fatal(err)
			}
			noSecret(t, "an e-mail notice's text", string(body)+subject)
			for _, want := range []string{"Gönderen / sender:  Ayşe Yılmaz <" + ayse.Account.Address + ">", "Süre sonu / deadline: " + delivered.Add(24*time.Hour).In(loc).Format("02.01.2006 15:04"),
				"içeriğini taşımaz"} {
				if !strings.Contains(string(body), want) {
					t.Errorf("e-mail text lacks %q:\n%s", want, body)
				}
			}
		}
		if !rcpts["muhasebe@deniz.example"] || !rcpts["zeynep@deniz.example"] {
			t.Fatalf("recipients %v", rcpts)
		}

		// The main operator loses the email-notice grant: the reminder
		// queued for them is dropped; the others' go at half the 24 h period.
		if _, err := w.Node.Accounts.Revoke(ctx, account.SystemActor, co.Address, mainOp.TCKN, account.GrantEmailNotice); err != nil {
			t.Fatal(err)
		}
		w.Clock.Advance(12 * time.Hour)
		if n, err := svc.RunDue(ctx, 100); err != nil || n != 3 {
			t.Fatalf("reminders: %d sent, %v", n, err)
		}
		sms = readSMS(t, smsFile)
		if len(sms) != 4 || !strings.Contains(sms[3].Text, "henüz açılmadı") {
			t.Fatalf("reminder SMS: %+v", sms)
		}
		all := smtpd.Messages(t)
		m, err := mail.ReadMessage(bytes.NewReader(all[len(all)-1].Raw))
		if err != nil {
			t.Fatal(err)
		}
		// A subject with Turkish letters travels as RFC 2047 encoded words.
		raw := m.Header.Get("Subject")
		subject, err := new(mime.WordDecoder).DecodeHeader(raw)
		if err != nil || !strings.HasPrefix(raw, "=?utf-8?q?") || !strings.HasPrefix(subject, "KEP: açılmamış ileti, süre doluyor") {
			t.Fatalf("reminder subject %q → %q (%v)", raw, subject, err)
		}
		if got := outcomes(t, w); got["deadline/email/dropped"] != 1 || got["deadline/email/sent"] != 1 || got["deadline/sms/sent"] != 2 {
			t.Fatalf("outcomes: %v", got)
		}

		// An e-tebligat read (here: deemed read) before its reminder: the
		// reminder is moot and dropped.
		submit(t, w, ayse, evidence.IletiTipETebligat, co.Address)
		if n, err := svc.RunDue(ctx, 100); err != nil || n != 3 {
			t.Fatalf("e-tebligat arrival: %d sent, %v", n, err)
		}
		sms = readSMS(t, smsFile)
		if !strings.Contains(sms[len(sms)-1].Text, "tebliğ edilmiş sayılır") {
			t.Fatalf("e-tebligat SMS: %q", sms[len(sms)-1].Text)
		}
		w.Clock.Advance(7 * 24 * time.Hour)
		if _, err := w.Node.Mailbox.DeemRead(ctx, 10); err != nil {
			t.Fatal(err)
		}
		if n, err := svc.RunDue(ctx, 100); err != nil || n != 0 {
			t.Fatalf("after deemed read: %d sent, %v", n, err)
		}
		var left int
		w.Q().QueryRow(ctx, `SELECT COUNT(*) FROM queue_items WHERE kind = 'notice'`).Scan(&left)
		if left != 0 {
			t.Fatalf("%d notice items left", left)
		}

		// Every attempt counted: SMS 2 arrivals, 2 reminders, 2 e-tebligat
		// arrivals sent and 2 reminders dropped; e-mail 2 retries, 2
		// arrivals, 1 reminder and 1 e-tebligat arrival sent, 1 reminder
		// dropped (grant revoked) and 1 e-tebligat reminder dropped.
		want := map[string]float64{"sms/sent": 6, "sms/dropped": 2, "email/retry": 2, "email/sent": 4, "email/dropped": 2, "sms/retry": 0, "email/failed": 0}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				var ch, o string
				for _, l := range m.GetLabel() {
					if l.GetName() == "channel" {
						ch = l.GetValue()
					} else {
						o = l.GetValue()
					}
				}
				if v, ok := want[ch+"/"+o]; ok && m.GetCounter().GetValue() != v {
					t.Errorf("kep_notices_total{%s/%s} = %v, want %v", ch, o, m.GetCounter().GetValue(), v)
				}
			}
		}

		// No phone number or e-mail address in the logs, only masked.
		out := logs.String()
		for _, pd := range []string{"5321112233", "5324445566", "muhasebe@", "zeynep@", "deniz.example"} {
			if strings.Contains(out, pd) {
				t.Fatalf("the log shows %q:\n%s", pd, out)
			}
		}
		if !strings.Contains(out, "m***@***.example") || !strings.Contains(out, "+90********33") {
			t.Fatalf("the log lacks the masked destinations:\n%s", out)
		}
	})
}

// TestHTTPGateway checks the HTTP gateway against a plain HTTP server: JSON
// body and bearer token; a non-2xx answer is an error that keeps only the
// status.
func TestHTTPGateway(t *testing.T) {
	var got []map[string]string
	var auth []string
	var mu sync.Mutex
	status := 200
	srv := newHTTPServer(t, func(body []byte, authz string) int {
		mu.Lock()
		defer mu.Unlock()
		var m map[string]string
		json.Unmarshal(body, &m)
		got = append(got, m)
		auth = append(auth, authz)
		return status
	})
	g := &notice.HTTPGateway{URL: srv + "/sms", Token: "tok"}
	if err := g.SendSMS(context.Background(), "+905321112233", "KEP: yeni ileti"); err != nil {
		t.Fatal(err)
	}
	status = 503
	err := g.SendSMS(context.Background(), "+905321112233", "KEP: yeni ileti")
	if err == nil || strings.Contains(err.Error(), "5321112233") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err %v", err)
	}
	if len(got) != 2 || got[0]["to"] != "+905321112233" || got[0]["text"] != "KEP: yeni ileti" || auth[0] != "Bearer tok" {
		t.Fatalf("got %v %v", got, auth)
	}
}

func newHTTPServer(t *testing.T, h func(body []byte, authz string) int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(h(b, r.Header.Get("Authorization")))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestRender checks each kind of notice on each channel: it names the
// account, the sender, the time and the deadline, and what the deadline
// means for the message's type.
func TestRender(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Istanbul")
	at := time.Date(2026, 12, 7, 11, 5, 0, 0, time.UTC)
	for _, c := range []struct {
		kind     notice.Kind
		tip      string
		deemed   time.Time
		sms      []string
		subject  string
		mailText []string
	}{
		{notice.Arrival, evidence.IletiTipStandart, at.Add(24 * time.Hour), []string{"yeni ileti, 07.12.2026 14:05 +03", "08.12.2026 14:05 +03 tarihinde okunmuş sayılır"},
			"KEP: yeni ileti / new message (info@deniz.hs01.kep.tr)", []string{"it is deemed read"}},
		{notice.Deadline, evidence.IletiTipETebligat, time.Date(2026, 12, 12, 21, 0, 0, 0, time.UTC), []string{"henüz açılmadı", "13.12.2026 00:00 +03 tarihinde tebliğ edilmiş sayılır"},
			"KEP: açılmamış ileti, süre doluyor / unopened message, deadline near (info@deniz.hs01.kep.tr)", []string{"deemed served (e-tebligat)"}},
	} {
		n := &notice.Notice{Kind: c.kind, Account: "info@deniz.hs01.kep.tr", SenderName: "Ayşe Yılmaz", Sender: "ayse.yilmaz@hs01.kep.tr",
			IletiTip: c.tip, At: at, DeemedAt: c.deemed, Provider: "HS01 KEP"}
		sms := n.SMSText(loc)
		subject, text := n.MailText(loc)
		for _, want := range append(c.sms, "Ayşe Yılmaz <ayse.yilmaz@hs01.kep.tr>", "info@deniz.hs01.kep.tr", "HS01 KEP") {
			if !strings.Contains(sms, want) {
				t.Errorf("%s SMS %q lacks %q", c.kind, sms, want)
			}
		}
		if subject != c.subject {
			t.Errorf("%s subject %q", c.kind, subject)
		}
		for _, want := range append(c.mailText, "Gönderen / sender:  Ayşe Yılmaz <ayse.yilmaz@hs01.kep.tr>", "Geliş / delivered:  07.12.2026 14:05 +03") {
			if !strings.Contains(text, want) {
				t.Errorf("%s e-mail text lacks %q:\n%s", c.kind, want, text)
			}
		}
	}
}

// TestReminderAt checks when reminders fall: Lead before the deadline, not
// before halfway, none when off or too close to the arrival notice.
func TestReminderAt(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		lead   time.Duration
		period time.Duration
		want   time.Duration // after at; -1 for none
	}{
		{"standart 24 h: halfway", 0, 24 * time.Hour, 12 * time.Hour},
		{"e-tebligat 5 days: a day before", 0, 5*24*time.Hour + 14*time.Hour, 4*24*time.Hour + 14*time.Hour},
		{"lead 6 h", 6 * time.Hour, 24 * time.Hour, 18 * time.Hour},
		{"off", -1, 5 * 24 * time.Hour, -1},
		{"period too short", 0, 15 * time.Minute, -1},
	} {
		s := &notice.Service{Lead: c.lead}
		got := s.ReminderAt(at, at.Add(c.period))
		if c.want < 0 {
			if !got.IsZero() {
				t.Errorf("%s: reminder at %v, want none", c.name, got)
			}
			continue
		}
		if !got.Equal(at.Add(c.want)) {
			t.Errorf("%s: reminder at %v, want %v", c.name, got, at.Add(c.want))
		}
	}
}

// TestMailer sends through the real SMTP server in both TLS modes, and
// checks the refusals: a wrong password, a relay certificate not trusted,
// a login without TLS.
func TestMailer(t *testing.T) {
	ctx := context.Background()
	starttls, implicit := startSMTPD(t, notice.TLSStartTLS), startSMTPD(t, notice.TLSImplicit)
	for _, c := range []struct {
		name   string
		srv    *smtpd
		mailer func(m *notice.Mailer)
		err    string
	}{
		{"starttls", starttls, func(m *notice.Mailer) {}, ""},
		{"implicit tls", implicit, func(m *notice.Mailer) { m.TLS = notice.TLSImplicit }, ""},
		// go-smtp answers the refusal with "*", which aiosmtpd leaves
		// unanswered: the timeout ends it.
		{"wrong password", starttls, func(m *notice.Mailer) { m.Password, m.Timeout = "yanlış", 2*time.Second }, "refused the login"},
		{"untrusted certificate", starttls, func(m *notice.Mailer) { m.TLSConfig = nil }, "certificate"},
		{"login in the clear", starttls, func(m *notice.Mailer) { m.TLS = notice.TLSNone }, "in the clear"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &notice.Mailer{Addr: c.srv.Addr, TLS: notice.TLSStartTLS, Username: c.srv.User, Password: c.srv.Password,
				From: "bildirim@hs01.example", TLSConfig: c.srv.TLSConfig, Timeout: 10 * time.Second}
			c.mailer(m)
			before := len(c.srv.Messages(t))
			err := m.Send(ctx, "kisi@ornek.example", "KEP: yeni ileti", "Gönderen: Ayşe")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one saying %q", err, c.err)
				}
				if len(c.srv.Messages(t)) != before {
					t.Fatal("a message went through")
				}
				if strings.Contains(err.Error(), m.Password) {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := c.srv.Messages(t)
			if len(got) != before+1 || got[len(got)-1].RcptTos[0] != "kisi@ornek.example" {
				t.Fatalf("received %+v", got)
			}
		})
	}
}
