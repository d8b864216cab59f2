package evidence

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Code is a KEP evidence type, the numeric DelilTurId PTT KEP shows its users.
// Each code maps to one ETSI TS 102 640-2 evidence element (the document's
// root) and one EventCode URI inside it.
type Code int

// The KEP evidence codes (docs/kep-rules.md, "Evidence (delil)").
const (
	Accepted      Code = 10 // accepted by the sender's provider
	Rejected      Code = 11 // rejected by the sender's provider
	RelayAccepted Code = 20 // accepted by the recipient's provider
	RelayRejected Code = 21 // rejected by the recipient's provider
	RelayFailure  Code = 31 // could not be relayed to the recipient's provider
	Delivered     Code = 40 // placed in the recipient's mailbox
	NotDelivered  Code = 41 // could not be placed in the recipient's mailbox
	Read          Code = 60 // read (retrieved) by the recipient
	DeemedRead    Code = 61 // deemed read: not opened within the policy period
)

// Codes lists every code, in numeric order.
var Codes = []Code{Accepted, Rejected, RelayAccepted, RelayRejected, RelayFailure, Delivered, NotDelivered, Read, DeemedRead}

// Root element names: TS 102 640-2 defines one evidence element per event
// type, all of REMEvidenceType.
const (
	ElemSubmission = "SubmissionAcceptanceRejection"
	ElemRelay      = "RelayREMMDAcceptanceRejection"
	ElemRelayFail  = "RelayREMMDFailure"
	ElemDelivery   = "DeliveryNonDeliveryToRecipient"
	ElemRetrieval  = "RetrievalNonRetrievalByRecipient"
)

// EventCode URIs. TS 102 640-2 (Annex B) lists the event URIs under
// http://uri.etsi.org/REM/Event#; Acceptance, Rejection, Delivery and
// DeliveryExpiration are the ones REM implementations (e-CODEX) use, and
// Retrieval follows the same pattern. The printed specification writes them
// as "http:uri.etsi.org/REM/Event#…", without "//", a typo some
// implementations copy; we write the well-formed URI. Where we are not sure
// of an ETSI event, the URI is a KEP one under EventKEPBase: the root element
// already names the evidence type, the EventCode refines it.
const (
	EventETSIBase = "http://uri.etsi.org/REM/Event#"
	EventKEPBase  = "urn:kep:tr:evidence:event:"

	EventAcceptance      = EventETSIBase + "Acceptance"
	EventRejection       = EventETSIBase + "Rejection"
	EventDelivery        = EventETSIBase + "Delivery"
	EventRetrieval       = EventETSIBase + "Retrieval"
	EventRelayAcceptance = EventKEPBase + "RelayAcceptance"
	EventRelayRejection  = EventKEPBase + "RelayRejection"
	EventRelayFailure    = EventKEPBase + "RelayFailure"
	EventNonDelivery     = EventKEPBase + "NonDelivery" // ETSI's DeliveryExpiration is a time-out; 41 is a refusal
	EventDeemedRetrieval = EventKEPBase + "DeemedRetrieval"
)

type codeInfo struct {
	elem, event string
	en, tr      string
	positive    bool
}

var codeTable = map[Code]codeInfo{
	Accepted:      {ElemSubmission, EventAcceptance, "accepted by the sender's provider", "gönderici hizmet sağlayıcısınca kabul edildi", true},
	Rejected:      {ElemSubmission, EventRejection, "rejected by the sender's provider", "gönderici hizmet sağlayıcısınca reddedildi", false},
	RelayAccepted: {ElemRelay, EventRelayAcceptance, "accepted by the recipient's provider", "alıcı hizmet sağlayıcısınca kabul edildi", true},
	RelayRejected: {ElemRelay, EventRelayRejection, "rejected by the recipient's provider", "alıcı hizmet sağlayıcısınca reddedildi", false},
	RelayFailure:  {ElemRelayFail, EventRelayFailure, "could not be relayed to the recipient's provider", "alıcı hizmet sağlayıcısına iletilemedi", false},
	Delivered:     {ElemDelivery, EventDelivery, "placed in the recipient's mailbox", "alıcının posta kutusuna teslim edildi", true},
	NotDelivered:  {ElemDelivery, EventNonDelivery, "could not be placed in the recipient's mailbox", "alıcının posta kutusuna teslim edilemedi", false},
	Read:          {ElemRetrieval, EventRetrieval, "read by the recipient", "alıcı tarafından okundu", true},
	DeemedRead:    {ElemRetrieval, EventDeemedRetrieval, "deemed read: not opened within the policy period", "süresi içinde açılmadığı için okunmuş sayıldı", true},
}

// Valid reports whether c is one of the KEP codes.
func (c Code) Valid() bool { _, ok := codeTable[c]; return ok }

// Element is the TS 102 640-2 element the evidence is written as.
func (c Code) Element() string { return codeTable[c].elem }

// EventURI is the EventCode written inside the evidence.
func (c Code) EventURI() string { return codeTable[c].event }

// Label is a short English description.
func (c Code) Label() string {
	if !c.Valid() {
		return "unknown"
	}
	return codeTable[c].en
}

// LabelTR is the Turkish description shown to users.
func (c Code) LabelTR() string {
	if !c.Valid() {
		return "bilinmiyor"
	}
	return codeTable[c].tr
}

// Positive reports whether the step succeeded. DeemedRead counts as positive:
// the law treats the message as received and read (the evidence records it as
// a non-retrieval, with the rule that fired as its reason).
func (c Code) Positive() bool { return codeTable[c].positive }

// String returns "40 (placed in the recipient's mailbox)".
func (c Code) String() string { return strconv.Itoa(int(c)) + " (" + c.Label() + ")" }

// needsReason: negative outcomes, and deemed read, must say why.
func (c Code) needsReason() bool { return !c.Positive() || c == DeemedRead }

// Reason is one ETSI EventReason: a code URI and a human sentence. Reasons are
// data; ReasonNotSigned and its siblings return the ones the system uses, and
// a caller may pass any other.
type Reason struct {
	Code string // URI, e.g. ReasonCodeNotSigned
	Text string // optional human-readable detail
}

// Party is a sender, recipient or operator.
type Party struct {
	Address  string // KEP address, e.g. "ali.veli@hs01.kep.tr"
	Identity string // "TCKN:12345678901", "VKN:…", "MERSIS:…", "DETSIS:…"
	Name     string // optional display name
}

// Issuer is the provider issuing the evidence (EvidenceIssuerDetails).
type Issuer struct {
	Name    string // "PTT KEP Hizmet Sağlayıcı"
	Domain  string // "hs01.kep.tr"
	Country string // ISO 3166-1 alpha-2, "TR"
}

// Authentication is how the provider authenticated the sender
// (SenderAuthenticationDetails). An empty Method omits the element; with a
// Method, Time is required (REM AuthenticationDetailsType has them in one
// sequence).
type Authentication struct {
	Method string // a URI or token, e.g. AuthSMTPCMS
	Time   time.Time
}

// Authentication methods used by the system.
const (
	AuthSMTPCMS  = "smtp-auth+cms"  // SMTP AUTH, then the CMS signature of the message
	AuthWebNES   = "web+nes"        // web session, qualified e-signature in the browser
	AuthAPIToken = "api-token+cms"  // bulk API token, then the CMS signature
	AuthRelayTLS = "relay-mtls+cms" // a provider over mutual TLS, message signed
)

// Message identifies the message (SenderMessageDetails) without its content.
type Message struct {
	MessageID string // RFC 5322 Message-ID, as given (optional)
	IletiID   string // X-TR-REM-iletiID, the provider's message id (may be empty)
	IletiTip  string // X-TR-REM-iletiTip: IletiTipStandart, IletiTipEYazisma, IletiTipETebligat
	// DigestAlgorithm is an XML-DSig digest URI; empty means DigestSHA256.
	DigestAlgorithm string
	Digest          []byte // digest of the exact signed original bytes (final CRLF included)
	Size            int64  // size of the original in bytes
}

// Message types (X-TR-REM-iletiTip).
const (
	IletiTipStandart  = "standart"
	IletiTipEYazisma  = "eYazisma"
	IletiTipETebligat = "eTebligat"
)

// Digest algorithm URIs (XML Encryption / RFC 6931).
const (
	DigestSHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	DigestSHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	DigestSHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
)

var digestSizes = map[string]int{DigestSHA256: 32, DigestSHA384: 48, DigestSHA512: 64}

// Property is a KEP-specific name/value pair carried in the KEP extension,
// for facts that have no field yet (a bulk-send batch, an e-tebligat
// barcode). Names are XML NCName-like tokens.
type Property struct {
	Name, Value string
}

// PropertyESeal, in an acceptance (10) or rejection (11) evidence, records
// that the message was sealed with a company's e-seal (mali mühür)
// certificate rather than signed by a person; its value is "VKN:" and the
// VKN the certificate names (docs/signing.md).
const PropertyESeal = "eSeal"

// Evidence is one piece of evidence (delil): ETSI TS 102 640-2 REMEvidenceType
// plus the KEP extension. Times are UTC and written with millisecond
// precision (truncated).
type Evidence struct {
	ID             string    // EvidenceIdentifier, a UUID (NewID)
	Code           Code      // DelilTurId; selects the root element and EventCode
	EventTime      time.Time // when the event happened, by the provider's clock
	SubmissionTime time.Time // when the message was submitted (optional)
	Reasons        []Reason  // EventReasons; required for negative codes and DeemedRead
	IssuerPolicyID string    // EvidenceIssuerPolicyID, a URI (optional)
	Issuer         Issuer

	SenderAuthentication Authentication
	Sender               Party
	// Operator is the işlem yetkilisi who acted for a legal-person sender
	// (optional). Written in SenderDetails' xades:Any as kep:Operator.
	Operator   *Party
	Recipients []Party
	Message    Message

	// RelatedEvidence is the ID of the evidence this one follows (the 10
	// for a 40, say); optional.
	RelatedEvidence string
	Properties      []Property
}

// NewID returns a fresh evidence identifier: a version 7 (time-ordered) UUID,
// kind to database indexes.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// ValidationError reports a field that cannot be written.
type ValidationError struct {
	Field, Problem string
}

func (e *ValidationError) Error() string {
	return "evidence: invalid " + e.Field + ": " + e.Problem
}

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Validate checks that e can be written: required fields present, times in
// range, identifiers well-formed, and every string valid UTF-8 without control
// characters (fields are single-line; this also keeps them legal XML 1.0).
func (e *Evidence) Validate() error {
	if e == nil {
		return invalid("Evidence", "nil")
	}
	if !e.Code.Valid() {
		return invalid("Code", "unknown code %d", int(e.Code))
	}
	if err := checkUUID("ID", e.ID, true); err != nil {
		return err
	}
	if err := checkUUID("RelatedEvidence", e.RelatedEvidence, false); err != nil {
		return err
	}
	if err := checkTime("EventTime", e.EventTime, true); err != nil {
		return err
	}
	if err := checkTime("SubmissionTime", e.SubmissionTime, false); err != nil {
		return err
	}
	if e.Code.needsReason() && len(e.Reasons) == 0 {
		return invalid("Reasons", "code %d needs at least one reason", int(e.Code))
	}
	for i, r := range e.Reasons {
		// Field names with an index are built only on failure: Validate
		// runs on every Sign and must not allocate.
		if checkURI("", r.Code, true) != nil {
			return checkURI(fmt.Sprintf("Reasons[%d].Code", i), r.Code, true)
		}
		if checkText("", r.Text, false) != nil {
			return checkText(fmt.Sprintf("Reasons[%d].Text", i), r.Text, false)
		}
	}
	if err := checkURI("IssuerPolicyID", e.IssuerPolicyID, false); err != nil {
		return err
	}
	if err := checkText("Issuer.Name", e.Issuer.Name, true); err != nil {
		return err
	}
	if err := checkToken("Issuer.Domain", e.Issuer.Domain, true); err != nil {
		return err
	}
	if len(e.Issuer.Country) != 2 || e.Issuer.Country[0] < 'A' || e.Issuer.Country[0] > 'Z' || e.Issuer.Country[1] < 'A' || e.Issuer.Country[1] > 'Z' {
		return invalid("Issuer.Country", "want two capital letters (ISO 3166-1), got %q", e.Issuer.Country)
	}
	if a := e.SenderAuthentication; a.Method != "" || !a.Time.IsZero() {
		if err := checkURI("SenderAuthentication.Method", a.Method, true); err != nil {
			return err
		}
		if err := checkTime("SenderAuthentication.Time", a.Time, true); err != nil {
			return err
		}
	}
	if err := checkParty("Sender", &e.Sender); err != nil {
		return err
	}
	if e.Operator != nil {
		if err := checkParty("Operator", e.Operator); err != nil {
			return err
		}
	}
	if len(e.Recipients) == 0 {
		return invalid("Recipients", "at least one recipient is required")
	}
	for i := range e.Recipients {
		if checkParty("", &e.Recipients[i]) != nil {
			return checkParty(fmt.Sprintf("Recipients[%d]", i), &e.Recipients[i])
		}
	}
	m := &e.Message
	if err := checkText("Message.MessageID", m.MessageID, false); err != nil {
		return err
	}
	if err := checkText("Message.IletiID", m.IletiID, false); err != nil {
		return err
	}
	if err := checkToken("Message.IletiTip", m.IletiTip, false); err != nil {
		return err
	}
	alg := m.DigestAlgorithm
	if alg == "" {
		alg = DigestSHA256
	}
	size, ok := digestSizes[alg]
	if !ok {
		return invalid("Message.DigestAlgorithm", "unsupported %q", alg)
	}
	if len(m.Digest) != size {
		return invalid("Message.Digest", "want %d bytes for %s, got %d", size, alg, len(m.Digest))
	}
	if m.Size < 0 {
		return invalid("Message.Size", "negative")
	}
	for i, p := range e.Properties {
		if !isNCName(p.Name) {
			return invalid(fmt.Sprintf("Properties[%d].Name", i), "%q is not an XML name", p.Name)
		}
		if checkText("", p.Value, false) != nil {
			return checkText(fmt.Sprintf("Properties[%d].Value", i), p.Value, false)
		}
	}
	return nil
}

// checkParty checks p; the field names are built only when p is invalid
// (concatenating onto "" does not allocate).
func checkParty(field string, p *Party) error {
	if partyError("", p) == nil {
		return nil
	}
	return partyError(field, p)
}

func partyError(field string, p *Party) error {
	if err := checkToken(field+".Address", p.Address, true); err != nil {
		return err
	}
	if !strings.Contains(p.Address, "@") {
		return invalid(field+".Address", "%q is not an address", p.Address)
	}
	if p.Identity != "" {
		scheme, value, ok := strings.Cut(p.Identity, ":")
		if !ok || scheme == "" || value == "" || strings.ToUpper(scheme) != scheme {
			return invalid(field+".Identity", "want SCHEME:VALUE (TCKN:…, VKN:…, MERSIS:…), got %q", p.Identity)
		}
		if err := checkToken(field+".Identity", p.Identity, true); err != nil {
			return err
		}
	}
	return checkText(field+".Name", p.Name, false)
}

func checkUUID(field, s string, required bool) error {
	if s == "" {
		if required {
			return invalid(field, "missing")
		}
		return nil
	}
	if !isCanonicalUUID(s) {
		return invalid(field, "want a UUID in canonical lower-case form, got %q", s)
	}
	return nil
}

// isCanonicalUUID accepts the 8-4-4-4-12 lower-case hexadecimal form.
func isCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

func checkTime(field string, t time.Time, required bool) error {
	if t.IsZero() {
		if required {
			return invalid(field, "missing")
		}
		return nil
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return invalid(field, "year %d out of range", y)
	}
	return nil
}

// checkText: valid UTF-8, no control characters, no XML non-characters.
func checkText(field, s string, required bool) error {
	if s == "" {
		if required {
			return invalid(field, "missing")
		}
		return nil
	}
	if !utf8.ValidString(s) {
		return invalid(field, "not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffe || r == 0xffff {
			return invalid(field, "control character %U", r)
		}
	}
	return nil
}

// checkToken: text without white space.
func checkToken(field, s string, required bool) error {
	if err := checkText(field, s, required); err != nil {
		return err
	}
	if strings.ContainsAny(s, " \u00a0") {
		return invalid(field, "contains a space")
	}
	return nil
}

// checkURI: a token that is an absolute URI or a URI reference (xs:anyURI is
// lenient; we only keep out spaces and controls).
func checkURI(field, s string, required bool) error {
	return checkToken(field, s, required)
}

// isNCName accepts ASCII XML names without a colon.
func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
