package evidence

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// MaxDocumentSize bounds the input of Parse and Verify. A signed evidence is
// a few kilobytes; a megabyte leaves room for long recipient lists.
const MaxDocumentSize = 1 << 20

// Parse reads an evidence document, signed or not, without verifying the
// signature (use Verify for that). It is strict: the root must be one of the
// five TS 102 640-2 evidence elements in the REM namespace, children must
// come in REMEvidenceType order with nothing unknown, times must be
// xs:dateTime with a time zone, and the result must pass Validate. DTDs and
// entity declarations are refused (no XXE, no entity expansion). Errors are
// *ParseError; errors.Is(err, ErrMalformed) holds for all of them.
func Parse(data []byte) (*Evidence, error) {
	doc, err := readDocument(data)
	if err != nil {
		return nil, err
	}
	e, _, err := parseEvidence(doc.Root())
	return e, err
}

func perr(path string, sentinel error, format string, args ...any) error {
	if format == "" {
		return &ParseError{Path: path, Err: sentinel}
	}
	return &ParseError{Path: path, Err: fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))}
}

// readDocument parses XML with the settings evidence needs: UTF-8 only, no
// DTD, bounded size and depth, duplicate attributes detected (encoding/xml
// would silently keep one, a classic signature-wrapping lever).
func readDocument(data []byte) (*etree.Document, error) {
	if len(data) > MaxDocumentSize {
		return nil, perr("", ErrMalformed, "document larger than %d bytes", MaxDocumentSize)
	}
	if bytes.Contains(data, []byte("<!DOCTYPE")) || bytes.Contains(data, []byte("<!ENTITY")) {
		return nil, perr("", ErrDTD, "")
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{
		CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
			if strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "utf8") {
				return r, nil
			}
			return nil, fmt.Errorf("encoding %q not supported (want UTF-8)", charset)
		},
		PreserveDuplicateAttrs: true,
		MaxDepth:               32,
	}
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, perr("", ErrMalformed, "%v", err)
	}
	var root *etree.Element
	for _, t := range doc.Child {
		switch t := t.(type) {
		case *etree.Element:
			if root != nil {
				return nil, perr("", ErrMalformed, "more than one root element")
			}
			root = t
		case *etree.Directive:
			return nil, perr("", ErrDTD, "")
		case *etree.CharData:
			if !isXMLSpace(t.Data) {
				return nil, perr("", ErrMalformed, "text outside the root element")
			}
		case *etree.ProcInst:
			if t.Target != "xml" {
				return nil, perr("", ErrMalformed, "processing instruction <?%s?>", t.Target)
			}
		}
	}
	if root == nil {
		return nil, perr("", ErrMissingElement, "no root element")
	}
	if err := checkTree(root, root.Tag); err != nil {
		return nil, err
	}
	return doc, nil
}

// checkTree refuses duplicate attributes and processing instructions
// anywhere below the root.
func checkTree(el *etree.Element, path string) error {
	for i, a := range el.Attr {
		for _, b := range el.Attr[:i] {
			if a.Space == b.Space && a.Key == b.Key {
				return perr(path, ErrMalformed, "duplicate attribute %s", a.FullKey())
			}
		}
	}
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			if err := checkTree(t, path+"/"+t.Tag); err != nil {
				return err
			}
		case *etree.ProcInst, *etree.Directive:
			return perr(path, ErrMalformed, "processing instruction or directive inside an element")
		}
	}
	return nil
}

// seq walks an element's children in order, as an xs:sequence does.
type seq struct {
	path string
	kids []*etree.Element
	i    int
}

// children starts a walk over el's children; el must have element-only
// content (white space between elements allowed) and only the listed
// attributes besides namespace declarations.
func children(el *etree.Element, path string, attrs ...string) (*seq, error) {
	if err := checkAttrs(el, path, attrs...); err != nil {
		return nil, err
	}
	s := &seq{path: path}
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			s.kids = append(s.kids, t)
		case *etree.CharData:
			if !isXMLSpace(t.Data) {
				return nil, perr(path, ErrMalformed, "unexpected text %q", abbrev(t.Data))
			}
		}
	}
	return s, nil
}

func checkAttrs(el *etree.Element, path string, allowed ...string) error {
next:
	for _, a := range el.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		if a.Space == "" {
			for _, k := range allowed {
				if a.Key == k {
					continue next
				}
			}
		}
		return perr(path, ErrUnknownElement, "unexpected attribute %s", a.FullKey())
	}
	return nil
}

func is(el *etree.Element, ns, name string) bool {
	return el.Tag == name && el.NamespaceURI() == ns
}

// opt returns the next child if it is ns:name.
func (s *seq) opt(ns, name string) *etree.Element {
	if s.i < len(s.kids) && is(s.kids[s.i], ns, name) {
		s.i++
		return s.kids[s.i-1]
	}
	return nil
}

// req returns the next child, which must be ns:name.
func (s *seq) req(ns, name string) (*etree.Element, error) {
	if el := s.opt(ns, name); el != nil {
		return el, nil
	}
	if s.i < len(s.kids) {
		k := s.kids[s.i]
		if k.Tag == name {
			return nil, perr(s.path+"/"+name, ErrNamespace, "%q, want %q", k.NamespaceURI(), ns)
		}
		// Either name is missing or k is out of place: the error matches both.
		return nil, &ParseError{Path: s.path, Err: fmt.Errorf("%w: %s (%w: <%s> in its place)", ErrMissingElement, name, ErrUnknownElement, k.Tag)}
	}
	return nil, perr(s.path, ErrMissingElement, "%s", name)
}

// done fails if children remain.
func (s *seq) done() error {
	if s.i < len(s.kids) {
		k := s.kids[s.i]
		return perr(s.path, ErrUnknownElement, "unexpected <%s> in namespace %q", k.Tag, k.NamespaceURI())
	}
	return nil
}

// text returns the character content of a leaf element (comments dropped,
// as canonicalisation drops them).
func text(el *etree.Element, path string, attrs ...string) (string, error) {
	if err := checkAttrs(el, path, attrs...); err != nil {
		return "", err
	}
	var sb strings.Builder
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.CharData:
			sb.WriteString(t.Data)
		case *etree.Element:
			return "", perr(path, ErrUnknownElement, "unexpected <%s> in a text element", t.Tag)
		}
	}
	return sb.String(), nil
}

// leaf reads the next required child's text.
func (s *seq) leaf(ns, name string) (string, error) {
	el, err := s.req(ns, name)
	if err != nil {
		return "", err
	}
	return text(el, s.path+"/"+name)
}

// optLeaf reads the next child's text if present.
func (s *seq) optLeaf(ns, name string) (string, bool, error) {
	el := s.opt(ns, name)
	if el == nil {
		return "", false, nil
	}
	t, err := text(el, s.path+"/"+name)
	return t, true, err
}

func parseTime(path, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, perr(path, ErrBadTime, "%q", abbrev(s))
	}
	return t.UTC(), nil
}

func (s *seq) timeLeaf(name string) (time.Time, error) {
	v, err := s.leaf(NamespaceREM, name)
	if err != nil {
		return time.Time{}, err
	}
	return parseTime(s.path+"/"+name, v)
}

// decodeBase64 accepts xs:base64Binary, which may contain white space.
func decodeBase64(path, s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, perr(path, ErrBadValue, "base64: %v", err)
	}
	return b, nil
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

var rootCodes = map[string]bool{ElemSubmission: true, ElemRelay: true, ElemRelayFail: true, ElemDelivery: true, ElemRetrieval: true}

// parseEvidence reads the root element. It returns the ds:Signature element
// when present (the last child), unverified.
func parseEvidence(root *etree.Element) (*Evidence, *etree.Element, error) {
	path := root.Tag
	if ns := root.NamespaceURI(); ns != NamespaceREM {
		return nil, nil, perr(path, ErrNamespace, "root in %q, want %q", ns, NamespaceREM)
	}
	if !rootCodes[root.Tag] {
		return nil, nil, perr(path, ErrUnknownElement, "root element <%s> is not a KEP evidence type", root.Tag)
	}
	if v := root.SelectAttrValue("version", ""); v != remVersion {
		return nil, nil, perr(path, ErrBadValue, "version %q, want %q", v, remVersion)
	}
	s, err := children(root, path, "version")
	if err != nil {
		return nil, nil, err
	}
	e := &Evidence{}

	eventURI, err := s.leaf(NamespaceREM, "EventCode")
	if err != nil {
		return nil, nil, err
	}
	if el := s.opt(NamespaceREM, "EventReasons"); el != nil {
		if e.Reasons, err = parseReasons(el, path+"/EventReasons"); err != nil {
			return nil, nil, err
		}
	}
	if e.ID, err = s.leaf(NamespaceREM, "EvidenceIdentifier"); err != nil {
		return nil, nil, err
	}
	if el := s.opt(NamespaceREM, "EvidenceIssuerPolicyID"); el != nil {
		p := path + "/EvidenceIssuerPolicyID"
		ps, err := children(el, p)
		if err != nil {
			return nil, nil, err
		}
		if e.IssuerPolicyID, err = ps.leaf(NamespaceREM, "PolicyID"); err != nil {
			return nil, nil, err
		}
		if err := ps.done(); err != nil {
			return nil, nil, err
		}
	}
	el, err := s.req(NamespaceREM, "EvidenceIssuerDetails")
	if err != nil {
		return nil, nil, err
	}
	issuer, country, _, err := parseEntity(el, path+"/EvidenceIssuerDetails", entityIssuer)
	if err != nil {
		return nil, nil, err
	}
	e.Issuer = Issuer{Name: issuer.Name, Domain: issuer.Address, Country: country}

	if el := s.opt(NamespaceREM, "SenderAuthenticationDetails"); el != nil {
		p := path + "/SenderAuthenticationDetails"
		as, err := children(el, p)
		if err != nil {
			return nil, nil, err
		}
		if e.SenderAuthentication.Time, err = as.timeLeaf("AuthenticationTime"); err != nil {
			return nil, nil, err
		}
		if e.SenderAuthentication.Method, err = as.leaf(NamespaceREM, "AuthenticationMethod"); err != nil {
			return nil, nil, err
		}
		if err := as.done(); err != nil {
			return nil, nil, err
		}
	}
	if e.EventTime, err = s.timeLeaf("EventTime"); err != nil {
		return nil, nil, err
	}
	if v, ok, err := s.optLeaf(NamespaceREM, "SubmissionTime"); err != nil {
		return nil, nil, err
	} else if ok {
		if e.SubmissionTime, err = parseTime(path+"/SubmissionTime", v); err != nil {
			return nil, nil, err
		}
	}
	if el, err = s.req(NamespaceREM, "SenderDetails"); err != nil {
		return nil, nil, err
	}
	if e.Sender, _, e.Operator, err = parseEntity(el, path+"/SenderDetails", entitySender); err != nil {
		return nil, nil, err
	}
	if el, err = s.req(NamespaceREM, "RecipientsDetails"); err != nil {
		return nil, nil, err
	}
	rs, err := children(el, path+"/RecipientsDetails")
	if err != nil {
		return nil, nil, err
	}
	for {
		el := rs.opt(NamespaceREM, "EntityDetails")
		if el == nil {
			break
		}
		p, _, _, err := parseEntity(el, fmt.Sprintf("%s/RecipientsDetails/EntityDetails[%d]", path, len(e.Recipients)), entityRecipient)
		if err != nil {
			return nil, nil, err
		}
		e.Recipients = append(e.Recipients, p)
	}
	if err := rs.done(); err != nil {
		return nil, nil, err
	}
	if el, err = s.req(NamespaceREM, "SenderMessageDetails"); err != nil {
		return nil, nil, err
	}
	if err := parseMessage(el, path+"/SenderMessageDetails", &e.Message); err != nil {
		return nil, nil, err
	}
	if el, err = s.req(NamespaceREM, "Extensions"); err != nil {
		return nil, nil, err
	}
	if err := parseExtensions(el, path+"/Extensions", e); err != nil {
		return nil, nil, err
	}
	sig := s.opt(NamespaceDS, "Signature")
	if err := s.done(); err != nil {
		return nil, nil, err
	}

	// The KEP code, the root element and the EventCode must agree.
	if e.Code.Element() != root.Tag || e.Code.EventURI() != eventURI {
		return nil, nil, perr(path, ErrBadValue, "DelilTurId %d does not match <%s> with EventCode %q", int(e.Code), root.Tag, abbrev(eventURI))
	}
	if err := e.Validate(); err != nil {
		return nil, nil, perr(path, ErrBadValue, "%v", err)
	}
	return e, sig, nil
}

func parseReasons(el *etree.Element, path string) ([]Reason, error) {
	s, err := children(el, path)
	if err != nil {
		return nil, err
	}
	var rs []Reason
	for {
		r := s.opt(NamespaceREM, "EventReason")
		if r == nil {
			break
		}
		p := fmt.Sprintf("%s/EventReason[%d]", path, len(rs))
		c, err := children(r, p)
		if err != nil {
			return nil, err
		}
		var reason Reason
		if reason.Code, err = c.leaf(NamespaceREM, "Code"); err != nil {
			return nil, err
		}
		if t, ok, err := c.optLeaf(NamespaceREM, "Details"); err != nil {
			return nil, err
		} else if ok {
			if t == "" {
				return nil, perr(p+"/Details", ErrBadValue, "empty")
			}
			reason.Text = t
		}
		if err := c.done(); err != nil {
			return nil, err
		}
		rs = append(rs, reason)
	}
	if len(rs) == 0 {
		return nil, perr(path, ErrMissingElement, "EventReason")
	}
	return rs, s.done()
}

type entityKind int

const (
	entityIssuer entityKind = iota
	entitySender
	entityRecipient
)

// parseEntity reads EntityDetailsType as appendParty and the issuer part of
// appendBody write it. For the issuer, Party.Address is the domain.
func parseEntity(el *etree.Element, path string, kind entityKind) (p Party, country string, op *Party, err error) {
	s, err := children(el, path)
	if err != nil {
		return
	}
	if np := s.opt(NamespaceREM, "NamesPostalAddresses"); np != nil {
		if p.Name, err = parseNames(np, path+"/NamesPostalAddresses"); err != nil {
			return
		}
	}
	ap := path + "/AttributedElectronicAddress"
	addr, err := s.req(NamespaceREM, "AttributedElectronicAddress")
	if err != nil {
		return
	}
	if p.Address, err = text(addr, ap, "scheme"); err != nil {
		return
	}
	scheme := addr.SelectAttrValue("scheme", "mailto")
	if want := map[bool]string{true: "dns", false: "mailto"}[kind == entityIssuer]; scheme != want {
		err = perr(ap, ErrBadValue, "scheme %q, want %q", scheme, want)
		return
	}
	if anyEl := s.opt(NamespaceXAdES, "Any"); anyEl != nil {
		var as *seq
		if as, err = children(anyEl, path+"/Any"); err != nil {
			return
		}
		switch kind {
		case entityIssuer:
			if country, err = as.leaf(NamespaceKEP, "Country"); err != nil {
				return
			}
		case entitySender, entityRecipient:
			var ok bool
			if p.Identity, ok, err = as.optLeaf(NamespaceKEP, "Identity"); err != nil {
				return
			} else if ok && p.Identity == "" {
				err = perr(path+"/Any/Identity", ErrBadValue, "empty")
				return
			}
			if kind == entitySender {
				if oe := as.opt(NamespaceKEP, "Operator"); oe != nil {
					if op, err = parseOperator(oe, path+"/Any/Operator"); err != nil {
						return
					}
				}
			}
			if !ok && op == nil {
				err = perr(path+"/Any", ErrMissingElement, "Identity or Operator")
				return
			}
		}
		if err = as.done(); err != nil {
			return
		}
	} else if kind == entityIssuer {
		err = perr(path, ErrMissingElement, "Any/Country")
		return
	}
	err = s.done()
	return
}

func parseNames(el *etree.Element, path string) (string, error) {
	s, err := children(el, path)
	if err != nil {
		return "", err
	}
	npa, err := s.req(NamespaceREM, "NamePostalAddress")
	if err != nil {
		return "", err
	}
	if err := s.done(); err != nil {
		return "", err
	}
	path += "/NamePostalAddress"
	s2, err := children(npa, path)
	if err != nil {
		return "", err
	}
	en, err := s2.req(NamespaceREM, "EntityName")
	if err != nil {
		return "", err
	}
	if err := s2.done(); err != nil {
		return "", err
	}
	path += "/EntityName"
	s3, err := children(en, path)
	if err != nil {
		return "", err
	}
	name, err := s3.leaf(NamespaceREM, "Name")
	if err != nil {
		return "", err
	}
	if name == "" {
		return "", perr(path+"/Name", ErrBadValue, "empty")
	}
	return name, s3.done()
}

func parseOperator(el *etree.Element, path string) (*Party, error) {
	s, err := children(el, path)
	if err != nil {
		return nil, err
	}
	op := &Party{}
	if op.Address, err = s.leaf(NamespaceKEP, "Address"); err != nil {
		return nil, err
	}
	var ok bool
	if op.Identity, ok, err = s.optLeaf(NamespaceKEP, "Identity"); err != nil {
		return nil, err
	} else if ok && op.Identity == "" {
		return nil, perr(path+"/Identity", ErrBadValue, "empty")
	}
	if op.Name, ok, err = s.optLeaf(NamespaceKEP, "Name"); err != nil {
		return nil, err
	} else if ok && op.Name == "" {
		return nil, perr(path+"/Name", ErrBadValue, "empty")
	}
	return op, s.done()
}

func parseMessage(el *etree.Element, path string, m *Message) error {
	switch v := el.SelectAttrValue("isNotification", ""); v {
	case "false", "0":
	default:
		return perr(path, ErrBadValue, "isNotification %q, want false", v)
	}
	s, err := children(el, path, "isNotification")
	if err != nil {
		return err
	}
	subj, err := s.leaf(NamespaceREM, "MessageSubject")
	if err != nil {
		return err
	}
	if subj != "" {
		return perr(path+"/MessageSubject", ErrBadValue, "must be empty: evidence holds no message content")
	}
	var ok bool
	if m.MessageID, ok, err = s.optLeaf(NamespaceREM, "UAMessageIdentifier"); err != nil {
		return err
	} else if ok && m.MessageID == "" {
		return perr(path+"/UAMessageIdentifier", ErrBadValue, "empty")
	}
	if m.IletiID, err = s.leaf(NamespaceREM, "MessageIdentifierByREMMD"); err != nil {
		return err
	}
	dm, err := s.req(NamespaceDS, "DigestMethod")
	if err != nil {
		return err
	}
	if _, err := text(dm, path+"/DigestMethod", "Algorithm"); err != nil {
		return err
	}
	m.DigestAlgorithm = dm.SelectAttrValue("Algorithm", "")
	dv, err := s.leaf(NamespaceDS, "DigestValue")
	if err != nil {
		return err
	}
	if m.Digest, err = decodeBase64(path+"/DigestValue", dv); err != nil {
		return err
	}
	return s.done()
}

func parseExtensions(el *etree.Element, path string, e *Evidence) error {
	s, err := children(el, path)
	if err != nil {
		return err
	}
	ext, err := s.req(NamespaceREM, "Extension")
	if err != nil {
		return err
	}
	if err := s.done(); err != nil {
		return err
	}
	path += "/Extension"
	s, err = children(ext, path)
	if err != nil {
		return err
	}
	det, err := s.req(NamespaceKEP, "Details")
	if err != nil {
		return err
	}
	if err := s.done(); err != nil {
		return err
	}
	path += "/Details"
	s, err = children(det, path)
	if err != nil {
		return err
	}
	v, err := s.leaf(NamespaceKEP, "DelilTurId")
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(v)
	if err != nil || !Code(n).Valid() {
		return perr(path+"/DelilTurId", ErrBadValue, "unknown code %q", abbrev(v))
	}
	e.Code = Code(n)
	if t, ok, err := s.optLeaf(NamespaceKEP, "IletiTip"); err != nil {
		return err
	} else if ok {
		if t == "" {
			return perr(path+"/IletiTip", ErrBadValue, "empty")
		}
		e.Message.IletiTip = t
	}
	if v, err = s.leaf(NamespaceKEP, "Size"); err != nil {
		return err
	}
	if e.Message.Size, err = strconv.ParseInt(v, 10, 64); err != nil || e.Message.Size < 0 {
		return perr(path+"/Size", ErrBadValue, "%q", abbrev(v))
	}
	if e.RelatedEvidence, _, err = s.optLeaf(NamespaceKEP, "RelatedEvidence"); err != nil {
		return err
	}
	for {
		pe := s.opt(NamespaceKEP, "Property")
		if pe == nil {
			break
		}
		p := path + "/Property"
		val, err := text(pe, p, "Name")
		if err != nil {
			return err
		}
		name := pe.SelectAttr("Name")
		if name == nil {
			return perr(p, ErrMissingElement, "attribute Name")
		}
		e.Properties = append(e.Properties, Property{Name: name.Value, Value: val})
	}
	return s.done()
}
