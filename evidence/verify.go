package evidence

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"math/big"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// Verify checks the enveloped XAdES signature of an evidence document and
// returns the evidence and the signer's certificate. It canonicalises the
// parsed document with a real Exclusive C14N implementation (goxmldsig over
// etree), so documents re-serialised on the way (attribute order, quoting,
// empty-element tags, an XML declaration) still verify; a changed character
// does not. It checks, in this order:
//
//  1. the document reference (URI="", enveloped-signature + exc-c14n),
//  2. the SignedProperties reference (URI="#…", exc-c14n),
//  3. that xades:SigningCertificateV2 holds the SHA-256 of the KeyInfo
//     certificate (EN 319 132-1 5.2.2),
//  4. the SignatureValue over the canonical SignedInfo with the KeyInfo
//     certificate's key (ECDSA raw r‖s, or RSA PKCS#1 v1.5).
//
// Only the shape Sign produces is accepted (two references of fixed
// transforms, SHA-256, one certificate): anything else is ErrMalformed, which
// also shuts the door on signature-wrapping tricks. Whether the certificate is
// trusted, and was valid when the evidence was time-stamped, is the caller's
// decision: it holds the trust anchors.
func Verify(data []byte) (*Evidence, *x509.Certificate, error) {
	doc, err := readDocument(data)
	if err != nil {
		return nil, nil, err
	}
	root := doc.Root()
	e, sigEl, err := parseEvidence(root)
	if err != nil {
		return nil, nil, err
	}
	if sigEl == nil {
		return nil, nil, ErrNoSignature
	}
	sig, err := parseSignature(sigEl, root.Tag+"/Signature")
	if err != nil {
		return nil, nil, err
	}
	if err := checkUniqueID(root, sig.spID); err != nil {
		return nil, nil, err
	}

	// 1. The evidence: the root without the signature (enveloped-signature
	// transform, XML-DSig 6.6.4), exclusive-canonicalised.
	rootCopy := root.Copy()
	rootCopy.RemoveChildAt(sigEl.Index())
	if d, err := digestC14N(rootCopy); err != nil {
		return nil, nil, err
	} else if !bytes.Equal(d, sig.docDigest) {
		return nil, nil, &DigestMismatchError{URI: ""}
	}
	// 2. The signed properties, canonicalised as a stand-alone subtree with
	// the namespaces in scope at its position.
	sp, err := detach(sig.spEl)
	if err != nil {
		return nil, nil, err
	}
	if d, err := digestC14N(sp); err != nil {
		return nil, nil, err
	} else if !bytes.Equal(d, sig.spDigest) {
		return nil, nil, &DigestMismatchError{URI: "#" + sig.spID}
	}
	// 3. The signing certificate is the one in KeyInfo.
	if h := sha256.Sum256(sig.cert.Raw); !bytes.Equal(h[:], sig.certDigest) {
		return nil, nil, ErrSigningCertMismatch
	}
	// 4. The signature over SignedInfo.
	si, err := detach(sig.siEl)
	if err != nil {
		return nil, nil, err
	}
	canon, err := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(si)
	if err != nil {
		return nil, nil, perr(root.Tag+"/Signature/SignedInfo", ErrMalformed, "canonicalise: %v", err)
	}
	h := sha256.Sum256(canon)
	if err := verifySignatureValue(sig.cert, sig.method, h[:], sig.value); err != nil {
		return nil, nil, err
	}
	return e, sig.cert, nil
}

// detach copies el with every namespace declaration in scope at its
// position, ready to be canonicalised on its own.
func detach(el *etree.Element) (*etree.Element, error) {
	ctx, err := etreeutils.NSBuildParentContext(el)
	if err != nil {
		return nil, perr(el.Tag, ErrMalformed, "namespaces: %v", err)
	}
	d, err := etreeutils.NSDetatch(ctx, el)
	if err != nil {
		return nil, perr(el.Tag, ErrMalformed, "namespaces: %v", err)
	}
	return d, nil
}

func digestC14N(el *etree.Element) ([]byte, error) {
	canon, err := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(el)
	if err != nil {
		return nil, perr(el.Tag, ErrMalformed, "canonicalise: %v", err)
	}
	h := sha256.Sum256(canon)
	return h[:], nil
}

func verifySignatureValue(cert *x509.Certificate, method string, digest, value []byte) error {
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if method != AlgECDSASHA256 {
			return fmt.Errorf("%w: SignatureMethod %s with an ECDSA key", ErrBadSignatureValue, method)
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(value) != 2*size {
			return fmt.Errorf("%w: ECDSA value of %d bytes, want r‖s of %d", ErrBadSignatureValue, len(value), 2*size)
		}
		r := new(big.Int).SetBytes(value[:size])
		s := new(big.Int).SetBytes(value[size:])
		if !ecdsa.Verify(pub, digest, r, s) {
			return ErrBadSignatureValue
		}
	case *rsa.PublicKey:
		if method != AlgRSASHA256 {
			return fmt.Errorf("%w: SignatureMethod %s with an RSA key", ErrBadSignatureValue, method)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, value); err != nil {
			return ErrBadSignatureValue
		}
	default:
		return fmt.Errorf("%w: certificate key type %T not supported", ErrBadSignatureValue, cert.PublicKey)
	}
	return nil
}

// signature is the parsed ds:Signature.
type signature struct {
	siEl       *etree.Element
	method     string
	docDigest  []byte
	spID       string
	spDigest   []byte
	value      []byte
	cert       *x509.Certificate
	spEl       *etree.Element
	certDigest []byte
}

// parseSignature reads ds:Signature strictly in the shape Sign writes.
func parseSignature(el *etree.Element, path string) (*signature, error) {
	sig := &signature{}
	sigID := el.SelectAttrValue("Id", "")
	if sigID == "" {
		return nil, perr(path, ErrMissingElement, "attribute Id")
	}
	s, err := children(el, path, "Id")
	if err != nil {
		return nil, err
	}
	// SignedInfo.
	if sig.siEl, err = s.req(NamespaceDS, "SignedInfo"); err != nil {
		return nil, err
	}
	sip := path + "/SignedInfo"
	si, err := children(sig.siEl, sip)
	if err != nil {
		return nil, err
	}
	if err := algorithm(si, NamespaceDS, "CanonicalizationMethod", AlgExcC14N); err != nil {
		return nil, err
	}
	if sig.method, err = algorithm2(si, NamespaceDS, "SignatureMethod", AlgECDSASHA256, AlgRSASHA256); err != nil {
		return nil, err
	}
	ref1, err := si.req(NamespaceDS, "Reference")
	if err != nil {
		return nil, err
	}
	r1p := sip + "/Reference[0]"
	if u := ref1.SelectAttr("URI"); u == nil || u.Value != "" || ref1.SelectAttr("Type") != nil {
		return nil, perr(r1p, ErrBadValue, `first reference must be URI="" without Type`)
	}
	refID := ref1.SelectAttrValue("Id", "")
	if sig.docDigest, err = reference(ref1, r1p, AlgEnveloped, AlgExcC14N); err != nil {
		return nil, err
	}
	ref2, err := si.req(NamespaceDS, "Reference")
	if err != nil {
		return nil, err
	}
	r2p := sip + "/Reference[1]"
	u := ref2.SelectAttrValue("URI", "")
	if len(u) < 2 || u[0] != '#' || ref2.SelectAttrValue("Type", "") != TypeSignedProps {
		return nil, perr(r2p, ErrBadValue, `second reference must be URI="#…" Type="%s"`, TypeSignedProps)
	}
	sig.spID = u[1:]
	if sig.spDigest, err = reference(ref2, r2p, AlgExcC14N); err != nil {
		return nil, err
	}
	if err := si.done(); err != nil {
		return nil, err
	}
	// SignatureValue.
	v, err := s.leaf(NamespaceDS, "SignatureValue")
	if err != nil {
		return nil, err
	}
	if sig.value, err = decodeBase64(path+"/SignatureValue", v); err != nil {
		return nil, err
	}
	// KeyInfo: exactly one certificate.
	ki, err := s.req(NamespaceDS, "KeyInfo")
	if err != nil {
		return nil, err
	}
	kis, err := children(ki, path+"/KeyInfo")
	if err != nil {
		return nil, err
	}
	xd, err := kis.req(NamespaceDS, "X509Data")
	if err != nil {
		return nil, err
	}
	if err := kis.done(); err != nil {
		return nil, err
	}
	xds, err := children(xd, path+"/KeyInfo/X509Data")
	if err != nil {
		return nil, err
	}
	cv, err := xds.leaf(NamespaceDS, "X509Certificate")
	if err != nil {
		return nil, err
	}
	if err := xds.done(); err != nil {
		return nil, err
	}
	der, err := decodeBase64(path+"/KeyInfo/X509Data/X509Certificate", cv)
	if err != nil {
		return nil, err
	}
	if sig.cert, err = x509.ParseCertificate(der); err != nil {
		return nil, perr(path+"/KeyInfo/X509Data/X509Certificate", ErrBadValue, "%v", err)
	}
	// Object/QualifyingProperties.
	obj, err := s.req(NamespaceDS, "Object")
	if err != nil {
		return nil, err
	}
	if err := s.done(); err != nil {
		return nil, err
	}
	op := path + "/Object"
	objs, err := children(obj, op)
	if err != nil {
		return nil, err
	}
	qp, err := objs.req(NamespaceXAdES, "QualifyingProperties")
	if err != nil {
		return nil, err
	}
	if err := objs.done(); err != nil {
		return nil, err
	}
	qpp := op + "/QualifyingProperties"
	if t := qp.SelectAttrValue("Target", ""); t != "#"+sigID {
		return nil, perr(qpp, ErrBadValue, "Target %q, want %q", t, "#"+sigID)
	}
	qs, err := children(qp, qpp, "Target")
	if err != nil {
		return nil, err
	}
	if sig.spEl, err = qs.req(NamespaceXAdES, "SignedProperties"); err != nil {
		return nil, err
	}
	// Unsigned properties (a later XAdES-T augmentation) are not covered by
	// the signature and not interpreted here.
	qs.opt(NamespaceXAdES, "UnsignedProperties")
	if err := qs.done(); err != nil {
		return nil, err
	}
	spp := qpp + "/SignedProperties"
	if id := sig.spEl.SelectAttrValue("Id", ""); id != sig.spID {
		return nil, perr(spp, ErrBadValue, "Id %q, reference points to %q", id, sig.spID)
	}
	sps, err := children(sig.spEl, spp, "Id")
	if err != nil {
		return nil, err
	}
	ssp, err := sps.req(NamespaceXAdES, "SignedSignatureProperties")
	if err != nil {
		return nil, err
	}
	sspp := spp + "/SignedSignatureProperties"
	ssps, err := children(ssp, sspp)
	if err != nil {
		return nil, err
	}
	st, err := ssps.leaf(NamespaceXAdES, "SigningTime")
	if err != nil {
		return nil, err
	}
	if _, err := parseTime(sspp+"/SigningTime", st); err != nil {
		return nil, err
	}
	sc, err := ssps.req(NamespaceXAdES, "SigningCertificateV2")
	if err != nil {
		return nil, err
	}
	if err := ssps.done(); err != nil {
		return nil, err
	}
	scp := sspp + "/SigningCertificateV2"
	scs, err := children(sc, scp)
	if err != nil {
		return nil, err
	}
	certEl, err := scs.req(NamespaceXAdES, "Cert")
	if err != nil {
		return nil, err
	}
	if err := scs.done(); err != nil {
		return nil, err
	}
	cs, err := children(certEl, scp+"/Cert", "URI")
	if err != nil {
		return nil, err
	}
	cd, err := cs.req(NamespaceXAdES, "CertDigest")
	if err != nil {
		return nil, err
	}
	cs.opt(NamespaceXAdES, "IssuerSerialV2")
	if err := cs.done(); err != nil {
		return nil, err
	}
	cds, err := children(cd, scp+"/Cert/CertDigest")
	if err != nil {
		return nil, err
	}
	if err := algorithm(cds, NamespaceDS, "DigestMethod", DigestSHA256); err != nil {
		return nil, err
	}
	dv, err := cds.leaf(NamespaceDS, "DigestValue")
	if err != nil {
		return nil, err
	}
	if sig.certDigest, err = decodeBase64(scp+"/Cert/CertDigest/DigestValue", dv); err != nil {
		return nil, err
	}
	if err := cds.done(); err != nil {
		return nil, err
	}
	// Baseline B: DataObjectFormat for the signed evidence.
	sdo, err := sps.req(NamespaceXAdES, "SignedDataObjectProperties")
	if err != nil {
		return nil, err
	}
	if err := sps.done(); err != nil {
		return nil, err
	}
	sdop := spp + "/SignedDataObjectProperties"
	sdos, err := children(sdo, sdop)
	if err != nil {
		return nil, err
	}
	dof, err := sdos.req(NamespaceXAdES, "DataObjectFormat")
	if err != nil {
		return nil, err
	}
	if err := sdos.done(); err != nil {
		return nil, err
	}
	if refID == "" || dof.SelectAttrValue("ObjectReference", "") != "#"+refID {
		return nil, perr(sdop+"/DataObjectFormat", ErrBadValue, "ObjectReference must point to the evidence reference")
	}
	dofs, err := children(dof, sdop+"/DataObjectFormat", "ObjectReference")
	if err != nil {
		return nil, err
	}
	if _, err := dofs.leaf(NamespaceXAdES, "MimeType"); err != nil {
		return nil, err
	}
	return sig, dofs.done()
}

// algorithm reads the next child name and checks its Algorithm attribute.
func algorithm(s *seq, ns, name, want string) error {
	_, err := algorithm2(s, ns, name, want)
	return err
}

func algorithm2(s *seq, ns, name string, allowed ...string) (string, error) {
	el, err := s.req(ns, name)
	if err != nil {
		return "", err
	}
	p := s.path + "/" + name
	if _, err := text(el, p, "Algorithm"); err != nil {
		return "", err
	}
	alg := el.SelectAttrValue("Algorithm", "")
	for _, a := range allowed {
		if alg == a {
			return alg, nil
		}
	}
	return "", perr(p, ErrBadValue, "Algorithm %q not supported", alg)
}

// reference reads a ds:Reference with exactly the given transforms and a
// SHA-256 digest, returning the digest value.
func reference(el *etree.Element, path string, transforms ...string) ([]byte, error) {
	s, err := children(el, path, "Id", "URI", "Type")
	if err != nil {
		return nil, err
	}
	te, err := s.req(NamespaceDS, "Transforms")
	if err != nil {
		return nil, err
	}
	ts, err := children(te, path+"/Transforms")
	if err != nil {
		return nil, err
	}
	for _, t := range transforms {
		if err := algorithm(ts, NamespaceDS, "Transform", t); err != nil {
			return nil, err
		}
	}
	if err := ts.done(); err != nil {
		return nil, err
	}
	if err := algorithm(s, NamespaceDS, "DigestMethod", DigestSHA256); err != nil {
		return nil, err
	}
	v, err := s.leaf(NamespaceDS, "DigestValue")
	if err != nil {
		return nil, err
	}
	if err := s.done(); err != nil {
		return nil, err
	}
	d, err := decodeBase64(path+"/DigestValue", v)
	if err != nil {
		return nil, err
	}
	if len(d) != sha256.Size {
		return nil, perr(path+"/DigestValue", ErrBadValue, "%d bytes, want %d", len(d), sha256.Size)
	}
	return d, nil
}

// checkUniqueID makes sure exactly one element carries the id the
// SignedProperties reference points to (XML-DSig wrapping attacks rely on a
// second element with the same id that another processor would pick).
func checkUniqueID(root *etree.Element, id string) error {
	n := 0
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		for _, a := range el.Attr {
			if a.Space == "" && (a.Key == "Id" || a.Key == "ID" || a.Key == "id") && a.Value == id {
				n++
			}
		}
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	walk(root)
	if n != 1 {
		return perr(root.Tag, ErrMalformed, "id %q occurs %d times", id, n)
	}
	return nil
}
