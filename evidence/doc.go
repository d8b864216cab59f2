// Package evidence is in charge of KEP evidence (delil): the signed proof the
// provider issues for each step of a message — accepted or rejected at
// submission, accepted or refused by the recipient's provider, placed in or
// refused by the recipient's mailbox, read or deemed read. It models an
// evidence after ETSI TS 102 640-2 REMEvidenceType (namespace
// http://uri.etsi.org/02640/v2#), writes it as compact deterministic XML,
// signs it with an enveloped XAdES baseline B signature (ETSI EN 319 132-1)
// that xmlsec1 verifies, and parses and verifies such documents offline.
//
// Evidence holds identities and digests, never message content: the subject
// is withheld (ETSI requires the MessageSubject element; it is written empty)
// and the original is represented by the SHA-256 of its exact bytes.
//
// # Document layout
//
// The signer writes the document directly in Exclusive XML Canonicalization
// 1.0 form (W3C xml-exc-c14n): no XML declaration, no indentation, attributes
// in canonical order, namespace declarations on the elements that use them,
// empty elements as start and end tag pairs, text escaped as c14n escapes it.
// The unsigned part of a signed document is therefore its own canonical form,
// and the reference digests are computed over the bytes as written, without
// running a canonicaliser (see sign.go). Verify, on the other hand, runs a
// real canonicaliser over the parsed document, because a document may have
// been re-serialised on its way.
//
//	<SubmissionAcceptanceRejection xmlns="http://uri.etsi.org/02640/v2#" version="2">
//	  EventCode, EventReasons, EvidenceIdentifier, EvidenceIssuerPolicyID,
//	  EvidenceIssuerDetails, SenderAuthenticationDetails, EventTime,
//	  SubmissionTime, SenderDetails, RecipientsDetails, SenderMessageDetails,
//	  Extensions/Extension/kep:Details (DelilTurId, IletiTip, Size, ...)
//	  <ds:Signature Id="S">
//	    SignedInfo: Reference URI="" (enveloped-signature, exc-c14n) and
//	                Reference URI="#SP" Type="http://uri.etsi.org/01903#SignedProperties"
//	    SignatureValue, KeyInfo/X509Data/X509Certificate (leaf only)
//	    Object/xades:QualifyingProperties/xades:SignedProperties Id="SP":
//	                SigningTime, SigningCertificateV2, DataObjectFormat
//	  </ds:Signature>
//	</SubmissionAcceptanceRejection>
//
// A standard tool verifies it without further options:
//
//	xmlsec1 --verify --trusted-pem ca.pem evidence.xml
//
// (xmlsec1 registers the Id attributes inside ds:Signature itself, so the
// "#SP" reference resolves without --id-attr; the document reference is URI=""
// and needs no Id at all.) The XML schema of what we emit is in
// docs/evidence-schema.
//
// Bundles (evidence + chain + RFC 3161 time stamp + Merkle inclusion proof)
// are built on top of this package; time stamps and the log live elsewhere.
package evidence
