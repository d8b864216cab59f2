package evidence

import (
	"encoding/base64"
	"strconv"
	"time"
)

// XML namespaces.
const (
	NamespaceREM   = "http://uri.etsi.org/02640/v2#"      // ETSI TS 102 640-2 V2
	NamespaceDS    = "http://www.w3.org/2000/09/xmldsig#" // XML-DSig
	NamespaceXAdES = "http://uri.etsi.org/01903/v1.3.2#"  // XAdES, ETSI EN 319 132-1
	NamespaceKEP   = "urn:kep:tr:evidence:1"              // our extension, docs/evidence-schema

	// remVersion is REMEvidenceType's required version attribute.
	remVersion = "2"
)

// Marshal returns the unsigned evidence document: deterministic (the same
// Evidence always yields the same bytes) and already in exclusive canonical
// form. Sign produces the same bytes with a ds:Signature before the end tag.
func Marshal(e *Evidence) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	b := appendBody(make([]byte, 0, 2048), e)
	return appendEndTag(b, e.Code), nil
}

// The writer below emits Exclusive XML Canonicalization 1.0 directly
// (W3C REC xml-exc-c14n, which builds on Canonical XML 1.0 §2.3/§4):
//   - no XML declaration, no DOCTYPE, UTF-8;
//   - empty elements as <a></a>;
//   - attributes in double quotes; namespace declarations first (the
//     default one first, then by prefix), then plain attributes sorted by
//     name (all ours are unqualified);
//   - a namespace declaration appears on an element only if the element
//     (or one of its attributes) visibly uses the prefix and no output
//     ancestor already declared it (exc-c14n §3, "visibly utilized"), so
//     xmlns:kep is repeated on sibling kep: elements rather than hoisted;
//   - text escapes & < > and CR; attribute values & < " TAB LF CR.
// Validate keeps control characters out, so only & < > " ever occur.

const (
	xmlnsDS    = ` xmlns:ds="` + NamespaceDS + `"`
	xmlnsXAdES = ` xmlns:xades="` + NamespaceXAdES + `"`
	xmlnsKEP   = ` xmlns:kep="` + NamespaceKEP + `"`
)

func appendText(b []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		last = i + 1
	}
	return append(b, s[last:]...)
}

func appendAttr(b []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '"':
			esc = "&quot;"
		case '\t':
			esc = "&#x9;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		last = i + 1
	}
	return append(b, s[last:]...)
}

// elem appends <name>text</name>; name may carry a prefix and declarations
// in open (e.g. `kep:Identity xmlns:kep="…"`), closed by close.
func elem(b []byte, open, close, text string) []byte {
	b = append(b, '<')
	b = append(b, open...)
	b = append(b, '>')
	b = appendText(b, text)
	b = append(b, "</"...)
	b = append(b, close...)
	return append(b, '>')
}

// xsDateTime is the one form we write: UTC, milliseconds, "Z".
const xsDateTime = "2006-01-02T15:04:05.000Z"

func appendTime(b []byte, t time.Time) []byte {
	return t.UTC().Truncate(time.Millisecond).AppendFormat(b, xsDateTime)
}

func timeElem(b []byte, name string, t time.Time) []byte {
	b = append(b, '<')
	b = append(b, name...)
	b = append(b, '>')
	b = appendTime(b, t)
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, '>')
}

func appendEndTag(b []byte, c Code) []byte {
	b = append(b, "</"...)
	b = append(b, c.Element()...)
	return append(b, '>')
}

// appendBody writes the root start tag and every child up to, not including,
// the signature and the end tag. Element order is REMEvidenceType's sequence
// (TS 102 640-2, the REMEvidenceType sequence of its XML schema).
func appendBody(b []byte, e *Evidence) []byte {
	b = append(b, '<')
	b = append(b, e.Code.Element()...)
	b = append(b, ` xmlns="`+NamespaceREM+`" version="`+remVersion+`">`...)

	// Event and reasons.
	b = elem(b, "EventCode", "EventCode", e.Code.EventURI())
	if len(e.Reasons) > 0 {
		b = append(b, "<EventReasons>"...)
		for _, r := range e.Reasons {
			b = append(b, "<EventReason>"...)
			b = elem(b, "Code", "Code", r.Code)
			if r.Text != "" {
				b = elem(b, "Details", "Details", r.Text)
			}
			b = append(b, "</EventReason>"...)
		}
		b = append(b, "</EventReasons>"...)
	}
	// Evidence identifier and issuer policy.
	b = elem(b, "EvidenceIdentifier", "EvidenceIdentifier", e.ID)
	if e.IssuerPolicyID != "" {
		b = append(b, "<EvidenceIssuerPolicyID>"...)
		b = elem(b, "PolicyID", "PolicyID", e.IssuerPolicyID)
		b = append(b, "</EvidenceIssuerPolicyID>"...)
	}
	// Evidence issuer details: name, the provider's domain as an
	// electronic address of scheme "dns", the country in the KEP namespace.
	b = append(b, "<EvidenceIssuerDetails>"...)
	b = appendNames(b, e.Issuer.Name)
	b = elem(b, `AttributedElectronicAddress scheme="dns"`, "AttributedElectronicAddress", e.Issuer.Domain)
	b = append(b, "<xades:Any"+xmlnsXAdES+">"...)
	b = elem(b, "kep:Country"+xmlnsKEP, "kep:Country", e.Issuer.Country)
	b = append(b, "</xades:Any></EvidenceIssuerDetails>"...)
	// Sender authentication details.
	if a := e.SenderAuthentication; a.Method != "" {
		b = append(b, "<SenderAuthenticationDetails>"...)
		b = timeElem(b, "AuthenticationTime", a.Time)
		b = elem(b, "AuthenticationMethod", "AuthenticationMethod", a.Method)
		b = append(b, "</SenderAuthenticationDetails>"...)
	}
	// Time of the event and of the submission.
	b = timeElem(b, "EventTime", e.EventTime)
	if !e.SubmissionTime.IsZero() {
		b = timeElem(b, "SubmissionTime", e.SubmissionTime)
	}
	// Sender and recipient details.
	b = append(b, "<SenderDetails>"...)
	b = appendParty(b, &e.Sender, e.Operator)
	b = append(b, "</SenderDetails><RecipientsDetails>"...)
	for i := range e.Recipients {
		b = append(b, "<EntityDetails>"...)
		b = appendParty(b, &e.Recipients[i], nil)
		b = append(b, "</EntityDetails>"...)
	}
	b = append(b, "</RecipientsDetails>"...)
	// Message details: identifiers and the digest of the original.
	// MessageSubject is required by the schema but is content: written empty.
	m := &e.Message
	b = append(b, `<SenderMessageDetails isNotification="false"><MessageSubject></MessageSubject>`...)
	if m.MessageID != "" {
		b = elem(b, "UAMessageIdentifier", "UAMessageIdentifier", m.MessageID)
	}
	b = elem(b, "MessageIdentifierByREMMD", "MessageIdentifierByREMMD", m.IletiID)
	alg := m.DigestAlgorithm
	if alg == "" {
		alg = DigestSHA256
	}
	b = append(b, "<ds:DigestMethod"+xmlnsDS+` Algorithm="`...)
	b = appendAttr(b, alg)
	b = append(b, `"></ds:DigestMethod><ds:DigestValue`+xmlnsDS+`>`...)
	b = base64.StdEncoding.AppendEncode(b, m.Digest)
	b = append(b, "</ds:DigestValue></SenderMessageDetails>"...)
	// Extensions: the KEP part.
	b = append(b, "<Extensions><Extension><kep:Details"+xmlnsKEP+"><kep:DelilTurId>"...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, "</kep:DelilTurId>"...)
	if m.IletiTip != "" {
		b = elem(b, "kep:IletiTip", "kep:IletiTip", m.IletiTip)
	}
	b = append(b, "<kep:Size>"...)
	b = strconv.AppendInt(b, m.Size, 10)
	b = append(b, "</kep:Size>"...)
	if e.RelatedEvidence != "" {
		b = elem(b, "kep:RelatedEvidence", "kep:RelatedEvidence", e.RelatedEvidence)
	}
	for _, p := range e.Properties {
		b = append(b, `<kep:Property Name="`...)
		b = appendAttr(b, p.Name)
		b = append(b, `">`...)
		b = appendText(b, p.Value)
		b = append(b, "</kep:Property>"...)
	}
	return append(b, "</kep:Details></Extension></Extensions>"...)
}

func appendNames(b []byte, name string) []byte {
	if name == "" {
		return b
	}
	b = append(b, "<NamesPostalAddresses><NamePostalAddress><EntityName>"...)
	b = elem(b, "Name", "Name", name)
	return append(b, "</EntityName></NamePostalAddress></NamesPostalAddresses>"...)
}

// appendParty writes EntityDetailsType content: name, KEP address (scheme
// mailto, the default, so not written), and in xades:Any the identity and,
// for a sender, the operator who acted.
func appendParty(b []byte, p *Party, op *Party) []byte {
	b = appendNames(b, p.Name)
	b = elem(b, "AttributedElectronicAddress", "AttributedElectronicAddress", p.Address)
	if p.Identity == "" && op == nil {
		return b
	}
	b = append(b, "<xades:Any"+xmlnsXAdES+">"...)
	if p.Identity != "" {
		b = elem(b, "kep:Identity"+xmlnsKEP, "kep:Identity", p.Identity)
	}
	if op != nil {
		b = append(b, "<kep:Operator"+xmlnsKEP+">"...)
		b = elem(b, "kep:Address", "kep:Address", op.Address)
		if op.Identity != "" {
			b = elem(b, "kep:Identity", "kep:Identity", op.Identity)
		}
		if op.Name != "" {
			b = elem(b, "kep:Name", "kep:Name", op.Name)
		}
		b = append(b, "</kep:Operator>"...)
	}
	return append(b, "</xades:Any>"...)
}

// isXMLSpace reports whether s is only XML white space.
func isXMLSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return false
		}
	}
	return true
}
