package evidence

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	good, err := Marshal(sample(Delivered))
	if err != nil {
		t.Fatal(err)
	}
	g := string(good)
	repl := func(old, new string) string {
		if !strings.Contains(g, old) {
			t.Fatalf("%q not in sample", old)
		}
		return strings.Replace(g, old, new, 1)
	}
	cut := func(start, end string) string {
		i, j := strings.Index(g, start), strings.Index(g, end)
		if i < 0 || j < 0 {
			t.Fatalf("%q/%q not in sample", start, end)
		}
		return g[:i] + g[j+len(end):]
	}
	cases := []struct {
		name, doc string
		want      error
	}{
		{"empty", "", ErrMissingElement},
		{"truncated", g[:len(g)/2], ErrMalformed},
		{"not xml", "hello", ErrMalformed},
		{"wrong root namespace", repl(`xmlns="http://uri.etsi.org/02640/v2#"`, `xmlns="http://uri.etsi.org/02640/v1#"`), ErrNamespace},
		{"no namespace", repl(` xmlns="http://uri.etsi.org/02640/v2#"`, ``), ErrNamespace},
		{"unknown root", `<Receipt xmlns="http://uri.etsi.org/02640/v2#" version="2"></Receipt>`, ErrUnknownElement},
		{"version", repl(`version="2"`, `version="3"`), ErrBadValue},
		{"missing identifier", cut("<EvidenceIdentifier>", "</EvidenceIdentifier>"), ErrMissingElement},
		{"missing event time", cut("<EventTime>", "</EventTime>"), ErrMissingElement},
		{"missing extensions", cut("<Extensions>", "</Extensions>"), ErrMissingElement},
		{"bad time", repl("<EventTime>2025-03-14T", "<EventTime>2025-03-14 "), ErrBadTime},
		{"time without zone", repl(".589Z</EventTime>", "</EventTime>"), ErrBadTime},
		{"empty time", repl("2025-03-14T10:06:53.589Z</EventTime>", "</EventTime>"), ErrBadTime},
		{"unknown element", repl("<EventTime>", "<Foo></Foo><EventTime>"), ErrUnknownElement},
		{"out of order", repl("<EvidenceIdentifier>", "<SubmissionTime>2025-03-14T09:26:53.589Z</SubmissionTime><EvidenceIdentifier>"), ErrUnknownElement},
		{"unknown attribute", repl(`<EventTime>`, `<EventTime foo="1">`), ErrUnknownElement},
		{"duplicate attribute", repl(`version="2"`, `version="2" version="2"`), ErrMalformed},
		{"text in element content", repl("<EventTime>", "hello<EventTime>"), ErrMalformed},
		{"element in text", repl("<EventTime>", "<EventTime><b></b>"), ErrUnknownElement},
		{"subject", repl("<MessageSubject></MessageSubject>", "<MessageSubject>Maaş bordrosu</MessageSubject>"), ErrBadValue},
		{"code mismatch", repl("<kep:DelilTurId>40<", "<kep:DelilTurId>41<"), ErrBadValue},
		{"unknown code", repl("<kep:DelilTurId>40<", "<kep:DelilTurId>99<"), ErrBadValue},
		{"event mismatch", repl("Event#Delivery", "Event#Retrieval"), ErrBadValue},
		{"bad base64", repl("z3ofiDzU", "z3of*DzU"), ErrBadValue},
		{"short digest", repl("z3ofiDzU6HdRBbMq65ySbE2Lgh0m8Fy1ZyuwcBABlgg=", "z3ofiDzU"), ErrBadValue},
		{"bad uuid", repl("0195936c-6f1a-7c3e-9a4b-2d5e6f708192", "0195936C-6F1A-7C3E-9A4B-2D5E6F708192"), ErrBadValue},
		{"digest namespace", repl("<ds:DigestMethod xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"", "<ds:DigestMethod xmlns:ds=\"http://www.w3.org/2000/09/xmldsig\""), ErrNamespace},
		{"undeclared prefix", repl("<ds:DigestMethod xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"", "<ds:DigestMethod"), ErrNamespace},
		{"scheme", repl(`scheme="dns"`, `scheme="mailto"`), ErrBadValue},
		{"negative size", repl("<kep:Size>48213<", "<kep:Size>-1<"), ErrBadValue},
		{"trailing element", g + "<x/>", ErrMalformed},
		{"trailing text", g + "x", ErrMalformed},
		{"processing instruction", repl("<EventTime>", "<?php echo 1 ?><EventTime>"), ErrMalformed},
		{"latin encoding", `<?xml version="1.0" encoding="ISO-8859-9"?>` + g, ErrMalformed},
		{"xxe", `<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + repl("<kep:IletiTip>eTebligat", "<kep:IletiTip>&x;"), ErrDTD},
		{"billion laughs", `<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>` + repl("eTebligat", "&b;"), ErrDTD},
		{"undefined entity", repl("eTebligat", "&b;"), ErrMalformed},
		{"too large", g + strings.Repeat(" ", MaxDocumentSize), ErrMalformed},
		{"too deep", repl("<EventTime>", strings.Repeat("<a>", 40)+strings.Repeat("</a>", 40)+"<EventTime>"), ErrMalformed},
	}
	for _, tc := range cases {
		e, err := Parse([]byte(tc.doc))
		var pe *ParseError
		if err == nil || !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) || !errors.As(err, &pe) || e != nil {
			t.Errorf("%s: Parse = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestParseAcceptsEquivalentXML: prefixes and declarations may differ from
// what we write, the model read is the same.
func TestParseAcceptsEquivalentXML(t *testing.T) {
	good, _ := Marshal(sample(Rejected))
	want, err := Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	// REM elements with a prefix, KEP with another prefix declared on the root.
	alt := bytes.ReplaceAll(good, []byte("<"), []byte("<r:"))
	alt = bytes.ReplaceAll(alt, []byte("<r:/"), []byte("</r:"))
	alt = bytes.ReplaceAll(alt, []byte("r:kep:"), []byte("k:"))
	alt = bytes.ReplaceAll(alt, []byte("r:/kep:"), []byte("/k:"))
	alt = bytes.ReplaceAll(alt, []byte("r:ds:"), []byte("ds:"))
	alt = bytes.ReplaceAll(alt, []byte("r:/ds:"), []byte("/ds:"))
	alt = bytes.ReplaceAll(alt, []byte("r:xades:"), []byte("xades:"))
	alt = bytes.ReplaceAll(alt, []byte("r:/xades:"), []byte("/xades:"))
	alt = bytes.ReplaceAll(alt, []byte(` xmlns:kep="urn:kep:tr:evidence:1"`), nil)
	alt = bytes.Replace(alt, []byte(`xmlns="http://uri.etsi.org/02640/v2#"`), []byte(`xmlns:r="http://uri.etsi.org/02640/v2#" xmlns:k="urn:kep:tr:evidence:1"`), 1)
	got, err := Parse(alt)
	if err != nil {
		t.Fatalf("%v\n%s", err, alt)
	}
	if got.ID != want.ID || len(got.Reasons) != 2 || got.Sender != want.Sender || got.Message.IletiTip != want.Message.IletiTip {
		t.Errorf("prefixed document read differently: %+v", got)
	}
}
