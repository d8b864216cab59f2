package submission_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/node"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider/providertest"
)

type env struct {
	w   *providertest.World
	r   interface{ Close() error }
	sub string // STARTTLS address
	tls string // implicit TLS address
}

func start(t *testing.T, w *providertest.World) *env {
	r, err := node.Start(context.Background(), w.Node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &env{w: w, r: r, sub: r.Endpoints.Submission, tls: r.Endpoints.Submissions}
}

// message builds a signed message from p (signed by signer) with the given
// extra header lines.
func message(t testing.TB, from string, signer *pki.Issued, to []string, extra string) []byte {
	t.Helper()
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: Test\r\nDate: %s\r\nMessage-ID: <%d@test>\r\n%sMIME-Version: 1.0\r\n",
		from, strings.Join(to, ", "), time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), extra)
	msg, err := cms.BuildSigned([]byte(hdr), []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nMerhaba.\r\n"), signer.Key, signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// send submits over STARTTLS with AUTH PLAIN and returns the server's reply
// to DATA (or the first error).
func send(t testing.TB, addr, user, pass, from string, to []string, msg []byte) error {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	wc, err := c.Data()
	if err != nil {
		return err
	}
	wc.Write(msg)
	return wc.Close()
}

func evidenceCodes(t testing.TB, w *providertest.World, accountID int64) []string {
	t.Helper()
	rows, err := w.Q().Query(context.Background(), `SELECT code, id FROM evidence WHERE account_id = ? ORDER BY seq`, accountID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var code int
		var id string
		rows.Scan(&code, &id)
		out = append(out, fmt.Sprint(code))
	}
	return out
}

// lastReason returns the reason code of the account's latest evidence.
func lastReason(t testing.TB, w *providertest.World, accountID int64) string {
	t.Helper()
	var seq int64
	if err := w.Q().QueryRow(context.Background(), `SELECT MAX(seq) FROM evidence WHERE account_id = ?`, accountID).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	st, err := evidence.GetSeq(context.Background(), w.Q(), seq)
	if err != nil {
		t.Fatal(err)
	}
	e, err := evidence.Parse(st.Document)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Reasons) == 0 {
		return fmt.Sprint(int(e.Code))
	}
	return strings.TrimPrefix(e.Reasons[0].Code, evidence.ReasonKEPBase)
}

func TestAccessPointChecks(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := start(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		recvOnly := w.Person("Ece", "Tan")
		if _, err := w.Q().Exec(context.Background(), `UPDATE accounts SET capability = 'receive-only' WHERE id = ?`, recvOnly.Account.ID); err != nil {
			t.Fatal(err)
		}
		A, M := ayse.Account.Address, mehmet.Account.Address
		good := message(t, A, ayse.Signer, []string{M}, "X-TR-REM-iletiTip: eTebligat\r\n")
		if err := send(t, e.sub, A, ayse.Password, A, []string{M}, good); err != nil {
			t.Fatalf("good message refused: %v", err)
		}
		cases := []struct {
			name     string
			user     *providertest.Person
			from     string
			to       []string
			msg      []byte
			code     int
			reason   string
			evidence bool
		}{
			{"wrong password", ayse, A, []string{M}, good, 535, "", false},
			{"unsigned", ayse, A, []string{M}, []byte("From: " + A + "\r\nTo: " + M + "\r\nSubject: x\r\n\r\nhello\r\n"), 550, "not-signed", true},
			{"signed by someone else", ayse, A, []string{M}, message(t, A, mehmet.Signer, []string{M}, ""), 550, "identity-mismatch", true},
			{"bcc", ayse, A, []string{M}, message(t, A, ayse.Signer, []string{M}, "Bcc: "+M+"\r\n"), 550, "bcc-not-empty", true},
			// Refused at RCPT, before the message is sent: no evidence (rcpt_test.go).
			{"gmail", ayse, A, []string{"someone@gmail.com"}, message(t, A, ayse.Signer, []string{"someone@gmail.com"}, ""), 550, "", false},
			{"unknown provider", ayse, A, []string{"a.b@hs42.kep.tr"}, message(t, A, ayse.Signer, []string{"a.b@hs42.kep.tr"}, ""), 550, "", false},
			{"from another account", ayse, M, []string{A}, message(t, M, ayse.Signer, []string{A}, ""), 550, "from-mismatch", true},
			{"reverse-path differs", ayse, "other@hs01.kep.tr", []string{M}, good, 550, "reverse-path-mismatch", true},
			{"recipient not in To", ayse, A, []string{M, recvOnly.Account.Address}, good, 550, "recipient-not-in-to-cc", true},
			{"two From", ayse, A, []string{M}, message(t, A+", "+M, ayse.Signer, []string{M}, ""), 550, "one-from", true},
			{"receive-only", recvOnly, recvOnly.Account.Address, []string{M}, message(t, recvOnly.Account.Address, recvOnly.Signer, []string{M}, ""), 550, "receive-only", true},
			{"bad iletiTip", ayse, A, []string{M}, message(t, A, ayse.Signer, []string{M}, "X-TR-REM-iletiTip: acil\r\n"), 550, "bad-ileti-tip", true},
		}
		rejections := func(id int64) []string {
			var out []string
			for _, c := range evidenceCodes(t, w, id) {
				if c == "11" {
					out = append(out, c)
				}
			}
			return out
		}
		for _, c := range cases {
			before := len(rejections(c.user.Account.ID))
			pass := c.user.Password
			if c.name == "wrong password" {
				pass = "not the password"
			}
			err := send(t, e.sub, c.user.Account.Address, pass, c.from, c.to, c.msg)
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != c.code {
				t.Errorf("%s: got %v, want %d", c.name, err, c.code)
				continue
			}
			if se.Message == "" || se.EnhancedCode == smtp.EnhancedCodeNotSet {
				t.Errorf("%s: reply without a reason or enhanced code: %+v", c.name, se)
			}
			after := rejections(c.user.Account.ID)
			if !c.evidence {
				if len(after) != before {
					t.Errorf("%s: evidence issued before the message was sent", c.name)
				}
				continue
			}
			if len(after) != before+1 || after[len(after)-1] != "11" {
				t.Errorf("%s: want one rejection evidence, have %v", c.name, after[before:])
				continue
			}
			if got := lastReason(t, w, c.user.Account.ID); got != c.reason {
				t.Errorf("%s: reason %q, want %q (reply: %s)", c.name, got, c.reason, se.Message)
			}
		}
	})
}

func TestAuthOnlyAfterTLS(t *testing.T) {
	w := providertest.New(t, "sqlite")
	e := start(t, w)
	ayse := w.Person("Ayşe", "Demir")
	c, err := smtp.Dial(e.sub)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered before STARTTLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", ayse.Account.Address, ayse.Password)); err == nil {
		t.Fatal("AUTH accepted in clear text")
	}
	// Implicit TLS on the 465-style port, with AUTH LOGIN.
	tc, err := smtp.DialTLS(e.tls, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Auth(sasl.NewLoginClient(ayse.Account.Address, ayse.Password)); err != nil {
		t.Fatalf("AUTH LOGIN over implicit TLS: %v", err)
	}
	if err := tc.Mail("x@hs01.kep.tr", nil); err != nil {
		t.Fatal(err)
	}
}

func TestOperators(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := start(t, w)
		co, main := w.Company("Deniz Lojistik", account.AllGrants)
		reader := w.Operator(co, "Emre", "Şahin", account.SubOperator, account.GrantRead)
		mehmet := w.Person("Mehmet", "Kara")
		M := mehmet.Account.Address
		// The main operator sends for the company, signing with their own certificate.
		if err := send(t, e.sub, main.TCKN, main.Password, co.Address, []string{M}, message(t, co.Address, main.Signer, []string{M}, "")); err != nil {
			t.Fatalf("main operator: %v", err)
		}
		// A read-only sub-operator cannot.
		err := send(t, e.sub, reader.TCKN, reader.Password, co.Address, []string{M}, message(t, co.Address, reader.Signer, []string{M}, ""))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "no send grant") {
			t.Fatalf("read-only operator: %v", err)
		}
		if got := lastReason(t, w, co.ID); got != "no-send-grant" {
			t.Fatalf("reason %s", got)
		}
		// The acceptance evidence names the operator who acted.
		var seq int64
		w.Q().QueryRow(context.Background(), `SELECT MIN(seq) FROM evidence WHERE account_id = ? AND code = 10`, co.ID).Scan(&seq)
		st, _ := evidence.GetSeq(context.Background(), w.Q(), seq)
		ev, _ := evidence.Parse(st.Document)
		if ev.Operator == nil || ev.Operator.Identity != "TCKN:"+main.TCKN {
			t.Fatalf("operator not recorded: %+v", ev.Operator)
		}
	})
}

// TestRealTools drives the server with swaks and openssl: a message signed
// by `openssl cms -sign` and sent with swaks over STARTTLS + AUTH is
// accepted and delivered; the envelope verifies with `openssl smime -verify`.
func TestRealTools(t *testing.T) {
	testtool.Require(t, testtool.SwaksSTARTTLS)
	testtool.Require(t, testtool.OpenSSL)
	providertest.OnSQLite(t, func(t *testing.T, w *providertest.World) {
		e := start(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		A, M := ayse.Account.Address, mehmet.Account.Address
		dir := t.TempDir()
		crt, key, _, err := ayse.Signer.WriteFiles(filepath.Join(dir, "ayse"), "")
		if err != nil {
			t.Fatal(err)
		}
		body := filepath.Join(dir, "body.txt")
		os.WriteFile(body, []byte("Content-Type: text/plain; charset=utf-8\n\nSayın Mehmet Bey, ödeme emri ektedir.\n"), 0o600)
		signedPath := filepath.Join(dir, "signed.eml")
		out, err := exec.Command("openssl", "cms", "-sign", "-in", body, "-signer", crt, "-inkey", key, "-md", "sha256",
			"-from", A, "-to", M, "-subject", "Ödeme emri", "-out", signedPath).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl cms -sign: %v\n%s", err, out)
		}
		swaks := func(to, dataFile string) (string, error) {
			out, err := exec.Command("swaks", "--server", e.sub, "--tls", "--auth", "PLAIN", "--auth-user", A, "--auth-password", ayse.Password,
				"--from", A, "--to", to, "--data", "@"+dataFile, "--timeout", "30").CombinedOutput()
			return string(out), err
		}
		out2, err := swaks(M, signedPath)
		if err != nil || !strings.Contains(out2, "250 2.0.0 Accepted: KEP evidence") {
			t.Fatalf("swaks: %v\n%s", err, out2)
		}
		// Unsigned, signed by someone else, Bcc: each refused with its reason
		// and evidence 11; gmail at RCPT, before the message, without one.
		unsigned := filepath.Join(dir, "unsigned.eml")
		os.WriteFile(unsigned, []byte("From: "+A+"\nTo: "+M+"\nSubject: unsigned\n\nhello\n"), 0o600)
		mcrt, mkey, _, _ := mehmet.Signer.WriteFiles(filepath.Join(dir, "mehmet"), "")
		other := filepath.Join(dir, "other.eml")
		exec.Command("openssl", "cms", "-sign", "-in", body, "-signer", mcrt, "-inkey", mkey, "-from", A, "-to", M, "-subject", "x", "-out", other).Run()
		bcc := filepath.Join(dir, "bcc.eml")
		b, _ := os.ReadFile(signedPath)
		os.WriteFile(bcc, append([]byte("Bcc: "+M+"\n"), b...), 0o600)
		gmail := filepath.Join(dir, "gmail.eml")
		exec.Command("openssl", "cms", "-sign", "-in", body, "-signer", crt, "-inkey", key, "-from", A, "-to", "someone@gmail.com", "-subject", "x", "-out", gmail).Run()
		for _, c := range []struct{ file, to, want string }{
			{unsigned, M, "5.7.5"}, {other, M, "does not belong"}, {bcc, M, "Bcc is not allowed"}, {gmail, "someone@gmail.com", "not a KEP address"},
		} {
			out, _ := swaks(c.to, c.file)
			if !strings.Contains(out, "* 55") || !strings.Contains(out, c.want) {
				t.Errorf("%s: want a 55x reply with %q:\n%s", filepath.Base(c.file), c.want, out)
			}
		}
		// Delivery (the running node delivers at once; this only makes sure).
		if _, err := w.Node.Mailbox.DeliverQueued(context.Background(), 10); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(evidenceCodes(t, w, ayse.Account.ID), " "); got != "10 40 11 11 11" && got != "10 11 11 11 40" {
			t.Errorf("evidence at the sender: %v", got)
		}
		// The envelope verifies with openssl against the provider's CA.
		inbox, _ := mailbox.GetFolder(context.Background(), w.Q(), mehmet.Account.ID, mailbox.Inbox)
		ms, _ := mailbox.ListMessages(context.Background(), w.Q(), inbox.ID)
		if len(ms) != 1 {
			t.Fatalf("inbox has %d messages", len(ms))
		}
		envBytes, _ := w.Node.Mailbox.Content(context.Background(), ms[0])
		envPath := filepath.Join(dir, "envelope.eml")
		os.WriteFile(envPath, envBytes, 0o600)
		out3, err := exec.Command("openssl", "smime", "-verify", "-in", envPath, "-CAfile", w.Node.Config.Path("keys/provider-ca.crt"), "-out", filepath.Join(dir, "inner.eml")).CombinedOutput()
		if err != nil || !strings.Contains(string(out3), "Verification successful") {
			t.Fatalf("openssl smime -verify: %v\n%s", err, out3)
		}
		inner, _ := os.ReadFile(filepath.Join(dir, "inner.eml"))
		orig, _ := os.ReadFile(signedPath)
		if !bytes.Contains(bytes.ReplaceAll(inner, []byte("\r\n"), []byte("\n")), bytes.ReplaceAll(orig, []byte("\r\n"), []byte("\n"))) {
			t.Fatal("the envelope does not contain the original")
		}
	})
}

func TestSizeTimesRecipients(t *testing.T) {
	w := providertest.New(t, "sqlite")
	w.Node.Config.SMTP.MaxTotalBytes = 6000 // each signed test message is about 2.5 KB
	e := start(t, w)
	ayse, mehmet, zehra, ece := w.Person("Ayşe", "Boy"), w.Person("Mehmet", "Boy"), w.Person("Zehra", "Boy"), w.Person("Ece", "Boy")
	A := ayse.Account.Address
	two := []string{mehmet.Account.Address, zehra.Account.Address}
	if err := send(t, e.sub, A, ayse.Password, A, two, message(t, A, ayse.Signer, two, "")); err != nil {
		t.Fatalf("two recipients within the limit: %v", err)
	}
	three := append(two, ece.Account.Address)
	err := send(t, e.sub, A, ayse.Password, A, three, message(t, A, ayse.Signer, three, ""))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 552 || se.EnhancedCode != (smtp.EnhancedCode{5, 3, 4}) || !strings.Contains(se.Message, "recipients") {
		t.Fatalf("three recipients over the limit: %v", err)
	}
	if got := lastReason(t, w, ayse.Account.ID); got != "size-limit" {
		t.Fatalf("reason %s", got)
	}
}

func TestOperatorTCKNIsMasked(t *testing.T) {
	w := providertest.New(t, "sqlite")
	e := start(t, w)
	co, _ := w.Company("Maske Ltd", account.AllGrants)
	reader := w.Operator(co, "Emre", "Maske", account.SubOperator, account.GrantRead)
	mehmet := w.Person("Mehmet", "Maske")
	M := mehmet.Account.Address
	err := send(t, e.sub, reader.TCKN, reader.Password, co.Address, []string{M}, message(t, co.Address, reader.Signer, []string{M}, ""))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || strings.Contains(se.Message, reader.TCKN) {
		t.Fatalf("the reply shows the operator's whole TCKN: %v", err)
	}
}

// TestTooLargeIsEvidenced: a message over smtp.max_message_bytes is
// refused 552 5.3.4 in DATA with rejection evidence (size-limit), its
// digest over the bytes received (the REST API refuses the same way).
func TestTooLargeIsEvidenced(t *testing.T) {
	w := providertest.New(t, "sqlite")
	w.Node.Config.SMTP.MaxMessageBytes = 8 << 10
	e := start(t, w)
	ayse, mehmet := w.Person("Ayşe", "Iri"), w.Person("Mehmet", "Iri")
	A, to := ayse.Account.Address, []string{mehmet.Account.Address}
	big := message(t, A, ayse.Signer, to, strings.Repeat("X-Padding: "+strings.Repeat("x", 100)+"\r\n", 100))
	err := send(t, e.sub, A, ayse.Password, A, to, big)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 552 || se.EnhancedCode != (smtp.EnhancedCode{5, 3, 4}) {
		t.Fatalf("a message over the limit: %v", err)
	}
	if got := lastReason(t, w, ayse.Account.ID); got != "size-limit" {
		t.Fatalf("reason %s, want size-limit rejection evidence", got)
	}
}
