package evidence

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	sumtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
	"github.com/kephs/kep/tsa"
)

// An evidence bundle is one ZIP file holding everything needed to verify
// one evidence offline, years later, without the provider. It follows the
// ETSI ASiC conventions (EN 319 162-1) where they fit: a "mimetype" member
// first, stored uncompressed, so the type can be read at a fixed offset;
// container metadata under META-INF/. docs/evidence.md describes each
// member and how to check it with openssl and xmlsec1 alone.
const (
	BundleMediaType = "application/vnd.kep.evidence-bundle+zip"

	MemberMimetype      = "mimetype"
	MemberEvidence      = "evidence.xml"                 // the signed evidence (XAdES-B enveloped signature)
	MemberCertificates  = "META-INF/certificates.pem"    // the signer's certificate, then its chain
	MemberCheckpoint    = "META-INF/checkpoint"          // C2SP signed note: the log's size and root hash
	MemberTimestamp     = "META-INF/checkpoint.tsr"      // RFC 3161 TimeStampResp over the checkpoint member
	MemberProof         = "META-INF/inclusion-proof.txt" // the evidence's leaf index and audit path
	MemberLogKey        = "META-INF/log-key.txt"         // the log's verifier key (must match the trust anchor)
	MemberRetimestamp   = "META-INF/retimestamp-"        // + N + ".tsr": later time stamps over the checkpoint
	bundleReadme        = "README.txt"                   // how to verify by hand
	maxBundleMemberSize = 4 << 20
	// maxBundleSize bounds all members together, uncompressed: what a
	// verifier holds in memory for one bundle (a ZIP bomb of 64 members of
	// maxBundleMemberSize would be 256 MB from a few kB).
	maxBundleSize = 32 << 20
)

// Bundle is the content of an evidence bundle.
type Bundle struct {
	Evidence     []byte              // signed evidence document
	Certificates []*x509.Certificate // signer first, then its chain
	Checkpoint   []byte              // signed note
	Timestamp    []byte              // DER TimeStampResp over Checkpoint
	Index        int64               // the evidence's leaf index
	Proof        sumtlog.RecordProof // audit path to the checkpoint's root
	LogKey       string              // note verifier key of the log
	Retimestamps [][]byte            // later DER TimeStampResps over Checkpoint
	Revocation   [][]byte            // revocation data the evidence cites, in its order (revocation.go)
}

// FormatProof writes an inclusion proof as text:
//
//	kep-inclusion-proof v1
//	hash sha256 (RFC 6962)
//	index <leaf index>
//	size <tree size>
//	<base64 hash>   (one line per audit-path hash, leaf to root)
func FormatProof(index, size int64, proof sumtlog.RecordProof) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "kep-inclusion-proof v1\nhash sha256 (RFC 6962)\nindex %d\nsize %d\n", index, size)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseProof reads FormatProof's text.
func ParseProof(b []byte) (index, size int64, proof sumtlog.RecordProof, err error) {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 4 || lines[0] != "kep-inclusion-proof v1" || lines[1] != "hash sha256 (RFC 6962)" {
		return 0, 0, nil, errors.New("not a kep-inclusion-proof v1 with SHA-256")
	}
	num := func(line, key string) (int64, error) {
		v, ok := strings.CutPrefix(line, key+" ")
		if !ok {
			return 0, fmt.Errorf("want %q line", key)
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
			return 0, fmt.Errorf("bad %s %q", key, v)
		}
		return n, nil
	}
	if index, err = num(lines[2], "index"); err != nil {
		return
	}
	if size, err = num(lines[3], "size"); err != nil {
		return
	}
	if len(lines)-4 > 64 {
		return 0, 0, nil, errors.New("proof longer than any tree allows")
	}
	for _, l := range lines[4:] {
		h, e := base64.StdEncoding.DecodeString(l)
		if e != nil || len(h) != sumtlog.HashSize {
			return 0, 0, nil, fmt.Errorf("bad proof hash %q", l)
		}
		proof = append(proof, sumtlog.Hash(h))
	}
	return index, size, proof, nil
}

// The modification time written for every member, so that the same bundle
// is byte-identical whenever it is made: 2020-01-01 00:00:00 as an MS-DOS
// date and time (APPNOTE.TXT 4.4.6).
const (
	fixedDOSDate = (2020-1980)<<9 | 1<<5 | 1
	fixedDOSTime = 0
)

// Marshal writes the bundle as a ZIP file. The output is deterministic: the
// same bundle always yields the same bytes (see packBundle).
func (b *Bundle) Marshal() ([]byte, error) {
	_, size, _, err := tlog.ParseCheckpoint(tlog.NoteBody(b.Checkpoint))
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	ts, err := canonicalStampResponse(b.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("bundle: checkpoint time stamp: %w", err)
	}
	members := []bundleMember{
		{MemberMimetype, []byte(BundleMediaType)},
		{MemberEvidence, b.Evidence},
		{MemberCertificates, pki.CertPEM(b.Certificates...)},
		{MemberCheckpoint, b.Checkpoint},
		{MemberTimestamp, ts},
		{MemberProof, FormatProof(b.Index, size, b.Proof)},
		{MemberLogKey, []byte(b.LogKey + "\n")},
	}
	for i, r := range b.Retimestamps {
		ts, err := canonicalStampResponse(r)
		if err != nil {
			return nil, fmt.Errorf("bundle: later time stamp %d: %w", i+1, err)
		}
		members = append(members, bundleMember{fmt.Sprintf("%s%d.tsr", MemberRetimestamp, i+1), ts})
	}
	members = append(members, revocationMembers(b.Revocation)...)
	members = append(members, bundleMember{bundleReadme, []byte(readme)})
	return packBundle(members)
}

type bundleMember struct {
	name string
	data []byte
}

// packBundle writes members, in order, as the canonical ZIP file of a
// bundle: every member stored (method 0, no compression: the bytes of a
// member are its content, and the file does not depend on a compressor's
// output, which may change from one version to the next), no data
// descriptor, no extra field, no comment, version 2.0, the fixed date. The
// "mimetype" member comes first, so its content starts at byte 38 (ASiC,
// EN 319 162-1 A.1). ParseBundle accepts only this form: any byte of a
// bundle that is changed, added or removed makes it fail.
func packBundle(members []bundleMember) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range members {
		fh := &zip.FileHeader{Name: m.name, Method: zip.Store, CreatorVersion: 20, ReaderVersion: 20,
			ModifiedDate: fixedDOSDate, ModifiedTime: fixedDOSTime, CRC32: crc32.ChecksumIEEE(m.data),
			CompressedSize64: uint64(len(m.data)), UncompressedSize64: uint64(len(m.data))}
		w, err := zw.CreateRaw(fh)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(m.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

const readme = `KEP evidence bundle (application/vnd.kep.evidence-bundle+zip)

evidence.xml                  the evidence, signed by the provider (XML-DSig, XAdES-B)
META-INF/certificates.pem     the signer's certificate, then its chain
META-INF/checkpoint           the evidence log's signed checkpoint (C2SP signed note)
META-INF/checkpoint.tsr       RFC 3161 time stamp over META-INF/checkpoint
META-INF/inclusion-proof.txt  RFC 6962 audit path of the evidence in the checkpoint's tree
META-INF/log-key.txt          the log's public key (compare with the provider's published key)

Verify with the kep binary:  kep verify BUNDLE --anchors DIR [--original message.eml]
Verify by hand:               see docs/evidence.md ("Verifying without kep").
`

// ErrBundle is the class of errors about a bundle's container.
var ErrBundle = errors.New("bundle")

// ParseBundle reads a bundle and checks its container: the members Marshal
// writes, in its order, each once, nothing unknown, each member in its
// canonical form, and the whole file byte for byte the canonical ZIP of
// those members (packBundle). The signatures and time stamps are
// VerifyBundle's business.
func ParseBundle(data []byte) (*Bundle, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%w: not a readable ZIP file: %v", ErrBundle, err)
	}
	if len(zr.File) == 0 || zr.File[0].Name != MemberMimetype || zr.File[0].Method != zip.Store {
		return nil, fmt.Errorf("%w: the first member must be %q, stored", ErrBundle, MemberMimetype)
	}
	if len(zr.File) > 64 {
		return nil, fmt.Errorf("%w: %d members is too many", ErrBundle, len(zr.File))
	}
	var total uint64 // archive/zip refuses a member larger than it declares
	for _, f := range zr.File {
		total += min(f.UncompressedSize64, maxBundleSize+1)
	}
	if total > maxBundleSize {
		return nil, fmt.Errorf("%w: its members hold more than %d MB uncompressed; a bundle is tens of kB", ErrBundle, maxBundleSize>>20)
	}
	got := map[string][]byte{}
	var members []bundleMember
	stamps := 0
	for _, f := range zr.File {
		known := f.Name == MemberMimetype || f.Name == MemberEvidence || f.Name == MemberCertificates || f.Name == MemberCheckpoint ||
			f.Name == MemberTimestamp || f.Name == MemberProof || f.Name == MemberLogKey || f.Name == bundleReadme ||
			(strings.HasPrefix(f.Name, MemberRetimestamp) && strings.HasSuffix(f.Name, ".tsr")) || isRevocationMember(f.Name)
		if !known {
			return nil, fmt.Errorf("%w: unknown member %q", ErrBundle, f.Name)
		}
		if _, dup := got[f.Name]; dup {
			return nil, fmt.Errorf("%w: member %q appears twice", ErrBundle, f.Name)
		}
		if f.UncompressedSize64 > maxBundleMemberSize {
			return nil, fmt.Errorf("%w: member %q is too large", ErrBundle, f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%w: member %q: %v", ErrBundle, f.Name, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxBundleMemberSize+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: member %q is damaged: %v", ErrBundle, f.Name, err)
		}
		got[f.Name] = b
		members = append(members, bundleMember{f.Name, b})
		if strings.HasPrefix(f.Name, MemberRetimestamp) {
			stamps++
		}
	}
	if string(got[MemberMimetype]) != BundleMediaType {
		return nil, fmt.Errorf("%w: mimetype is %q, want %q", ErrBundle, got[MemberMimetype], BundleMediaType)
	}
	for _, m := range []string{MemberEvidence, MemberCertificates, MemberCheckpoint, MemberTimestamp, MemberProof, MemberLogKey, bundleReadme} {
		if _, ok := got[m]; !ok {
			return nil, fmt.Errorf("%w: member %q is missing", ErrBundle, m)
		}
	}
	if string(got[bundleReadme]) != readme {
		return nil, fmt.Errorf("%w: member %q was changed", ErrBundle, bundleReadme)
	}
	b := &Bundle{Evidence: got[MemberEvidence], Checkpoint: got[MemberCheckpoint], Timestamp: got[MemberTimestamp]}
	key, ok := strings.CutSuffix(string(got[MemberLogKey]), "\n")
	if !ok || key == "" || strings.ContainsFunc(key, unicode.IsSpace) {
		return nil, fmt.Errorf("%w: member %q must be one line: the key and a newline", ErrBundle, MemberLogKey)
	}
	b.LogKey = key
	certs, err := pki.ParseCertsPEM(got[MemberCertificates])
	if err != nil {
		return nil, fmt.Errorf("%w: member %q: %v", ErrBundle, MemberCertificates, err)
	}
	if !bytes.Equal(pki.CertPEM(certs...), got[MemberCertificates]) {
		return nil, fmt.Errorf("%w: member %q holds more than certificates, or not in canonical PEM", ErrBundle, MemberCertificates)
	}
	b.Certificates = certs
	index, size, proof, err := ParseProof(got[MemberProof])
	if err != nil {
		return nil, fmt.Errorf("%w: member %q: %v", ErrBundle, MemberProof, err)
	}
	if !bytes.Equal(FormatProof(index, size, proof), got[MemberProof]) {
		return nil, fmt.Errorf("%w: member %q is not in canonical form", ErrBundle, MemberProof)
	}
	b.Index, b.Proof = index, proof
	_, cpSize, _, err := tlog.ParseCheckpoint(tlog.NoteBody(b.Checkpoint))
	if err != nil {
		return nil, fmt.Errorf("%w: member %q: %v", ErrBundle, MemberCheckpoint, err)
	}
	if cpSize != size {
		return nil, fmt.Errorf("%w: the inclusion proof is for a tree of size %d, the checkpoint is of size %d", ErrBundle, size, cpSize)
	}
	for i := range stamps {
		name := fmt.Sprintf("%s%d.tsr", MemberRetimestamp, i+1)
		ts, ok := got[name]
		if !ok {
			return nil, fmt.Errorf("%w: later time stamps must be numbered 1, 2, …; %q is missing", ErrBundle, name)
		}
		b.Retimestamps = append(b.Retimestamps, ts)
	}
	if b.Revocation, err = revocationFromMembers(got); err != nil {
		return nil, err
	}
	// The members in Marshal's order, then the file byte for byte.
	want := []string{MemberMimetype, MemberEvidence, MemberCertificates, MemberCheckpoint, MemberTimestamp, MemberProof, MemberLogKey}
	for i := range stamps {
		want = append(want, fmt.Sprintf("%s%d.tsr", MemberRetimestamp, i+1))
	}
	for _, m := range revocationMembers(b.Revocation) {
		want = append(want, m.name)
	}
	want = append(want, bundleReadme)
	for i, m := range members {
		if m.name != want[i] {
			return nil, fmt.Errorf("%w: member %q is out of place: member %d must be %q", ErrBundle, m.name, i+1, want[i])
		}
	}
	canon, err := packBundle(members)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBundle, err)
	}
	if !bytes.Equal(canon, data) {
		return nil, fmt.Errorf("%w: the ZIP structure is not the canonical one of its members (the file was altered or re-packed)", ErrBundle)
	}
	return b, nil
}

// Anchors are what a verifier trusts: the provider CAs (evidence signing),
// the TSA CAs, and the log's verifier keys.
type Anchors struct {
	ProviderCAs *x509.CertPool
	TSACAs      *x509.CertPool
	LogKeys     []string
	// Cache, when not nil, checks each checkpoint and time stamp once for
	// many bundles (verifycache.go).
	Cache *VerifyCache
}

// Check is one verified link of the chain.
type Check struct {
	Name   string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report is the outcome of verifying a bundle.
type Report struct {
	Checks   []Check   `json:"checks"`
	Evidence *Evidence `json:"-"`
	Valid    bool      `json:"valid"`
}

func (r *Report) add(name string, err error, okDetail string) bool {
	c := Check{Name: name, OK: err == nil, Detail: okDetail}
	if err != nil {
		c.Detail = err.Error()
	}
	r.Checks = append(r.Checks, c)
	return err == nil
}

// Names of the checks, in the order they run.
const (
	CheckContainer    = "container"
	CheckXMLSignature = "xml-signature"
	CheckCertChain    = "certificate-chain"
	CheckLogKey       = "log-key"
	CheckCheckpoint   = "checkpoint-signature"
	CheckInclusion    = "log-inclusion"
	CheckTimestamp    = "timestamp"
	CheckRetimestamp  = "retimestamp"
	CheckOriginal     = "original-digest"
)

// VerifyBundle checks every link of a bundle against the anchors: the
// container, the evidence's XML signature, the signer's certificate chain
// at signing time, the log key, the checkpoint's signature, the evidence's
// inclusion in the checkpoint, the checkpoint's time stamp (and any later
// ones), and, when original is not nil, that the original message has the
// digest the evidence states. The report is valid only when all hold.
func VerifyBundle(data []byte, anchors Anchors, original []byte) *Report {
	r := &Report{}
	b, err := ParseBundle(data)
	if !r.add(CheckContainer, err, "ZIP container with every member, nothing more") {
		return r
	}
	e, signer, err := Verify(b.Evidence)
	if err == nil && !signer.Equal(b.Certificates[0]) {
		err = errors.New("the evidence is signed with another certificate than the first of " + MemberCertificates)
	}
	if !r.add(CheckXMLSignature, err, fmt.Sprintf("evidence %s, code %s, signed by %q", idOf(e), codeOf(e), subjectOf(signer))) {
		return r
	}
	r.Evidence = e
	// Chain at signing time (the XAdES SigningTime is the event time), with
	// the certificates the bundle carries as intermediates.
	at := e.EventTime
	inter := x509.NewCertPool()
	for _, c := range b.Certificates[1:] {
		inter.AddCert(c)
	}
	chains, err := signer.Verify(x509.VerifyOptions{Roots: anchors.ProviderCAs, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if anchors.ProviderCAs == nil {
		err = errors.New("no provider CA given as trust anchor")
	}
	if err == nil {
		err = everyCertUsed(b.Certificates[1:], chains)
	}
	r.add(CheckCertChain, err, fmt.Sprintf("chains to a trusted provider CA, valid at %s", at.Format(time.RFC3339)))
	err = nil
	found := false
	for _, k := range anchors.LogKeys {
		found = found || k == b.LogKey
	}
	if !found {
		err = fmt.Errorf("the bundle's log key %q is not among the trusted log keys", b.LogKey)
	}
	keyOK := r.add(CheckLogKey, err, "the log key is a trusted one")
	var root tlog.Hash
	var size int64
	if keyOK {
		var origin string
		origin, size, root, err = anchors.Cache.openCheckpoint(b.Checkpoint, b.LogKey)
		if r.add(CheckCheckpoint, err, fmt.Sprintf("checkpoint of %q, tree size %d, signed by the log key", origin, size)) {
			entry := sha256.Sum256(b.Evidence)
			err = tlog.CheckInclusion(b.Proof, size, root, b.Index, entry[:])
			if err != nil {
				err = fmt.Errorf("the evidence is not leaf %d of the tree of size %d: %v", b.Index, size, err)
			}
			r.add(CheckInclusion, err, fmt.Sprintf("leaf %d of %d, audit path of %d hashes", b.Index, size, len(b.Proof)))
		}
	} else {
		r.add(CheckCheckpoint, errors.New("not checked: the log key is not trusted"), "")
		r.add(CheckInclusion, errors.New("not checked: the log key is not trusted"), "")
	}
	// Each time stamp is checked under the algorithm policy in force when
	// the next one was made, the last under today's (cms.Policy,
	// docs/algorithms.md): a SHA-1 time stamp of 2015 stands when it was
	// re-time-stamped with SHA-256 before SHA-1's cut-off.
	stamps := append([][]byte{b.Timestamp}, b.Retimestamps...)
	policies := stampPolicies(stamps)
	tok, err := anchors.Cache.verifyStamp(b.Timestamp, b.Checkpoint, anchors.TSACAs, policies[0])
	if err == nil && tok.Time.Before(e.EventTime.Add(-5*time.Minute)) {
		err = fmt.Errorf("the checkpoint was time-stamped at %s, before the evidence's event time %s", tok.Time.Format(time.RFC3339), e.EventTime.Format(time.RFC3339))
	}
	detail := ""
	if tok != nil {
		detail = fmt.Sprintf("checkpoint time-stamped at %s by %q", tok.Time.Format(time.RFC3339), subjectOf(tok.Signer(nil)))
	}
	var prev *tsa.Token // the last time stamp that verified
	if r.add(CheckTimestamp, err, detail) {
		prev = tok
	}
	// Later time stamps are later: each no earlier than the one before.
	for i, ts := range b.Retimestamps {
		tok, err := verifyStamp(ts, b.Checkpoint, anchors.TSACAs, policies[i+1])
		if err == nil && prev != nil && tok.Time.Before(prev.Time) {
			err = fmt.Errorf("re-time-stamped at %s, before the time stamp it follows (%s)", tok.Time.Format(time.RFC3339), prev.Time.Format(time.RFC3339))
		}
		d := ""
		if tok != nil {
			d = fmt.Sprintf("re-time-stamped at %s", tok.Time.Format(time.RFC3339))
		}
		if r.add(fmt.Sprintf("%s-%d", CheckRetimestamp, i+1), err, d) {
			prev = tok
		}
	}
	checkRevocationMembers(r, e, b.Revocation)
	if original != nil {
		r.add(CheckOriginal, CheckOriginalDigest(e, original), "the original message has the digest the evidence states")
	}
	r.Valid = true
	for _, c := range r.Checks {
		r.Valid = r.Valid && c.OK
	}
	return r
}

// everyCertUsed requires each carried intermediate to be part of a verified
// chain: a bundle carries nothing that is not checked.
func everyCertUsed(carried []*x509.Certificate, chains [][]*x509.Certificate) error {
	for _, c := range carried {
		used := false
		for _, ch := range chains {
			for _, x := range ch[1:] {
				used = used || x.Equal(c)
			}
		}
		if !used {
			return fmt.Errorf("%s carries %q, which is not part of the signer's chain", MemberCertificates, c.Subject.String())
		}
	}
	return nil
}

// stampPolicies returns the algorithm policy for each of a bundle's time
// stamps: stamp i is checked as of the time of stamp i+1 (which, made then
// with algorithms sound then, proves stamp i existed before its algorithms
// were retired: RFC 4998 §5.2), and the last one under cms.Current. A stamp
// whose successor cannot be read gets cms.Current: nothing vouches for it.
func stampPolicies(stamps [][]byte) []cms.Policy {
	ps := make([]cms.Policy, len(stamps))
	for i := range stamps {
		ps[i] = cms.Current
		if i+1 < len(stamps) {
			if next, err := tsa.ParseResponse(stamps[i+1]); err == nil {
				ps[i] = cms.AsOf(next.Time)
			}
		}
	}
	return ps
}

// verifyStamp checks a time-stamp response over checkpoint: the token's
// signature and TSA against roots under policy p (tsa.Token.VerifyDataWith),
// and that nothing outside the TSA's signature could have been changed
// (checkStampStructure).
func verifyStamp(resp, checkpoint []byte, roots *x509.CertPool, p cms.Policy) (*tsa.Token, error) {
	tok, err := tsa.ParseResponse(resp)
	if err != nil {
		return nil, err
	}
	if roots == nil {
		return tok, errors.New("no TSA CA given as trust anchor")
	}
	if err := tok.VerifyDataWith(checkpoint, roots, nil, p); err != nil {
		return tok, err
	}
	return tok, checkStampStructure(resp, tok, roots)
}

// canonicalStampResponse returns a time-stamp response as bundles carry it:
// a TimeStampResp whose PKIStatusInfo is granted (0) and nothing more, around
// the token as the TSA signed it. The status text and a grantedWithMods
// status of the TSA's reply are not signed: a bundle leaves them out rather
// than carry bytes that could be changed unnoticed.
func canonicalStampResponse(resp []byte) ([]byte, error) {
	tok, err := tsa.ParseResponse(resp)
	if err != nil {
		return nil, err
	}
	return grantedResponse(tok.Raw)
}

func grantedResponse(token []byte) ([]byte, error) {
	return asn1.Marshal(struct {
		Status struct{ Status int }
		Token  asn1.RawValue
	}{Token: asn1.RawValue{FullBytes: token}})
}

var oidRSASSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}

// checkStampStructure requires the parts of a verified time-stamp response
// that no signature covers to hold the one value they may have, so that a
// changed byte anywhere in a bundle's .tsr member is caught:
//
//   - the response is canonicalStampResponse's: status granted, nothing else;
//   - the token is DER, byte for byte the encoding of its parsed fields
//     (cms.SignedData.CheckDER);
//   - SignedData version 3 (RFC 5652 §5.1: eContentType is not id-data) and
//     its digestAlgorithms the signer's digest algorithm alone;
//   - no CRLs and no unsigned attributes, which nothing would check;
//   - SignerInfo version 1 with issuerAndSerialNumber, 3 with a key
//     identifier (RFC 5652 §5.3);
//   - algorithm parameters absent or NULL (RSASSA-PSS aside);
//   - every certificate carried is the TSA's or part of its verified chain.
func checkStampStructure(resp []byte, tok *tsa.Token, roots *x509.CertPool) error {
	canon, err := grantedResponse(tok.Raw)
	if err != nil || !bytes.Equal(canon, resp) {
		return errors.New("the time-stamp response is not in canonical form: status granted and nothing besides the token")
	}
	// The token as read by the one CMS model (cms.SignedData).
	sd := tok.SignedData()
	if err := sd.CheckDER(); err != nil {
		return fmt.Errorf("the time-stamp token is not in DER: it differs from the encoding of its own fields (%v)", err)
	}
	if sd.Version != 3 {
		return fmt.Errorf("the time-stamp token's SignedData has version %d, want 3 (RFC 5652 §5.1)", sd.Version)
	}
	if len(sd.Signers) != 1 {
		return fmt.Errorf("the time-stamp token has %d signers, want 1", len(sd.Signers))
	}
	si := sd.Signers[0]
	if len(sd.DigestAlgorithms) != 1 || !sd.DigestAlgorithms[0].Algorithm.Equal(si.DigestAlgorithm.Algorithm) ||
		!nullOrAbsent(sd.DigestAlgorithms[0]) || !nullOrAbsent(si.DigestAlgorithm) {
		return errors.New("the time-stamp token's digestAlgorithms must be the signer's digest algorithm alone, without parameters")
	}
	if len(sd.CRLs) > 0 || len(si.UnsignedAttrs.FullBytes) > 0 {
		return errors.New("the time-stamp token carries CRLs or unsigned attributes, which no signature covers")
	}
	want := 1
	if si.SID.Class == asn1.ClassContextSpecific {
		want = 3
	}
	if si.Version != want {
		return fmt.Errorf("the time-stamp token's SignerInfo has version %d, want %d (RFC 5652 §5.3)", si.Version, want)
	}
	if !si.SignatureAlgorithm.Algorithm.Equal(oidRSASSAPSS) && !nullOrAbsent(si.SignatureAlgorithm) {
		return errors.New("the time-stamp token's signature algorithm has parameters")
	}
	signer := tok.Signer(nil)
	if signer == nil {
		return errors.New("the time-stamp token does not carry its signer's certificate")
	}
	var others []*x509.Certificate
	for _, c := range tok.Certificates {
		if !c.Equal(signer) {
			others = append(others, c)
		}
	}
	if len(others) == 0 {
		return nil // the TSA's certificate alone, pinned by its ESS attribute
	}
	inter := x509.NewCertPool()
	for _, c := range others {
		inter.AddCert(c)
	}
	chains, err := signer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: tok.Time,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}})
	if err != nil {
		return err
	}
	for _, c := range others {
		used := false
		for _, ch := range chains {
			for _, x := range ch {
				used = used || x.Equal(c)
			}
		}
		if !used {
			return fmt.Errorf("the time-stamp token carries %q, which is not part of the TSA's chain", c.Subject.String())
		}
	}
	return nil
}

// nullOrAbsent reports whether an AlgorithmIdentifier has no parameters or
// NULL (RFC 5754 §2 allows both for SHA-2).
func nullOrAbsent(a pkix.AlgorithmIdentifier) bool {
	p := a.Parameters.FullBytes
	return len(p) == 0 || bytes.Equal(p, []byte{asn1.TagNull, 0})
}

// CheckOriginalDigest checks that original has the digest an evidence
// states for its message, with the algorithm the evidence names
// (ds:DigestMethod; an evidence never leaves it implicit) if the algorithm
// policy accepts it (cms.Policy: a message digest is a signed statement of
// what was sent).
func CheckOriginalDigest(e *Evidence, original []byte) error {
	alg := e.Message.DigestAlgorithm
	if alg == "" {
		alg = DigestSHA256
	}
	h, ok := messageDigests[alg]
	if !ok {
		return fmt.Errorf("digest algorithm %s is not supported", alg)
	}
	if err := cms.AsOf(e.EventTime).CheckDigest(h); err != nil {
		return fmt.Errorf("digest algorithm %s: %v", alg, err)
	}
	if len(e.Message.Digest) == 0 {
		return errors.New("the evidence states no message digest")
	}
	hh := h.New()
	hh.Write(original)
	if sum := hh.Sum(nil); !bytes.Equal(sum, e.Message.Digest) {
		return fmt.Errorf("the original's %s is %x, the evidence states %x", cms.DigestName(h), sum[:8], e.Message.Digest[:min(8, len(e.Message.Digest))])
	}
	return nil
}

// messageDigests maps the digest URIs an evidence may name to their hash.
var messageDigests = map[string]crypto.Hash{DigestSHA256: crypto.SHA256, DigestSHA384: crypto.SHA384, DigestSHA512: crypto.SHA512}

func idOf(e *Evidence) string {
	if e == nil {
		return "?"
	}
	return e.ID
}

func codeOf(e *Evidence) string {
	if e == nil {
		return "?"
	}
	return e.Code.String()
}

func subjectOf(c *x509.Certificate) string {
	if c == nil {
		return "?"
	}
	return c.Subject.String()
}

// ErrNotYetCheckpointed is returned while no checkpoint covers an evidence
// (checkpoints follow within seconds).
var ErrNotYetCheckpointed = errors.New("evidence: no checkpoint covers this evidence yet; try again in a few seconds")

// Assemble gathers the bundle of the evidence at leaf index seq from the
// store: the evidence, a checkpoint that covers it with its time stamps,
// and the inclusion proof in that checkpoint. The signer's certificate is
// taken from the evidence itself (so bundles of evidence signed before a
// certificate change still verify); intermediates lists the certificates
// that may stand between it and its root (not the root: the verifier
// brings it); those that do not issue it are left out.
//
// With latest false the checkpoint is the first that covers the evidence,
// with its first time stamp only: the same evidence always yields the same
// bundle (the Delil folder relies on it). With latest true it is the newest
// checkpoint, carrying every later time stamp (`kep log retimestamp`): the
// bundle to archive for the long term, kept beside the first (whose time
// stamp is the one closest to the event).
//
// logKey is the log's key set (tlog.SplitKeys: after a rotation the
// current key and the retired ones); the bundle carries the one key that
// signed its checkpoint.
func Assemble(ctx context.Context, q store.Querier, seq int64, intermediates []*x509.Certificate, logKey string, latest bool) (*Bundle, error) {
	st, err := GetSeq(ctx, q, seq)
	if err != nil {
		return nil, err
	}
	signer, err := signerOf(st.Document)
	if err != nil {
		return nil, fmt.Errorf("evidence %d: %w", seq, err)
	}
	chain := []*x509.Certificate{signer}
	for cur := signer; ; {
		var next *x509.Certificate
		for _, c := range intermediates {
			if !c.Equal(cur) && bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil || bytes.Equal(next.RawIssuer, next.RawSubject) || len(chain) > 8 {
			break
		}
		chain = append(chain, next)
		cur = next
	}
	var cp *tlog.Checkpoint
	if latest {
		cp, err = tlog.LatestCheckpoint(ctx, q)
		if err == nil && cp.Size <= seq {
			err = store.ErrNotFound
		}
	} else {
		cp, err = tlog.CoveringCheckpoint(ctx, q, seq)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotYetCheckpointed
	}
	if err != nil {
		return nil, err
	}
	if logKey, err = tlog.KeyFor(cp.Note, logKey); err != nil {
		return nil, fmt.Errorf("checkpoint %d: %w", cp.Size, err)
	}
	proof, err := tlog.ProveInclusion(ctx, q, seq, cp.Size)
	if err != nil {
		return nil, err
	}
	var stamps [][]byte
	if latest {
		if stamps, err = tlog.Stamps(ctx, q, cp.Size); err != nil {
			return nil, err
		}
	}
	rev, err := revocationData(ctx, q, st.Document)
	if err != nil {
		return nil, fmt.Errorf("evidence %d: %w", seq, err)
	}
	return &Bundle{Evidence: st.Document, Certificates: chain, Checkpoint: cp.Note, Timestamp: cp.TST, Index: seq, Proof: proof,
		LogKey: logKey, Retimestamps: stamps, Revocation: rev}, nil
}

// signerOf reads the signer's certificate from a signed evidence document's
// KeyInfo (the document's integrity is the log's and the verifier's job).
func signerOf(doc []byte) (*x509.Certificate, error) {
	const open, close = "<ds:X509Certificate>", "</ds:X509Certificate>"
	i := bytes.Index(doc, []byte(open))
	j := bytes.Index(doc, []byte(close))
	if i < 0 || j < i {
		return nil, errors.New("the evidence carries no signer certificate")
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(doc[i+len(open):j])), ""))
	if err != nil {
		return nil, fmt.Errorf("the evidence's signer certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}
