package identity

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"

	"github.com/kephs/kep/pki"
)

func eseal(t testing.TB, ca *pki.CA, vkn, form string) *x509.Certificate {
	t.Helper()
	subj, err := pki.ESealSubject(vkn, "Deniz Lojistik A.Ş.", form)
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.IssueESeal(subj, "deniz@hs01.kep.tr", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return is.Cert
}

// TestESealVKN reads the VKN from the forms the development CA issues and
// from forms a configuration names, and refuses what is not an e-seal.
func TestESealVKN(t *testing.T) {
	root := newRoot(t, "Test ESHS Root")
	const vkn = "4540536920"
	withOU := func(ou string) *x509.Certificate {
		return issue(t, root, pki.Template{Subject: pkix.Name{CommonName: "Deniz", OrganizationalUnit: []string{ou}}, KeyUsage: signerUsage})
	}
	withOID := issue(t, root, pki.Template{Subject: pkix.Name{CommonName: "Deniz",
		ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{2, 5, 4, 97}, Value: "VATTR-" + vkn}}}, KeyUsage: signerUsage})
	custom, err := ParseESealFields([]string{"OU=Vergi No ", "2.5.4.97=VATTR-"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		fields ESealFields
		cert   *x509.Certificate
		want   string
		err    error
	}{
		{"organizationIdentifier VATTR-", nil, eseal(t, root, vkn, pki.ESealOrgID), vkn, nil},
		{"serialNumber VKN", nil, eseal(t, root, vkn, pki.ESealSerial), vkn, nil},
		{"OU VKN:", nil, withOU("VKN:" + vkn), vkn, nil},
		{"OU, a bad check digit", nil, withOU("VKN:4540536921"), "", ErrNoVKN},
		{"OU in a form not configured", nil, withOU("Vergi No " + vkn), "", ErrNoVKN},
		{"OU in a configured form", custom, withOU("Vergi No " + vkn), vkn, nil},
		{"dotted OID configured", custom, withOID, vkn, nil},
		{"a person's certificate", nil, signer(t, root, testTCKN, "TCKN"), "", ErrNoVKN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := NewTrustStore(root.Cert)
			ts.SetESealFields(tt.fields)
			got, err := ts.ESealFields().VKN(tt.cert)
			if got != tt.want || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("VKN = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
			if ts.ESealVKN(tt.cert) != tt.want {
				t.Errorf("ESealVKN disagrees with VKN")
			}
		})
	}
	if _, err := ParseESealFields([]string{"nosuchattr=VKN"}); err == nil {
		t.Error("an unknown attribute name was accepted")
	}
}
