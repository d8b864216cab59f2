package evidence

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

func TestCodes(t *testing.T) {
	want := []struct {
		c        Code
		elem     string
		event    string
		positive bool
	}{
		{Accepted, "SubmissionAcceptanceRejection", "http://uri.etsi.org/REM/Event#Acceptance", true},
		{Rejected, "SubmissionAcceptanceRejection", "http://uri.etsi.org/REM/Event#Rejection", false},
		{RelayAccepted, "RelayREMMDAcceptanceRejection", "urn:kep:tr:evidence:event:RelayAcceptance", true},
		{RelayRejected, "RelayREMMDAcceptanceRejection", "urn:kep:tr:evidence:event:RelayRejection", false},
		{RelayFailure, "RelayREMMDFailure", "urn:kep:tr:evidence:event:RelayFailure", false},
		{Delivered, "DeliveryNonDeliveryToRecipient", "http://uri.etsi.org/REM/Event#Delivery", true},
		{NotDelivered, "DeliveryNonDeliveryToRecipient", "urn:kep:tr:evidence:event:NonDelivery", false},
		{Read, "RetrievalNonRetrievalByRecipient", "http://uri.etsi.org/REM/Event#Retrieval", true},
		{DeemedRead, "RetrievalNonRetrievalByRecipient", "urn:kep:tr:evidence:event:DeemedRetrieval", true},
	}
	if len(want) != len(Codes) {
		t.Fatalf("Codes has %d entries, test %d", len(Codes), len(want))
	}
	seen := map[[2]string]Code{}
	for i, w := range want {
		c := w.c
		if Codes[i] != c || !c.Valid() || c.Element() != w.elem || c.EventURI() != w.event || c.Positive() != w.positive {
			t.Errorf("code %d: got %v %q %q %v", int(c), c.Valid(), c.Element(), c.EventURI(), c.Positive())
		}
		if c.Label() == "" || c.LabelTR() == "" || !strings.HasPrefix(c.String(), strings.TrimSpace(c.String()[:2])) {
			t.Errorf("code %d: labels %q %q", int(c), c.Label(), c.LabelTR())
		}
		k := [2]string{c.Element(), c.EventURI()}
		if o, dup := seen[k]; dup {
			t.Errorf("codes %d and %d share element and event", int(o), int(c))
		}
		seen[k] = c
	}
	if Code(50).Valid() || Code(50).Element() != "" || Code(50).Label() != "unknown" {
		t.Error("code 50 should be invalid")
	}
}

// c14n runs goxmldsig's exclusive canonicaliser over el (detached with its
// in-scope namespaces), the reference the hand-written canonical form is
// checked against.
func c14n(t testing.TB, el *etree.Element) []byte {
	t.Helper()
	ctx, err := etreeutils.NSBuildParentContext(el)
	if err != nil {
		t.Fatal(err)
	}
	d, err := etreeutils.NSDetatch(ctx, el)
	if err != nil {
		t.Fatal(err)
	}
	out, err := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustDoc(t testing.TB, data []byte) *etree.Document {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestMarshalIsCanonical: the unsigned document is deterministic and is its
// own exclusive canonical form.
func TestMarshalIsCanonical(t *testing.T) {
	for _, c := range Codes {
		e := sample(c)
		a, err := Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Marshal(sample(c))
		if !bytes.Equal(a, b) {
			t.Fatalf("%d: Marshal not deterministic", c)
		}
		if got := c14n(t, mustDoc(t, a).Root()); !bytes.Equal(got, a) {
			t.Errorf("%d: output is not canonical\n ours: %s\nc14n: %s", c, a, got)
		}
	}
	// Minimal evidence too: optional parts absent.
	e := &Evidence{ID: NewID(), Code: Delivered, EventTime: t0, Issuer: Issuer{"X", "hs09.kep.tr", "TR"},
		Sender: Party{Address: "a@hs09.kep.tr"}, Recipients: []Party{{Address: "b@hs09.kep.tr"}},
		Message: Message{Digest: originalDigest[:]}}
	a, err := Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if got := c14n(t, mustDoc(t, a).Root()); !bytes.Equal(got, a) {
		t.Errorf("minimal output is not canonical\n ours: %s\nc14n: %s", a, got)
	}
}

// TestSignedPartsAreCanonical: the three octet streams Sign digests or
// signs are what a real canonicaliser makes of the signed document.
func TestSignedPartsAreCanonical(t *testing.T) {
	p := getPKI(t)
	for _, kind := range keyKinds {
		s := p.signer(t, kind)
		for _, c := range Codes {
			e := sample(c)
			signed, err := s.Sign(e)
			if err != nil {
				t.Fatal(err)
			}
			unsigned, _ := Marshal(e)
			doc := mustDoc(t, signed)
			root := doc.Root()
			sig := root.ChildElements()[len(root.ChildElements())-1]

			rc := root.Copy()
			rc.RemoveChildAt(sig.Index())
			if got := c14n(t, rc); !bytes.Equal(got, unsigned) {
				t.Errorf("%s %d: document minus signature:\n ours: %s\nc14n: %s", kind, c, unsigned, got)
			}
			si := sig.SelectElement("SignedInfo")
			if got, want := c14n(t, si), between(signed, "<ds:SignedInfo", "</ds:SignedInfo>"); !bytes.Equal(got, want) {
				t.Errorf("%s %d: SignedInfo:\n ours: %s\nc14n: %s", kind, c, want, got)
			}
			sp := sig.FindElement("./Object/QualifyingProperties/SignedProperties")
			if got, want := c14n(t, sp), between(signed, "<xades:SignedProperties", "</xades:SignedProperties>"); !bytes.Equal(got, want) {
				t.Errorf("%s %d: SignedProperties:\n ours: %s\nc14n: %s", kind, c, want, got)
			}
		}
	}
}

func between(b []byte, start, end string) []byte {
	i := bytes.Index(b, []byte(start))
	j := bytes.Index(b, []byte(end))
	return b[i : j+len(end)]
}

func TestRoundTrip(t *testing.T) {
	for _, c := range Codes {
		e := sample(c)
		data, err := Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(data)
		if err != nil {
			t.Fatalf("%d: %v\n%s", c, err, data)
		}
		if want := truncated(e); !reflect.DeepEqual(got, want) {
			t.Errorf("%d: round trip\n got %+v\nwant %+v", c, got, want)
		}
	}
}

func TestSignVerify(t *testing.T) {
	p := getPKI(t)
	for _, kind := range keyKinds {
		s := p.signer(t, kind)
		for _, c := range Codes {
			e := sample(c)
			signed, err := s.Sign(e)
			if err != nil {
				t.Fatal(err)
			}
			got, cert, err := Verify(signed)
			if err != nil {
				t.Fatalf("%s %d: %v", kind, c, err)
			}
			if !cert.Equal(s.Certificate()) {
				t.Errorf("%s %d: wrong certificate returned", kind, c)
			}
			if want := truncated(e); !reflect.DeepEqual(got, want) {
				t.Errorf("%s %d: verified evidence differs\n got %+v\nwant %+v", kind, c, got, want)
			}
			// Parse accepts the signed document too.
			if pe, err := Parse(signed); err != nil || !reflect.DeepEqual(pe, got) {
				t.Errorf("%s %d: Parse(signed) = %v", kind, c, err)
			}
		}
	}
}

// TestDeterministic: with a fixed clock, two signatures of the same evidence
// differ only in the SignatureValue (ECDSA is randomised), and the unsigned
// part is byte-identical to Marshal.
func TestDeterministic(t *testing.T) {
	p := getPKI(t)
	s := p.signer(t, "ecdsa-p256")
	a, err := s.Sign(sample(Delivered))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Sign(sample(Delivered))
	if err != nil {
		t.Fatal(err)
	}
	strip := func(d []byte) []byte {
		return append(append([]byte{}, d[:bytes.Index(d, []byte("<ds:SignatureValue>"))]...), d[bytes.Index(d, []byte("</ds:SignatureValue>")):]...)
	}
	if !bytes.Equal(strip(a), strip(b)) {
		t.Errorf("signed documents differ outside SignatureValue:\n%s\n%s", a, b)
	}
	m, _ := Marshal(sample(Delivered))
	if !bytes.HasPrefix(a, m[:len(m)-len("</DeliveryNonDeliveryToRecipient>")]) {
		t.Error("signed document does not start with the unsigned one")
	}
	// RSA PKCS#1 v1.5 is deterministic: whole documents are identical.
	r := p.signer(t, "rsa-2048")
	a, _ = r.Sign(sample(Read))
	b, _ = r.Sign(sample(Read))
	if !bytes.Equal(a, b) {
		t.Error("RSA-signed documents differ")
	}
}

// tamper lists byte-level changes to a signed sample document that keep it
// well-formed and parseable but must break verification.
var tampers = []struct {
	name, old, new string
	want           error // Go's error; xmlsec1 must fail too
	xmlsecOK       bool  // change to an unsigned part xmlsec1 does not check
}{
	{"event time", "<EventTime>2025-03-14T", "<EventTime>2025-03-15T", ErrDigestMismatch, false},
	{"recipient", "mehmet.ozturk@hs02.kep.tr", "mehmet.ozturk@hs03.kep.tr", ErrDigestMismatch, false},
	{"identity", "TCKN:10000000078", "TCKN:10000000079", ErrDigestMismatch, false},
	{"message digest", "<ds:DigestValue" + xmlnsDS + ">", "<ds:DigestValue" + xmlnsDS + ">A", nil, false},
	{"size", "<kep:Size>48213<", "<kep:Size>48214<", ErrDigestMismatch, false},
	{"attribute", `<kep:Property Name="batch">`, `<kep:Property Name="batcH">`, ErrDigestMismatch, false},
	{"escaped text", "&lt;özel&gt;", "&lt;ozel&gt;", ErrDigestMismatch, false},
	{"signing time", "<xades:SigningTime>2025", "<xades:SigningTime>2026", ErrDigestMismatch, false},
	{"signature method", "xmldsig-more#", "xmldsig-more#x", nil, false},
	{"reference digest", "<ds:DigestValue>", "<ds:DigestValue>AAAA", nil, false},
}

func TestTamper(t *testing.T) {
	p := getPKI(t)
	for _, kind := range keyKinds {
		s := p.signer(t, kind)
		signed, err := s.Sign(sample(Delivered))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range tampers {
			bad := bytes.Replace(signed, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(bad, signed) {
				t.Fatalf("%s: %q not found", tc.name, tc.old)
			}
			_, _, err := Verify(bad)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("%s %s: Verify = %v, want %v", kind, tc.name, err, tc.want)
			}
		}
		// The signature value itself.
		if _, _, err := Verify(flipSignature(signed)); !errors.Is(err, ErrBadSignatureValue) {
			t.Errorf("%s signature value: Verify = %v", kind, err)
		}
	}
}

// TestSwappedCertificate: KeyInfo replaced by another provider's certificate.
func TestSwappedCertificate(t *testing.T) {
	p := getPKI(t)
	s := p.signer(t, "ecdsa-p256")
	signed, _ := s.Sign(sample(Accepted))
	other, _ := NewSigner(p.other.Key, p.other.Cert)
	bad := bytes.Replace(signed, []byte(s.keyInfo), []byte(other.keyInfo), 1)
	if _, _, err := Verify(bad); !errors.Is(err, ErrSigningCertMismatch) {
		t.Errorf("Verify = %v, want ErrSigningCertMismatch", err)
	}
}

func TestVerifyReserialised(t *testing.T) {
	p := getPKI(t)
	for _, kind := range keyKinds {
		signed, _ := p.signer(t, kind).Sign(sample(NotDelivered))
		for name, doc := range reserialisations(t, signed) {
			if _, _, err := Verify(doc); err != nil {
				t.Errorf("%s %s: %v\n%s", kind, name, err, doc)
			}
		}
	}
}

// reserialisations returns the signed document written differently but
// equivalently: what another XML stack might do on the way.
func reserialisations(t testing.TB, signed []byte) map[string][]byte {
	doc := mustDoc(t, signed)
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	doc.Child = append(doc.Child[len(doc.Child)-1:], doc.Child[:len(doc.Child)-1]...) // declaration first
	etreeOut, err := doc.WriteToBytes()                                               // <a/> for empty elements, &apos; etc.
	if err != nil {
		t.Fatal(err)
	}
	// Attributes in reverse order, single-quoted.
	d2 := mustDoc(t, signed)
	for _, el := range d2.FindElements("//*") {
		for i, j := 0, len(el.Attr)-1; i < j; i, j = i+1, j-1 {
			el.Attr[i], el.Attr[j] = el.Attr[j], el.Attr[i]
		}
	}
	d2.WriteSettings.AttrSingleQuote = true
	reversed, err := d2.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	crlf := bytes.ReplaceAll(append([]byte("<?xml version=\"1.0\"?>\n"), signed...), []byte("\n"), []byte("\r\n"))
	comment := bytes.Replace(signed, []byte("<EventTime>"), []byte("<!-- a comment --><EventTime>"), 1)
	charRef := bytes.Replace(signed, []byte("A.Ş."), []byte("A.&#x15E;."), 1)
	return map[string][]byte{"etree": etreeOut, "reversed attributes": reversed, "crlf declaration": crlf, "comment": comment, "character reference": charRef}
}

func TestVerifyUnsigned(t *testing.T) {
	data, _ := Marshal(sample(Accepted))
	if _, _, err := Verify(data); !errors.Is(err, ErrNoSignature) {
		t.Errorf("Verify(unsigned) = %v", err)
	}
}

func TestValidate(t *testing.T) {
	cases := map[string]func(e *Evidence){
		"code":              func(e *Evidence) { e.Code = 12 },
		"id":                func(e *Evidence) { e.ID = "not-a-uuid" },
		"upper-case id":     func(e *Evidence) { e.ID = strings.ToUpper(e.ID) },
		"event time":        func(e *Evidence) { e.EventTime = e.EventTime.AddDate(-3000, 0, 0) },
		"no reason":         func(e *Evidence) { e.Code = NotDelivered; e.Reasons = nil },
		"no recipients":     func(e *Evidence) { e.Recipients = nil },
		"control char":      func(e *Evidence) { e.Sender.Name = "a\nb" },
		"bad utf-8":         func(e *Evidence) { e.Sender.Name = "a\xffb" },
		"identity":          func(e *Evidence) { e.Sender.Identity = "12345678901" },
		"country":           func(e *Evidence) { e.Issuer.Country = "tr" },
		"digest size":       func(e *Evidence) { e.Message.Digest = e.Message.Digest[:20] },
		"digest alg":        func(e *Evidence) { e.Message.DigestAlgorithm = "http://www.w3.org/2000/09/xmldsig#sha1" },
		"property name":     func(e *Evidence) { e.Properties = []Property{{Name: "a b"}} },
		"auth without time": func(e *Evidence) { e.SenderAuthentication = Authentication{Method: AuthSMTPCMS} },
	}
	for name, mutate := range cases {
		e := sample(Accepted)
		mutate(e)
		if err := e.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
		if _, err := Marshal(e); err == nil {
			t.Errorf("%s: Marshal accepted it", name)
		}
	}
	if err := sample(Accepted).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestNewID(t *testing.T) {
	a, b := NewID(), NewID()
	if a == b || checkUUID("ID", a, true) != nil || a[14] != '7' {
		t.Errorf("NewID: %q %q", a, b)
	}
}

func TestNewSignerErrors(t *testing.T) {
	p := getPKI(t)
	if _, err := NewSigner(p.ecdsa.Key, p.rsa.Cert); err == nil {
		t.Error("mismatched key and certificate accepted")
	}
	if _, err := NewSigner(nil, nil); err == nil {
		t.Error("nil accepted")
	}
}

// TestSignConcurrent: one Signer shared by many goroutines (run with -race).
func TestSignConcurrent(t *testing.T) {
	s := getPKI(t).signer(t, "ecdsa-p256")
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for _, c := range Codes {
				doc, err := s.Sign(sample(c))
				if err == nil {
					_, _, err = Verify(doc)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
