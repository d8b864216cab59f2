package submission_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/revocation"
	"github.com/kephs/kep/submission"
)

// serveWith starts a submission server of w's node with the given revocation
// policy on a loopback port (STARTTLS) and returns its address.
func serveWith(t *testing.T, w *providertest.World, pol submission.RevocationPolicy) string {
	t.Helper()
	n := w.Node
	srv := submission.New(n.Mailbox, n.Accounts, n.ESign, n.TLSConfig(), submission.Options{
		Hostname: "localhost", Domain: n.Config.Provider.Domain, Revocation: pol})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeSTARTTLS(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// outcome is what a submission got: the SMTP code, the reason code of the
// latest evidence and its code, and whether new evidence was issued.
type outcome struct {
	code     int
	evidence string // "10", "11" or "" (none issued)
	reason   string // the rejection's reason (without the KEP prefix)
	reply    string
}

func submit(t *testing.T, w *providertest.World, addr string, p *providertest.Person, to string, msg []byte) outcome {
	t.Helper()
	before := len(evidenceCodes(t, w, p.Account.ID))
	err := send(t, addr, p.Account.Address, p.Password, p.Account.Address, []string{to}, msg)
	o := outcome{code: 250}
	var se *smtp.SMTPError
	switch {
	case err == nil:
	case errors.As(err, &se):
		o.code, o.reply = se.Code, se.Message
	default:
		t.Fatalf("submit: %v", err)
	}
	// Delivery evidence (40) of earlier messages may arrive meanwhile:
	// look for the submission's own evidence among the new ones.
	for _, c := range evidenceCodes(t, w, p.Account.ID)[before:] {
		if c == "10" || c == "11" {
			o.evidence = c
		}
	}
	if o.evidence == "11" {
		o.reason = strings.TrimPrefix(lastEvidence(t, w, p.Account.ID, 11).Reasons[0].Code, evidence.ReasonKEPBase)
	}
	return o
}

// lastEvidence parses the account's latest evidence with code.
func lastEvidence(t *testing.T, w *providertest.World, accountID int64, code int) *evidence.Evidence {
	t.Helper()
	var seq int64
	if err := w.Q().QueryRow(context.Background(), `SELECT MAX(seq) FROM evidence WHERE account_id = ? AND code = ?`, accountID, code).Scan(&seq); err != nil {
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
	return e
}

// TestCertificateValidAtAcceptance: issue 9 point 2. A certificate that
// expired 30 minutes before acceptance, used with a signing time inside its
// validity, was accepted because the signing time (the sender's claim) was
// the only instant checked. It must be valid at acceptance by the
// provider's clock too.
func TestCertificateValidAtAcceptance(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		e := start(t, w)
		ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
		// Valid for 61 minutes from an hour ago: it expires a minute from
		// now. Signed now; the provider's clock then reads 31 minutes later.
		short, err := w.CA.Issue(pki.Template{Subject: pki.SignerSubject(ayse.TCKN, "Ayşe", "Yılmaz", "TCKN"), NotBefore: time.Now().Add(-time.Hour),
			Validity: 61 * time.Minute, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
		if err != nil {
			t.Fatal(err)
		}
		A, M := ayse.Account.Address, mehmet.Account.Address
		msg := message(t, A, short, []string{M}, "")
		if o := submit(t, w, e.sub, ayse, M, msg); o.code != 250 {
			t.Fatalf("valid certificate refused: %+v", o)
		}
		w.Clock.Advance(31 * time.Minute)
		o := submit(t, w, e.sub, ayse, M, message(t, A, short, []string{M}, ""))
		if o.code != 550 || o.evidence != "11" || o.reason != "untrusted-certificate" || !strings.Contains(o.reply, "expired") {
			t.Fatalf("certificate expired 30 minutes before acceptance: %+v, want 550, evidence 11, untrusted-certificate, \"expired\"", o)
		}
		// The same bytes as the first, accepted, message: the signing time
		// is inside the validity, acceptance is not.
		if o := submit(t, w, e.sub, ayse, M, msg); o.code != 550 || o.evidence != "11" {
			t.Fatalf("message signed while valid, submitted after expiry: %+v", o)
		}
	})
}

// nested returns a MIME entity whose multipart/mixed parts nest depth deep.
func nested(depth int) []byte {
	var b strings.Builder
	for i := 1; i < depth; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\nİç içe.\r\n")
	for i := depth - 1; i >= 1; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return []byte(b.String())
}

// TestMIMEDepth: issue 9 point 6. MIME nested 1,000 deep was accepted.
func TestMIMEDepth(t *testing.T) {
	w := providertest.New(t, "sqlite")
	e := start(t, w)
	ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
	A, M := ayse.Account.Address, mehmet.Account.Address
	for _, tt := range []struct {
		depth    int // of the signed entity; the multipart/signed adds one level
		code     int
		evidence string
	}{
		{1, 250, "10"},
		{10, 250, "10"},
		{31, 250, "10"},
		{32, 550, "11"},
		{1000, 550, "11"},
	} {
		hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: nested\r\nMessage-ID: <%d@test>\r\nMIME-Version: 1.0\r\n", A, M, time.Now().UnixNano())
		msg, err := cms.BuildSigned([]byte(hdr), nested(tt.depth), ayse.Signer.Key, ayse.Signer.Cert, nil)
		if err != nil {
			t.Fatal(err)
		}
		o := submit(t, w, e.sub, ayse, M, msg)
		if o.code != tt.code || o.evidence != tt.evidence || (tt.code == 550 && o.reason != "mime-too-deep") {
			t.Errorf("depth %d: %+v, want %d with evidence %s", tt.depth, o, tt.code, tt.evidence)
		}
	}
}

// TestUnregisteredCertificate: issue 9 point 6, decided in
// docs/certificates.md: any valid qualified certificate bound to the
// signer's TCKN may sign, registered to the account or not; a certificate
// bound to another TCKN may not.
func TestUnregisteredCertificate(t *testing.T) {
	w := providertest.New(t, "sqlite")
	e := start(t, w)
	ayse, mehmet := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk")
	A, M := ayse.Account.Address, mehmet.Account.Address
	renewed := w.Signer(ayse.TCKN, "Ayşe", "Yılmaz") // never registered, Ayşe's TCKN
	stranger := w.Signer(w.TCKN(), "Ayşe", "Yılmaz") // same name, another person
	for _, tt := range []struct {
		name   string
		signer *pki.Issued
		code   int
		reason string
	}{
		{"registered certificate", ayse.Signer, 250, ""},
		{"never-registered certificate with the account's TCKN", renewed, 250, ""},
		{"certificate with another TCKN", stranger, 550, "identity-mismatch"},
	} {
		o := submit(t, w, e.sub, ayse, M, message(t, A, tt.signer, []string{M}, ""))
		if o.code != tt.code || o.reason != tt.reason {
			t.Errorf("%s: %+v, want %d %s", tt.name, o, tt.code, tt.reason)
		}
	}
}

// TestRevocation: issue 9 point 2. The development CA publishes a CRL and
// answers OCSP; a revoked certificate is refused with rejection evidence; an
// unreachable revocation source is a temporary failure without evidence, or
// with "accept and record" an acceptance that says so; the OCSP response
// that showed the certificate good is cited by the acceptance evidence and
// stored once.
func TestRevocation(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		rs, err := pki.DevRevocationServer(w.CA, "127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.Close() })
		checker := revocation.New(revocation.Options{Now: w.Clock.Now})
		strict := serveWith(t, w, submission.RevocationPolicy{Checker: checker})
		lenient := serveWith(t, w, submission.RevocationPolicy{Checker: checker, AcceptUnavailable: true})

		ayse, mehmet, ali := w.Person("Ayşe", "Yılmaz"), w.Person("Mehmet", "Öztürk"), w.Person("Ali", "Kaya")
		M := mehmet.Account.Address
		msg := func(p *providertest.Person) []byte { return message(t, p.Account.Address, p.Signer, []string{M}, "") }

		// Good: accepted, the evidence cites the OCSP response, stored once.
		for i := range 2 {
			o := submit(t, w, strict, ayse, M, msg(ayse))
			if o.code != 250 || o.evidence != "10" {
				t.Fatalf("good certificate, message %d: %+v", i+1, o)
			}
		}
		ev := lastEvidence(t, w, ayse.Account.ID, 10)
		refs, err := evidence.RevocationRefs(ev)
		if err != nil || len(refs) != 1 || refs[0].Kind != revocation.KindOCSP || refs[0].Serial.Cmp(ayse.Signer.Cert.SerialNumber) != 0 {
			t.Fatalf("acceptance evidence cites %+v (%v), want one OCSP response about the signer", refs, err)
		}
		var rows int
		w.Q().QueryRow(context.Background(), `SELECT COUNT(*) FROM revocation_data`).Scan(&rows)
		if rows != 1 {
			t.Errorf("two acceptances citing one OCSP response stored %d rows, want 1", rows)
		}
		data, err := revocation.Get(context.Background(), w.Q(), fmt.Sprintf("%x", refs[0].Digest))
		if err != nil {
			t.Fatal(err)
		}
		if err := evidence.CheckRevocation(ev, [][]byte{data.DER}); err != nil {
			t.Errorf("the cited data does not show the certificate good: %v", err)
		}
		if _, err := w.Q().Exec(context.Background(), `DELETE FROM revocation_data`); err == nil {
			t.Errorf("revocation data cited by evidence could be deleted")
		}

		// The bundle carries the data; `kep verify` checks it.
		checkBundle(t, w, ayse.Account.ID)

		// Revoked: refused, with rejection evidence naming the reason.
		w.CA.Revoke(ali.Signer.Cert.SerialNumber, w.Clock.Now().Add(-time.Minute), 1)
		o := submit(t, w, strict, ali, M, msg(ali))
		if o.code != 550 || o.evidence != "11" || o.reason != "certificate-revoked" || !strings.Contains(o.reply, "keyCompromise") {
			t.Errorf("revoked certificate: %+v, want 550, evidence 11, certificate-revoked", o)
		}

		// Unreachable: 451 and no evidence; "accept and record" accepts and
		// says so in the evidence.
		rs.Close()
		ece := w.Person("Ece", "Tan") // its certificate names the closed server
		o = submit(t, w, strict, ece, M, msg(ece))
		if o.code != 451 || o.evidence != "" || !strings.Contains(o.reply, "again later") {
			t.Errorf("revocation source unreachable: %+v, want 451 and no evidence", o)
		}
		o = submit(t, w, lenient, ece, M, msg(ece))
		if o.code != 250 || o.evidence != "10" {
			t.Fatalf("unreachable, accept and record: %+v", o)
		}
		recorded := false
		for _, p := range lastEvidence(t, w, ece.Account.ID, 10).Properties {
			recorded = recorded || p.Name == evidence.PropertyRevocationUnavailable
		}
		if !recorded {
			t.Errorf("accepted without a revocation check, and the evidence does not say so")
		}

		// A certificate naming no revocation source is not qualified.
		w.CA.CRLURL, w.CA.OCSPURL = "", ""
		bare := w.Person("Can", "Ak")
		if o := submit(t, w, strict, bare, M, msg(bare)); o.code != 550 || o.evidence != "11" || o.reason != "untrusted-certificate" {
			t.Errorf("certificate without revocation source: %+v", o)
		}
		dev := serveWith(t, w, submission.RevocationPolicy{Checker: checker, AllowNoSource: true})
		if o := submit(t, w, dev, bare, M, msg(bare)); o.code != 250 || o.evidence != "10" {
			t.Errorf("certificate without revocation source, allowed: %+v", o)
		}
	})
}

// checkBundle checks that the bundle of the account's latest acceptance
// carries the revocation data it cites, that it verifies, and that altered
// or missing revocation data does not.
func checkBundle(t *testing.T, w *providertest.World, accountID int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := w.Node.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := w.Q().QueryRow(ctx, `SELECT MAX(seq) FROM evidence WHERE account_id = ? AND code = 10`, accountID).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	data, err := w.Node.Bundle(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	provCA, err := pki.LoadCertsPEM(w.Node.Config.Path("keys/provider-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(provCA[0])
	anchors := evidence.Anchors{ProviderCAs: pool, TSACAs: w.Node.TSARoots, LogKeys: []string{w.Node.LogKey}}
	rep := evidence.VerifyBundle(data, anchors, nil)
	checked := false
	for _, c := range rep.Checks {
		checked = checked || (c.Name == evidence.CheckRevocationData && c.OK)
	}
	if !rep.Valid || !checked {
		t.Fatalf("bundle with revocation data: valid %v, checks %+v", rep.Valid, rep.Checks)
	}
	b, err := evidence.ParseBundle(data)
	if err != nil || len(b.Revocation) != 1 {
		t.Fatalf("bundle carries %d revocation members (%v), want 1", len(b.Revocation), err)
	}
	good := b.Revocation
	for _, tt := range []struct {
		name string
		rev  [][]byte
	}{
		{"altered", [][]byte{append(append([]byte(nil), good[0][:len(good[0])-1]...), good[0][len(good[0])-1]^1)}},
		{"missing", nil},
		{"an extra one", [][]byte{good[0], good[0][:len(good[0])-1]}},
	} {
		b.Revocation = tt.rev
		altered, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		rep := evidence.VerifyBundle(altered, anchors, nil)
		failed := false
		for _, c := range rep.Checks {
			failed = failed || (c.Name == evidence.CheckRevocationData && !c.OK)
		}
		if rep.Valid || !failed {
			t.Errorf("bundle with %s revocation data: valid %v, checks %+v", tt.name, rep.Valid, rep.Checks)
		}
	}
}
