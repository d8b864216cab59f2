package submission_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/submission"
)

// startKnown serves submission with a "known KEP domain" hook, as the node
// wires it to its provider directory.
func startKnown(t *testing.T, w *providertest.World, known func(string) bool) string {
	t.Helper()
	n := w.Node
	srv := submission.New(n.Mailbox, n.Accounts, n.ESign, n.TLSConfig(), submission.Options{
		Hostname: "localhost", Domain: n.Config.Provider.Domain, KnownDomain: known})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeSTARTTLS(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// rcptReplies logs in, gives MAIL FROM and each RCPT, and returns each
// RCPT's reply (nil for 250), leaving the transaction open on c.
func rcptReplies(t *testing.T, addr, user, pass, from string, to []string) (*smtp.Client, []*smtp.SMTPError) {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	var out []*smtp.SMTPError
	for _, r := range to {
		err := c.Rcpt(r, nil)
		var se *smtp.SMTPError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("RCPT %s: %v", r, err)
		}
		out = append(out, se)
	}
	return c, out
}

// rejections returns the rejection evidence (11) of an account, parsed.
func rejections(t *testing.T, w *providertest.World, accountID int64) []*evidence.Evidence {
	t.Helper()
	rows, err := w.Q().Query(context.Background(), `SELECT seq FROM evidence WHERE account_id = ? AND code = 11 ORDER BY seq`, accountID)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for rows.Next() {
		var s int64
		rows.Scan(&s)
		seqs = append(seqs, s)
	}
	rows.Close()
	var out []*evidence.Evidence
	for _, s := range seqs {
		st, err := evidence.GetSeq(context.Background(), w.Q(), s)
		if err != nil {
			t.Fatal(err)
		}
		e, err := evidence.Parse(st.Document)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// RCPT tells the client at once (issue 10.4): a recipient that can never be
// accepted is refused with the reply the DATA-time check gives; a KEP
// address of this provider, one of its companies' subdomains, or of a
// provider the directory knows is accepted; the same address twice, in any
// letter case, is one recipient (issue 9.6). No reply carries internal text.
func TestRcptRefusedEarly(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		addr := startKnown(t, w, func(d string) bool { return d == "hs07.kep.tr" })
		ali, veli := w.Person("Ali", "Erken"), w.Person("Veli", "Erken")
		A, V := ali.Account.Address, veli.Account.Address
		for _, tc := range []struct {
			name string
			to   string
			code int    // 0: 250
			enh  string // enhanced code
			text string
		}{
			{"own provider", V, 0, "", ""},
			{"own provider, other case", strings.ToUpper(V), 0, "", ""},
			{"company subdomain", "info@acme.hs01.kep.tr", 0, "", ""},
			{"provider in the directory", "ayse@hs07.kep.tr", 0, "", ""},
			{"not KEP", "someone@gmail.com", 550, "5.1.2", "someone@gmail.com is not a KEP address: KEP messages go only to KEP addresses"},
			{"not KEP, look-alike", "ali@kep.tr.example.com", 550, "5.1.2", "is not a KEP address"},
			{"unknown provider", "a.b@hs42.kep.tr", 550, "5.1.2", "a.b@hs42.kep.tr is at hs42.kep.tr, which is not a provider in the KEP directory."},
			{"no provider label", "ali@kep.tr", 550, "5.1.3", "is not a valid KEP address"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, got := rcptReplies(t, addr, A, ali.Password, A, []string{tc.to})
				se := got[0]
				if tc.code == 0 {
					if se != nil {
						t.Fatalf("RCPT %s: %v, want 250", tc.to, se)
					}
					return
				}
				if se == nil || se.Code != tc.code || fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2]) != tc.enh || !strings.Contains(se.Message, tc.text) {
					t.Fatalf("RCPT %s: %+v, want %d %s %q", tc.to, se, tc.code, tc.enh, tc.text)
				}
			})
		}
		if n := len(rejections(t, w, ali.Account.ID)); n != 0 {
			t.Fatalf("%d rejection evidence for refusals at RCPT; want none", n)
		}
	})
}

// A refused RCPT poisons the transaction: a client that goes on to DATA
// with the other recipients while To still names the refused one gets the
// RCPT's refusal for the whole message, with exactly one rejection
// evidence (11) carrying the message's digest, however many RCPTs were
// refused. The same address given twice is delivered once.
func TestRcptPoisonsTransaction(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := start(t, w)
		ali, veli, can := w.Person("Ali", "Zehir"), w.Person("Veli", "Zehir"), w.Person("Can", "Zehir")
		A, V, C := ali.Account.Address, veli.Account.Address, can.Account.Address

		// 30 refused RCPTs, one accepted, To names them all: one 11.
		var to, bad []string
		for i := range 30 {
			bad = append(bad, "user"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+"@gmail.com")
		}
		to = append([]string{V}, bad...)
		msg := message(t, A, ali.Signer, to, "")
		c, replies := rcptReplies(t, e.sub, A, ali.Password, A, to)
		rcptText := ""
		for i, r := range replies {
			if (i == 0) != (r == nil) {
				t.Fatalf("RCPT %s: %v", to[i], r)
			}
			if i > 0 && r.Code != 550 {
				t.Fatalf("RCPT %s: %v", to[i], r)
			}
		}
		rcptText = replies[1].Message // usera@gmail.com, first in order
		wc, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		wc.Write(msg)
		err = wc.Close()
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 550 || se.Message != rcptText {
			t.Fatalf("DATA: %v, want 550 %q (the RCPT's reply)", err, rcptText)
		}
		rj := rejections(t, w, ali.Account.ID)
		if len(rj) != 1 {
			t.Fatalf("%d rejection evidence, want exactly one", len(rj))
		}
		if len(rj[0].Message.Digest) != 32 || len(rj[0].Reasons) != 1 || rj[0].Reasons[0].Code != evidence.ReasonCodeRecipientNotKEP {
			t.Fatalf("rejection: digest %x, reasons %+v", rj[0].Message.Digest, rj[0].Reasons)
		}
		if len(rj[0].Recipients) != 31 {
			t.Errorf("rejection names %d recipients, want 31 (the accepted and the refused)", len(rj[0].Recipients))
		}
		if n := countInbox(t, w, veli.Account.ID); n != 0 {
			t.Fatalf("the poisoned message reached %s (%d)", V, n)
		}

		// The refused recipient left out of To: the rest is accepted.
		if err := send(t, e.sub, A, ali.Password, A, []string{V, "someone@gmail.com"}, message(t, A, ali.Signer, []string{V}, "")); err == nil || !strings.Contains(err.Error(), "not a KEP address") {
			t.Fatalf("the client stops at a refused RCPT: %v", err)
		}
		c, _ = rcptReplies(t, e.sub, A, ali.Password, A, []string{V, "someone@gmail.com"})
		wc, _ = c.Data()
		wc.Write(message(t, A, ali.Signer, []string{V}, ""))
		if err := wc.Close(); err != nil {
			t.Fatalf("message without the refused recipient: %v", err)
		}

		// Duplicates, in another letter case: one recipient each, accepted.
		err = send(t, e.sub, A, ali.Password, A, []string{V, C, strings.ToUpper(V), V, strings.ToUpper(C)}, message(t, A, ali.Signer, []string{V, C}, ""))
		if se, ok := err.(*smtp.SMTPError); err != nil && (!ok || se.Code != 250) {
			t.Fatalf("duplicate RCPT: %v", err)
		}
		if n, m := waitInbox(t, w, veli.Account.ID, 2), waitInbox(t, w, can.Account.ID, 1); n != 2 || m != 1 {
			t.Fatalf("inboxes: %s %d (want 2), %s %d (want 1)", V, n, C, m)
		}
		if len(rejections(t, w, ali.Account.ID)) != 1 {
			t.Fatal("more rejection evidence")
		}
	})
}

// waitInbox waits (up to 10 s) until an INBOX holds want messages, the
// running node delivering them in the background, and returns the count.
func waitInbox(t *testing.T, w *providertest.World, accountID int64, want int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := w.Node.Mailbox.DeliverQueued(context.Background(), 10); err != nil {
			t.Fatal(err)
		}
		n := countInbox(t, w, accountID)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countInbox(t *testing.T, w *providertest.World, accountID int64) int {
	t.Helper()
	if err := mailbox.EnsureFolders(context.Background(), w.Q(), accountID, time.Now()); err != nil {
		t.Fatal(err)
	}
	inbox, err := mailbox.GetFolder(context.Background(), w.Q(), accountID, mailbox.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := mailbox.ListMessages(context.Background(), w.Q(), inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

// Python's smtplib and swaks, real clients that go on to DATA after a
// refused RCPT: the message whose To names the refused address is refused
// whole with one 11; smtplib's duplicate recipients are one.
func TestRcptRealClients(t *testing.T) {
	python := testtool.Require(t, testtool.Python3)
	testtool.Require(t, testtool.SwaksSTARTTLS)
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := start(t, w)
		ali, veli := w.Person("Ali", "Araci"), w.Person("Veli", "Araci")
		A, V := ali.Account.Address, veli.Account.Address
		dir := t.TempDir()
		host, port, _ := net.SplitHostPort(e.sub)
		smtplib := func(to []string, msg []byte) map[string]any {
			t.Helper()
			path := filepath.Join(dir, "msg.eml")
			os.WriteFile(path, msg, 0o600)
			out, err := exec.Command(python, "testdata/smtplib_send.py", host, port, w.Node.Config.Path("keys/provider-ca.crt"),
				A, ali.Password, A, strings.Join(to, ","), path).Output()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					t.Fatalf("smtplib: %v\n%s", err, ee.Stderr)
				}
				t.Fatal(err)
			}
			var res map[string]any
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			t.Logf("smtplib: %s", out)
			return res
		}
		// smtplib: one good, one gmail, To names both.
		res := smtplib([]string{V, "someone@gmail.com"}, message(t, A, ali.Signer, []string{V, "someone@gmail.com"}, ""))
		if res["result"] != "data-refused" || res["code"] != float64(550) || !strings.Contains(res["reply"].(string), "someone@gmail.com is not a KEP address") {
			t.Fatalf("smtplib: %v", res)
		}
		// smtplib: only gmail: refused at RCPT, no DATA, no evidence.
		res = smtplib([]string{"someone@gmail.com"}, message(t, A, ali.Signer, []string{"someone@gmail.com"}, ""))
		if res["result"] != "all-refused" {
			t.Fatalf("smtplib: %v", res)
		}
		// smtplib: the same recipient twice, in two cases: accepted once.
		res = smtplib([]string{V, strings.ToUpper(V)}, message(t, A, ali.Signer, []string{V}, ""))
		if res["result"] != "accepted" || len(res["refused"].(map[string]any)) != 0 {
			t.Fatalf("smtplib duplicate: %v", res)
		}
		// swaks: two recipients, one refused, the header names both.
		path := filepath.Join(dir, "swaks.eml")
		os.WriteFile(path, message(t, A, ali.Signer, []string{V, "x@hs42.kep.tr"}, ""), 0o600)
		out, _ := exec.Command("swaks", "--server", e.sub, "--tls", "--auth", "PLAIN", "--auth-user", A, "--auth-password", ali.Password,
			"--from", A, "--to", V+",x@hs42.kep.tr", "--data", "@"+path, "--timeout", "30").CombinedOutput()
		t.Logf("swaks:\n%s", out)
		if !strings.Contains(string(out), "* 550 5.1.2 x@hs42.kep.tr is at hs42.kep.tr") {
			t.Fatalf("swaks: RCPT not refused:\n%s", out)
		}
		if strings.Contains(string(out), "Accepted: KEP evidence") {
			t.Fatalf("swaks: the poisoned message was accepted:\n%s", out)
		}
		// A 451 reply line, not the digits in a port number or a size.
		if regexp.MustCompile(`(?m)^<[~*]* *451[ -]`).Match(out) || strings.Contains(string(out), "UNIQUE") {
			t.Fatalf("swaks: internal failure:\n%s", out)
		}
		rj := rejections(t, w, ali.Account.ID)
		poisoned := 0
		for _, r := range rj {
			if len(r.Message.Digest) == 32 {
				poisoned++
			}
		}
		// smtplib's poisoned message and, if swaks went on to DATA, its one.
		sentData := strings.Contains(string(out), " DATA")
		if want := 1 + map[bool]int{true: 1}[sentData]; len(rj) != want || poisoned != want {
			t.Fatalf("%d rejection evidence (%d with a digest), want %d", len(rj), poisoned, want)
		}
		if n := waitInbox(t, w, veli.Account.ID, 1); n != 1 {
			t.Fatalf("%s has %d messages, want 1 (the duplicate-recipient one)", V, n)
		}
	})
}
