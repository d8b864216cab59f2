package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"
)

// E-seal (mali mühür) certificates: a qualified certificate for electronic
// seals (eIDAS art. 3(30); Turkish law calls a company's seal certificate
// "mali mühür") names a legal person, not a natural one. Where the subject
// carries the company's tax number (VKN) is not settled for Kamu SM's
// certificates (docs/signing.md), so the development CA issues the forms
// the defaults of package identity recognise:
//
//   - ESealOrgID: organizationIdentifier (2.5.4.97) "VATTR-" and the VKN, the
//     legal person semantics identifier of ETSI EN 319 412-1 §5.1.4 (VAT: a
//     tax number; TR: the country);
//   - ESealSerial: serialNumber (2.5.4.5) "VKN" and the VKN, the way Turkish
//     CAs write the TCKN of a person in the same attribute.
const (
	ESealOrgID  = "organizationIdentifier"
	ESealSerial = "serialNumber"
)

// OrganizationIdentifierAttr is the OID of the X.520 organizationIdentifier
// attribute.
var OrganizationIdentifierAttr = asn1.ObjectIdentifier{2, 5, 4, 97}

// ESealSubject is the subject of an e-seal certificate for the company org
// with the given VKN, written in form (ESealOrgID, the default, or
// ESealSerial).
func ESealSubject(vkn, org, form string) (pkix.Name, error) {
	n := pkix.Name{Country: []string{"TR"}, Organization: []string{org}, CommonName: org + " Mali Mühür"}
	switch form {
	case "", ESealOrgID:
		n.ExtraNames = []pkix.AttributeTypeAndValue{{Type: OrganizationIdentifierAttr, Value: "VATTR-" + vkn}}
	case ESealSerial:
		n.SerialNumber = "VKN" + vkn
	default:
		return n, fmt.Errorf("pki: unknown e-seal subject form %q (want %s or %s)", form, ESealOrgID, ESealSerial)
	}
	return n, nil
}

// qcStatements OIDs (ETSI EN 319 412-5 §4.2.1, §4.2.3).
var (
	oidQCStatements = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 3}
	oidQcCompliance = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 1}
	oidQcType       = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6}
	// OIDQcTypeESeal is id-etsi-qct-eseal: the certificate is for
	// electronic seals.
	OIDQcTypeESeal = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6, 2}
)

// qcStatementsESeal encodes qcStatements with QcCompliance and QcType
// eseal.
func qcStatementsESeal() (pkix.Extension, error) {
	type statement struct {
		ID   asn1.ObjectIdentifier
		Info asn1.RawValue `asn1:"optional"`
	}
	types, err := asn1.Marshal([]asn1.ObjectIdentifier{OIDQcTypeESeal})
	if err != nil {
		return pkix.Extension{}, err
	}
	v, err := asn1.Marshal([]statement{{ID: oidQcCompliance}, {ID: oidQcType, Info: asn1.RawValue{FullBytes: types}}})
	return pkix.Extension{Id: oidQCStatements, Value: v}, err
}

// IssueESeal issues an e-seal certificate with subject (see ESealSubject)
// for an S/MIME signature: keyUsage digitalSignature and contentCommitment,
// extended key usage emailProtection, the company's KEP address as an
// rfc822Name, and qcStatements saying it is a qualified seal certificate.
// key, when not nil, is the key to certify (a key on an HSM: only its public
// half is used); otherwise a key of keyType is made (default P-384).
func (ca *CA) IssueESeal(subject pkix.Name, email string, keyType KeyType, key crypto.Signer) (*Issued, error) {
	if keyType == "" {
		keyType = ECDSAP384
	}
	qc, err := qcStatementsESeal()
	if err != nil {
		return nil, err
	}
	var emails []string
	if email != "" {
		emails = []string{email}
	}
	return ca.Issue(Template{
		Subject:         subject,
		KeyType:         keyType,
		Key:             key,
		Validity:        2 * 365 * 24 * time.Hour,
		KeyUsage:        x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses:  emails,
		ExtraExtensions: []pkix.Extension{qc},
	})
}
