package identity

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
)

// E-seal (mali mühür) certificates name a company, not a person: the
// company's VKN stands somewhere in the subject, and a message sealed with
// it is bound to the account whose owner identity is that VKN. Where Kamu SM
// writes the VKN could not be checked (docs/signing.md), so the places are
// configurable (config key identity.eseal_vkn_fields), each an attribute
// and the prefix before the ten digits, and the defaults cover the common
// forms:
//
//   - organizationIdentifier=VATTR- : the legal person semantics identifier
//     of ETSI EN 319 412-1 §5.1.4 (VAT number scheme, country TR);
//   - serialNumber=VKN, serialNumber=VKN-, serialNumber=VKN: : the VKN
//     written the way Turkish CAs write a person's TCKN;
//   - organizationalUnitName=VKN: and organizationalUnitName=VKN- : a VKN
//     in an OU, as some CAs put registration numbers.
//
// A certificate is an e-seal when one of the fields holds a valid VKN and the
// subject names no TCKN (a person's certificate that mentions their
// employer's tax number in an OU stays a person's).
var DefaultESealFields = []string{
	"organizationIdentifier=VATTR-",
	"serialNumber=VKN", "serialNumber=VKN-", "serialNumber=VKN:",
	"organizationalUnitName=VKN:", "organizationalUnitName=VKN-",
}

// ErrNoVKN: the certificate's subject holds no VKN in any configured field.
var ErrNoVKN = errors.New("identity: certificate subject holds no VKN")

// ESealField is one place of the VKN: the attribute, and the prefix before
// the digits (matched without regard to case; "" for the bare digits).
type ESealField struct {
	Name   string // as configured, for messages
	Attr   asn1.ObjectIdentifier
	Prefix string
}

// ESealFields are the places, tried in order.
type ESealFields []ESealField

// subjectAttrs are the attribute names a field may use.
var subjectAttrs = map[string]asn1.ObjectIdentifier{
	"serialNumber":           {2, 5, 4, 5},
	"organizationIdentifier": {2, 5, 4, 97},
	"organizationalUnitName": {2, 5, 4, 11},
	"OU":                     {2, 5, 4, 11},
	"organizationName":       {2, 5, 4, 10},
	"O":                      {2, 5, 4, 10},
	"commonName":             {2, 5, 4, 3},
	"CN":                     {2, 5, 4, 3},
}

// ParseESealFields reads specs of the form ATTRIBUTE=PREFIX (an X.520 name
// such as serialNumber, organizationIdentifier, organizationalUnitName, or
// a dotted OID).
func ParseESealFields(specs []string) (ESealFields, error) {
	var out ESealFields
	for _, s := range specs {
		name, prefix, _ := strings.Cut(s, "=")
		name = strings.TrimSpace(name)
		oid, ok := subjectAttrs[name]
		if !ok {
			var err error
			if oid, err = parseOID(name); err != nil {
				return nil, fmt.Errorf("identity: e-seal VKN field %q: the attribute is neither a known name (serialNumber, organizationIdentifier, organizationalUnitName, organizationName, commonName) nor an OID", s)
			}
		}
		out = append(out, ESealField{Name: s, Attr: oid, Prefix: prefix})
	}
	return out, nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, p := range strings.Split(s, ".") {
		n := 0
		if p == "" || len(p) > 9 || !allDigits(p) {
			return nil, errors.New("not an OID")
		}
		for _, c := range p {
			n = n*10 + int(c-'0')
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, errors.New("not an OID")
	}
	return oid, nil
}

// VKN returns the VKN an e-seal certificate names, from the first field
// that holds one; the error matches ErrNoVKN when none does and the
// certificate is therefore not an e-seal, or names a person (a TCKN).
func (f ESealFields) VKN(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", &CertError{Err: ErrNoVKN, Reason: "no certificate"}
	}
	if _, err := TCKNFromCertificate(cert); err == nil {
		return "", &CertError{Err: ErrNoVKN, Cert: cert, Reason: fmt.Sprintf("%s names a person (a TCKN), so it is not an e-seal", describe(cert))}
	}
	for _, fl := range f {
		for _, atv := range cert.Subject.Names {
			if !atv.Type.Equal(fl.Attr) {
				continue
			}
			v := strings.TrimSpace(fmt.Sprint(atv.Value))
			if len(v) < len(fl.Prefix) || !strings.EqualFold(v[:len(fl.Prefix)], fl.Prefix) {
				continue
			}
			if d := strings.TrimSpace(v[len(fl.Prefix):]); ValidateVKN(d) == nil {
				return d, nil
			}
		}
	}
	var names []string
	for _, fl := range f {
		names = append(names, fl.Name)
	}
	return "", &CertError{Err: ErrNoVKN, Cert: cert,
		Reason: fmt.Sprintf("%s holds no valid VKN in any of the places an e-seal's VKN is looked for (%s; config identity.eseal_vkn_fields)", describe(cert), strings.Join(names, ", "))}
}

// Bind checks that the e-seal certificate cert belongs to the legal person
// want (a VKN). The error matches ErrIdentityMismatch, ErrNoVKN or
// ErrNotBindable (want is not a VKN).
func (f ESealFields) Bind(cert *x509.Certificate, want ID) error {
	if want.Scheme != VKN {
		return &CertError{Err: ErrNotBindable, Cert: cert, Want: want,
			Reason: fmt.Sprintf("e-seal certificates are bound to a VKN, and the account is held under a %s", want.Scheme)}
	}
	got, err := f.VKN(cert)
	if err != nil {
		return err
	}
	if got != want.Value {
		g := ID{Scheme: VKN, Value: got}
		return &CertError{Err: ErrIdentityMismatch, Cert: cert, Want: want, Got: g,
			Reason: fmt.Sprintf("the e-seal certificate is bound to %s, not to %s", g.Masked(), want.Masked())}
	}
	return nil
}

var defaultESealFields = func() ESealFields {
	f, err := ParseESealFields(DefaultESealFields)
	if err != nil {
		panic(err)
	}
	return f
}()

// SetESealFields sets where the store's checks look for an e-seal's VKN
// (nil: DefaultESealFields).
func (ts *TrustStore) SetESealFields(f ESealFields) {
	if f == nil {
		f = defaultESealFields
	}
	ts.eseal.Store(&f)
}

// ESealFields returns where the store looks for an e-seal's VKN.
func (ts *TrustStore) ESealFields() ESealFields {
	if p := ts.eseal.Load(); p != nil {
		return *p
	}
	return defaultESealFields
}

// ESealVKN returns the VKN of cert when it is an e-seal certificate under
// the store's fields, and "" when it is not.
func (ts *TrustStore) ESealVKN(cert *x509.Certificate) string {
	v, err := ts.ESealFields().VKN(cert)
	if err != nil {
		return ""
	}
	return v
}

// bind binds cert to want: a TCKN to a person's certificate
// (BindCertificate), a VKN to an e-seal certificate (ESealFields.Bind).
func (ts *TrustStore) bind(cert *x509.Certificate, want ID) error {
	if want.Scheme == VKN {
		return ts.ESealFields().Bind(cert, want)
	}
	return BindCertificate(cert, want)
}
