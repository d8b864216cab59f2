package tsa

import (
	"bytes"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"time"
)

// The ASN.1 of RFC 3161 (TSP) that this package reads and writes, and the
// CMS (RFC 5652) and ESS (RFC 5035) structures the development TSA writes.
// Tokens are read with the project's one CMS model, cms.ParseSignedData,
// and checked with cms.SignedData.VerifySigner under the one algorithm
// policy (cms.Policy); only the TSTInfo inside is parsed here.
//
// The project used github.com/digitorus/timestamp once; it no longer does
// (Request, Status and FailureInfo are here): its CreateResponse draws
// random serial numbers (we need increasing ones), its pkcs7 signer puts
// time.Now() in signingTime whatever the TSA's clock says, and its Parse
// checks the signature only when the token embeds certificates, and never
// the chain, the EKU or the ESS binding.

// CMS and TSP (RFC 5652 §5.1, §11; RFC 3161 §2.3, §2.4.2; RFC 5035 §3).
var (
	oidSignedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidTSTInfo           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4} // id-ct-TSTInfo
	oidAttrContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidAttrSigningCertV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47} // ESS v2, RFC 5035 §3
	oidExtKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidKPTimeStamping    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
)

// Signature algorithms (RFC 8017, RFC 4055, RFC 5480, RFC 5758, RFC 8419).
var (
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

// Hash algorithms (RFC 3279, RFC 5754). Which are accepted, for new and for
// old tokens, is cms.Policy's to say; parsing knows them all.
var (
	hashOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA1:   {1, 3, 14, 3, 2, 26},
		crypto.SHA224: {2, 16, 840, 1, 101, 3, 4, 2, 4},
		crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
		crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
		crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
	}
	asn1NULL = asn1.RawValue{Tag: asn1.TagNull} // AlgorithmIdentifier parameters
)

func hashFromOID(oid asn1.ObjectIdentifier) crypto.Hash {
	for h, o := range hashOIDs {
		if o.Equal(oid) {
			return h
		}
	}
	return 0
}

// hashAlgID is the AlgorithmIdentifier of an imprint hash. RFC 5754 §2 wants
// the parameters of SHA-2 identifiers absent and accepts NULL; OpenSSL and
// other clients write NULL in requests, and so do we for imprints.
func hashAlgID(h crypto.Hash) pkix.AlgorithmIdentifier {
	return pkix.AlgorithmIdentifier{Algorithm: hashOIDs[h], Parameters: asn1NULL}
}

// RFC 3161 §2.4.1.
type timeStampReq struct {
	Version        int
	MessageImprint messageImprint
	ReqPolicy      asn1.ObjectIdentifier `asn1:"optional"`
	Nonce          *big.Int              `asn1:"optional"`
	CertReq        bool                  `asn1:"optional,default:false"`
	Extensions     []pkix.Extension      `asn1:"optional,tag:0"`
}

// messageImprint keeps its DER so that the TSA can echo it exactly as
// RFC 3161 §2.4.2 demands ("MUST have the same value").
type messageImprint struct {
	Raw           asn1.RawContent
	HashAlgorithm pkix.AlgorithmIdentifier
	HashedMessage []byte
}

// RFC 3161 §2.4.2.
type timeStampResp struct {
	Status         pkiStatusInfo
	TimeStampToken asn1.RawValue `asn1:"optional"`
}

type pkiStatusInfo struct {
	Status       int
	StatusString []asn1.RawValue `asn1:"optional"` // PKIFreeText: SEQUENCE OF UTF8String
	FailInfo     asn1.BitString  `asn1:"optional"`
}

type tstInfo struct {
	Version        int
	Policy         asn1.ObjectIdentifier
	MessageImprint messageImprint
	SerialNumber   *big.Int
	GenTime        asn1.RawValue    // GeneralizedTime, parsed by parseGenTime
	Accuracy       accuracy         `asn1:"optional"`
	Ordering       bool             `asn1:"optional,default:false"`
	Nonce          *big.Int         `asn1:"optional"`
	TSA            asn1.RawValue    `asn1:"explicit,optional,tag:0"` // GeneralName
	Extensions     []pkix.Extension `asn1:"optional,tag:1"`
}

type accuracy struct {
	Seconds int `asn1:"optional"`
	Millis  int `asn1:"optional,tag:0"`
	Micros  int `asn1:"optional,tag:1"`
}

func (a accuracy) duration() time.Duration {
	return time.Duration(a.Seconds)*time.Second + time.Duration(a.Millis)*time.Millisecond + time.Duration(a.Micros)*time.Microsecond
}

func accuracyOf(d time.Duration) accuracy {
	if d <= 0 {
		return accuracy{}
	}
	if d < time.Microsecond {
		d = time.Microsecond
	}
	return accuracy{
		Seconds: int(d / time.Second),
		Millis:  int(d % time.Second / time.Millisecond),
		Micros:  int(d % time.Millisecond / time.Microsecond),
	}
}

// RFC 5652 §3 and §5.
type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"explicit,tag:0"`
}

type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue // SET OF AlgorithmIdentifier; the signer's is what counts
	EncapContentInfo encapContentInfo
	Certificates     asn1.RawValue `asn1:"optional,tag:0"` // [0] IMPLICIT CertificateSet
	CRLs             asn1.RawValue `asn1:"optional,tag:1"`
	SignerInfos      []signerInfo  `asn1:"set"`
}

type encapContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     []byte `asn1:"explicit,optional,tag:0"`
}

type signerInfo struct {
	Version            int
	SID                asn1.RawValue // issuerAndSerialNumber or [0] subjectKeyIdentifier
	DigestAlgorithm    pkix.AlgorithmIdentifier
	SignedAttrs        asn1.RawValue `asn1:"optional,tag:0"` // [0] IMPLICIT SET OF Attribute
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
	UnsignedAttrs      asn1.RawValue `asn1:"optional,tag:1"`
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue // SET OF AttributeValue
}

// RFC 5035 §3 (ESS signing-certificate attribute v2), as the TSA writes it.
type signingCertificateV2 struct {
	Certs    []essCertIDv2
	Policies asn1.RawValue `asn1:"optional"`
}

type essCertIDv2 struct {
	HashAlgorithm pkix.AlgorithmIdentifier `asn1:"optional"` // DEFAULT sha256
	CertHash      []byte
	IssuerSerial  asn1.RawValue `asn1:"optional"`
}

// tlv encodes one DER element around body.
func tlv(class, tag int, compound bool, body []byte) []byte {
	b, err := asn1.Marshal(asn1.RawValue{Class: class, Tag: tag, IsCompound: compound, Bytes: body})
	if err != nil { // only for absurd lengths
		panic(err)
	}
	return b
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("tsa: marshal %T: %v", v, err))
	}
	return b
}

// derSetOf concatenates elements in the order DER requires for a SET OF
// (X.690 §11.6: ascending encodings).
func derSetOf(elems [][]byte) []byte {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, bytes.Compare)
	return bytes.Join(sorted, nil)
}

// genTimeDER encodes t as GeneralizedTime the way RFC 3161 §2.4.2 wants it:
// UTC with "Z", fractional seconds (here milliseconds) only when non-zero and
// without trailing zeros. encoding/asn1 would write seconds only, and in the
// time's own zone ("+0300" for Europe/Istanbul) unless given UTC.
func genTimeDER(t time.Time) []byte {
	t = t.UTC().Truncate(time.Millisecond)
	s := t.Format("20060102150405.999") + "Z" // .999 drops trailing zeros and a bare dot
	return tlv(asn1.ClassUniversal, asn1.TagGeneralizedTime, false, []byte(s))
}

// parseGenTime is lenient where encoding/asn1 is not: it accepts trailing
// zeros in the fraction, which some TSAs write in spite of RFC 3161 §2.4.2.
func parseGenTime(v asn1.RawValue) (time.Time, error) {
	if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagGeneralizedTime || v.IsCompound {
		return time.Time{}, fmt.Errorf("genTime is not a GeneralizedTime (tag %d)", v.Tag)
	}
	s := string(v.Bytes)
	for _, layout := range []string{"20060102150405.999999999Z0700", "20060102150405Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("genTime %s is not a valid GeneralizedTime", strconv.Quote(s))
}

// failInfoBits encodes PKIFailureInfo bits as a DER named-bit BIT STRING.
func failInfoBits(bits ...int) asn1.BitString {
	maxBit := slices.Max(bits)
	b := make([]byte, maxBit/8+1)
	for _, i := range bits {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return asn1.BitString{Bytes: b, BitLength: maxBit + 1}
}
