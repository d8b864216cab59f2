package evidence

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"crypto/x509/pkix"

	"github.com/kephs/kep/internal/testtool"
	"github.com/kephs/kep/pki"
)

// Tests against the standard tools: xmlsec1 (signature) and xmllint (XSD).
// They skip when the tool is missing, or fail under KEP_REQUIRE_TOOLS=1.

var writeSamples = flag.String("evidence.samples", "", "write signed sample evidence to this directory")

// xmlsec1Verify runs the command documented in doc.go.
func xmlsec1Verify(t *testing.T, xmlsec, ca, dir, name string, doc []byte) (bool, string) {
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmlsec, "--verify", "--trusted-pem", ca, f).CombinedOutput()
	return err == nil && bytes.Contains(out, []byte("OK")), string(out)
}

func TestXMLSec1(t *testing.T) {
	xmlsec := testtool.Require(t, testtool.XMLSec1OpenSSL)
	p := getPKI(t)
	dir := t.TempDir()
	ca := p.caFile(t, dir)
	type job struct {
		name   string
		doc    []byte
		wantOK bool
	}
	var jobs []job
	for _, kind := range keyKinds {
		s := p.signer(t, kind)
		for _, c := range Codes {
			signed, err := s.Sign(sample(c))
			if err != nil {
				t.Fatal(err)
			}
			if *writeSamples != "" {
				if err := os.MkdirAll(*writeSamples, 0o755); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(*writeSamples, fmt.Sprintf("%d-%s.xml", c, kind)), signed, 0o644)
			}
			name := fmt.Sprintf("%s %d", kind, c)
			jobs = append(jobs, job{name, signed, true})
			// Element text, an attribute (isNotification="0" is the same
			// xs:boolean, and Parse accepts it, but not the same bytes), the
			// signature value.
			id := []byte("<EvidenceIdentifier>0195936c")
			jobs = append(jobs,
				job{name + " text", bytes.Replace(signed, id, []byte("<EvidenceIdentifier>0195936d"), 1), false},
				job{name + " attribute", bytes.Replace(signed, []byte(`isNotification="false"`), []byte(`isNotification="0"`), 1), false},
				job{name + " signature", flipSignature(signed), false})
		}
		// The detailed tamper list, on one code.
		signed, _ := s.Sign(sample(Delivered))
		for _, tc := range tampers {
			jobs = append(jobs, job{kind + " " + tc.name, bytes.Replace(signed, []byte(tc.old), []byte(tc.new), 1), false})
		}
		// Equivalent re-serialisations verify.
		for name, doc := range reserialisations(t, signed) {
			jobs = append(jobs, job{kind + " " + name, doc, true})
		}
	}
	for _, j := range jobs {
		_, _, err := Verify(j.doc)
		if (err == nil) != j.wantOK {
			t.Errorf("%s: Go Verify = %v, want ok=%v", j.name, err, j.wantOK)
		}
	}
	// xmlsec1, a few at a time.
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok, out := xmlsec1Verify(t, xmlsec, ca, dir, fmt.Sprintf("ev%d.xml", i), j.doc)
			if ok != j.wantOK {
				t.Errorf("%s: xmlsec1 ok=%v, want %v:\n%s", j.name, ok, j.wantOK, out)
			}
		}()
	}
	wg.Wait()

	// A certificate from an unknown CA is refused (trust is checked by
	// xmlsec1 here; in Go it is the caller's job).
	stranger, err := pki.NewRootCA(pkix.Name{CommonName: "Stranger Root"}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	strangerPEM := filepath.Join(dir, "stranger.pem")
	if err := os.WriteFile(strangerPEM, pki.CertPEM(stranger.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	signed, _ := p.signer(t, "ecdsa-p256").Sign(sample(Read))
	if ok, _ := xmlsec1Verify(t, xmlsec, strangerPEM, dir, "stranger.xml", signed); ok {
		t.Error("xmlsec1 accepts a signature without the right trust anchor")
	}
}

// schemaPath is docs/evidence-schema/kep-evidence.xsd in the module.
func schemaPath(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "docs", "evidence-schema", "kep-evidence.xsd")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestXSD(t *testing.T) {
	xmllint := testtool.Require(t, testtool.XMLLint)
	xsd := schemaPath(t)
	p := getPKI(t)
	dir := t.TempDir()
	var files []string
	for _, kind := range keyKinds {
		s := p.signer(t, kind)
		for _, c := range Codes {
			signed, err := s.Sign(sample(c))
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(dir, fmt.Sprintf("%d-%s.xml", c, kind))
			os.WriteFile(f, signed, 0o644)
			files = append(files, f)
		}
	}
	unsigned, _ := Marshal(sample(DeemedRead))
	f := filepath.Join(dir, "unsigned.xml")
	os.WriteFile(f, unsigned, 0o644)
	files = append(files, f)
	minimal := &Evidence{ID: NewID(), Code: Delivered, EventTime: t0, Issuer: Issuer{"X", "hs09.kep.tr", "TR"},
		Sender: Party{Address: "a@hs09.kep.tr"}, Recipients: []Party{{Address: "b@hs09.kep.tr"}},
		Message: Message{Digest: originalDigest[:]}}
	m, err := Marshal(minimal)
	if err != nil {
		t.Fatal(err)
	}
	f = filepath.Join(dir, "minimal.xml")
	os.WriteFile(f, m, 0o644)
	files = append(files, f)

	for _, f := range files {
		out, err := exec.Command(xmllint, "--noout", "--schema", xsd, f).CombinedOutput()
		if err != nil {
			t.Errorf("%s: xmllint: %v\n%s", filepath.Base(f), err, out)
		}
	}
	// The schema is not a rubber stamp.
	bad := bytes.Replace(unsigned, []byte("<kep:Size>"), []byte("<kep:Size>-"), 1)
	f = filepath.Join(dir, "bad.xml")
	os.WriteFile(f, bad, 0o644)
	if out, err := exec.Command(xmllint, "--noout", "--schema", xsd, f).CombinedOutput(); err == nil {
		t.Errorf("xmllint accepts a negative size:\n%s", out)
	}
}

// flipSignature changes one base64 character of the SignatureValue.
func flipSignature(signed []byte) []byte {
	i := bytes.Index(signed, []byte("<ds:SignatureValue>")) + len("<ds:SignatureValue>") + 5
	bad := append([]byte{}, signed...)
	bad[i] = map[bool]byte{true: 'B', false: 'A'}[bad[i] == 'A']
	return bad
}
