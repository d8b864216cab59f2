package evidence_test

import (
	"crypto/sha256"
	"crypto/x509/pkix"
	"fmt"
	"log"
	"time"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/pki"
)

func Example() {
	// The provider's evidence-signing certificate (development PKI here).
	ca, err := pki.NewRootCA(pkix.Name{CommonName: "KEP Development Root"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	prov, err := ca.IssueProvider("PTT KEP", []string{"hs01.kep.tr"}, pki.ECDSAP256)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := evidence.NewSigner(prov.Key, prov.Cert)
	if err != nil {
		log.Fatal(err)
	}

	original := []byte("...the S/MIME message exactly as submitted, final CRLF included...\r\n")
	digest := sha256.Sum256(original)
	now := time.Now()
	doc, err := signer.Sign(&evidence.Evidence{
		ID:                   evidence.NewID(),
		Code:                 evidence.Rejected,
		EventTime:            now,
		SubmissionTime:       now,
		Reasons:              []evidence.Reason{evidence.ReasonBccNotEmpty()},
		Issuer:               evidence.Issuer{Name: "PTT KEP", Domain: "hs01.kep.tr", Country: "TR"},
		SenderAuthentication: evidence.Authentication{Method: evidence.AuthSMTPCMS, Time: now},
		Sender:               evidence.Party{Address: "ali.veli@hs01.kep.tr", Identity: "TCKN:10000000146", Name: "Ali Veli"},
		Recipients:           []evidence.Party{{Address: "ayse.kaya@hs02.kep.tr"}},
		Message:              evidence.Message{MessageID: "<1@hs01.kep.tr>", IletiTip: evidence.IletiTipStandart, Digest: digest[:], Size: int64(len(original))},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Years later, anyone verifies it offline.
	e, cert, err := evidence.Verify(doc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(e.Code, "/", e.Code.LabelTR())
	fmt.Println(e.Reasons[0].Code)
	fmt.Println("signed by", cert.Subject.CommonName)
	// Output:
	// 11 (rejected by the sender's provider) / gönderici hizmet sağlayıcısınca reddedildi
	// urn:kep:tr:evidence:reason:bcc-not-empty
	// signed by PTT KEP
}
