package evidence

import (
	"crypto/sha256"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/pki"
)

// testPKI is a development CA with an ECDSA P-256 and an RSA-2048 provider
// certificate, made once per test binary (RSA key generation is slow).
type testPKI struct {
	ca    *pki.CA
	ecdsa *pki.Issued
	rsa   *pki.Issued
	other *pki.Issued // a second ECDSA provider, for certificate swaps
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiErr  error
)

func getPKI(tb testing.TB) *testPKI {
	tb.Helper()
	pkiOnce.Do(func() {
		p := &testPKI{}
		if p.ca, pkiErr = pki.NewRootCA(pkix.Name{Country: []string{"TR"}, Organization: []string{"KEP Development"}, CommonName: "KEP Development Root"}, pki.ECDSAP256, 10*365*24*time.Hour); pkiErr != nil {
			return
		}
		if p.ecdsa, pkiErr = p.ca.IssueProvider("PTT KEP Hizmet Sağlayıcısı", []string{"hs01.kep.tr"}, pki.ECDSAP256); pkiErr != nil {
			return
		}
		if p.rsa, pkiErr = p.ca.IssueProvider("PTT KEP Hizmet Sağlayıcısı", []string{"hs01.kep.tr"}, pki.RSA2048); pkiErr != nil {
			return
		}
		p.other, pkiErr = p.ca.IssueProvider("Başka KEP", []string{"hs02.kep.tr"}, pki.ECDSAP256)
		pkiVal = p
	})
	if pkiErr != nil {
		tb.Fatal(pkiErr)
	}
	return pkiVal
}

// keyKinds names the two provider keys the tests sign with.
var keyKinds = []string{"ecdsa-p256", "rsa-2048"}

func (p *testPKI) signer(tb testing.TB, kind string) *Signer {
	tb.Helper()
	is := p.ecdsa
	if kind == "rsa-2048" {
		is = p.rsa
	}
	s, err := NewSigner(is.Key, is.Cert)
	if err != nil {
		tb.Fatal(err)
	}
	s.Now = func() time.Time { return fixedSigningTime }
	return s
}

// caFile writes the CA certificate for xmlsec1 and returns its path.
func (p *testPKI) caFile(tb testing.TB, dir string) string {
	tb.Helper()
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pki.CertPEM(p.ca.Cert), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

var (
	t0               = time.Date(2025, 3, 14, 9, 26, 53, 589_793_238, time.UTC)
	fixedSigningTime = t0.Add(2 * time.Hour)
	originalDigest   = sha256.Sum256([]byte("MIME-Version: 1.0\r\nContent-Type: multipart/signed; ...\r\n"))
)

// sample returns a fully populated evidence of code c, with Turkish letters
// and XML special characters in the places that may carry them.
func sample(c Code) *Evidence {
	e := &Evidence{
		ID:             "0195936c-6f1a-7c3e-9a4b-2d5e6f708192",
		Code:           c,
		EventTime:      t0,
		SubmissionTime: t0,
		IssuerPolicyID: "urn:kep:tr:hs01:policy:evidence:1",
		Issuer:         Issuer{Name: "PTT KEP Hizmet Sağlayıcısı", Domain: "hs01.kep.tr", Country: "TR"},
		SenderAuthentication: Authentication{
			Method: AuthSMTPCMS,
			Time:   t0.Add(-1500 * time.Millisecond),
		},
		Sender:     Party{Address: "acme@acme.hs01.kep.tr", Identity: "VKN:1234567890", Name: "ACME Sanayi ve Ticaret A.Ş."},
		Operator:   &Party{Address: "ayse.yilmaz@acme.hs01.kep.tr", Identity: "TCKN:10000000146", Name: "Ayşe Yılmaz"},
		Recipients: []Party{{Address: "mehmet.ozturk@hs02.kep.tr", Identity: "TCKN:10000000078", Name: "Mehmet Öztürk"}},
		Message: Message{
			MessageID:       "<20250314092653.4711@acme.hs01.kep.tr>",
			IletiID:         "hs01-20250314-000000042",
			IletiTip:        IletiTipETebligat,
			DigestAlgorithm: DigestSHA256,
			Digest:          originalDigest[:],
			Size:            48213,
		},
		Properties: []Property{{Name: "batch", Value: `toplu-2025/03 "Mart" & <özel>`}},
	}
	switch c {
	case Accepted:
	case Rejected:
		e.Reasons = []Reason{ReasonNotSigned(), ReasonBccNotEmpty()}
	case RelayRejected:
		e.Reasons = []Reason{ReasonUnknownRecipient()}
	case RelayFailure:
		e.Reasons = []Reason{ReasonRelayTimeout()}
	case NotDelivered:
		e.Reasons = []Reason{ReasonMailboxFull()}
	case DeemedRead:
		e.Reasons = []Reason{ReasonDeemedReadETebligat5Days()}
	}
	if c != Accepted && c != Rejected {
		e.RelatedEvidence = "0195936c-6f1a-7c3e-9a4b-2d5e6f708191"
		e.EventTime = t0.Add(time.Duration(c) * time.Minute)
	}
	return e
}

// truncated returns e with times as Marshal writes them, for comparisons
// after a round trip.
func truncated(e *Evidence) *Evidence {
	c := *e
	tr := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.UTC().Truncate(time.Millisecond)
	}
	c.EventTime = tr(c.EventTime)
	c.SubmissionTime = tr(c.SubmissionTime)
	c.SenderAuthentication.Time = tr(c.SenderAuthentication.Time)
	return &c
}
