package evidence

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	sumtlog "golang.org/x/mod/sumdb/tlog"

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

// fixedTime is the modification time written for every member, so that the
// same bundle is byte-identical whenever it is made.
var fixedTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Marshal writes the bundle as a ZIP file. The output is deterministic.
func (b *Bundle) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, method uint16, data []byte) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: fixedTime})
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	_, size, _, err := tlog.ParseCheckpoint(tlog.NoteBody(b.Checkpoint))
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	members := []struct {
		name string
		data []byte
	}{
		{MemberEvidence, b.Evidence},
		{MemberCertificates, pki.CertPEM(b.Certificates...)},
		{MemberCheckpoint, b.Checkpoint},
		{MemberTimestamp, b.Timestamp},
		{MemberProof, FormatProof(b.Index, size, b.Proof)},
		{MemberLogKey, []byte(b.LogKey + "\n")},
	}
	for i, ts := range b.Retimestamps {
		members = append(members, struct {
			name string
			data []byte
		}{fmt.Sprintf("%s%d.tsr", MemberRetimestamp, i+1), ts})
	}
	if err := add(MemberMimetype, zip.Store, []byte(BundleMediaType)); err != nil {
		return nil, err
	}
	for _, m := range members {
		if err := add(m.name, zip.Deflate, m.data); err != nil {
			return nil, err
		}
	}
	if err := add(bundleReadme, zip.Deflate, []byte(readme)); err != nil {
		return nil, err
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

// ParseBundle reads a bundle and checks its container: the mimetype member
// first, stored; every required member present once; nothing unknown.
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
	got := map[string][]byte{}
	var stamps []string
	for _, f := range zr.File {
		known := f.Name == MemberMimetype || f.Name == MemberEvidence || f.Name == MemberCertificates || f.Name == MemberCheckpoint ||
			f.Name == MemberTimestamp || f.Name == MemberProof || f.Name == MemberLogKey || f.Name == bundleReadme ||
			(strings.HasPrefix(f.Name, MemberRetimestamp) && strings.HasSuffix(f.Name, ".tsr"))
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
		if strings.HasPrefix(f.Name, MemberRetimestamp) {
			stamps = append(stamps, f.Name)
		}
	}
	if string(got[MemberMimetype]) != BundleMediaType {
		return nil, fmt.Errorf("%w: mimetype is %q, want %q", ErrBundle, got[MemberMimetype], BundleMediaType)
	}
	for _, m := range []string{MemberEvidence, MemberCertificates, MemberCheckpoint, MemberTimestamp, MemberProof, MemberLogKey} {
		if _, ok := got[m]; !ok {
			return nil, fmt.Errorf("%w: member %q is missing", ErrBundle, m)
		}
	}
	if r, ok := got[bundleReadme]; ok && string(r) != readme {
		return nil, fmt.Errorf("%w: member %q was changed", ErrBundle, bundleReadme)
	}
	b := &Bundle{Evidence: got[MemberEvidence], Checkpoint: got[MemberCheckpoint], Timestamp: got[MemberTimestamp],
		LogKey: strings.TrimSpace(string(got[MemberLogKey]))}
	if strings.Count(string(got[MemberLogKey]), "\n") != 1 || !strings.HasSuffix(string(got[MemberLogKey]), "\n") {
		return nil, fmt.Errorf("%w: member %q must be one line", ErrBundle, MemberLogKey)
	}
	certs, err := pki.ParseCertsPEM(got[MemberCertificates])
	if err != nil {
		return nil, fmt.Errorf("%w: member %q: %v", ErrBundle, MemberCertificates, err)
	}
	if !bytes.Equal(pki.CertPEM(certs...), got[MemberCertificates]) {
		return nil, fmt.Errorf("%w: member %q holds more than certificates", ErrBundle, MemberCertificates)
	}
	b.Certificates = certs
	index, size, proof, err := ParseProof(got[MemberProof])
	if err != nil {
		return nil, fmt.Errorf("%w: member %q: %v", ErrBundle, MemberProof, err)
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
	return b, nil
}

// Anchors are what a verifier trusts: the provider CAs (evidence signing),
// the TSA CAs, and the log's verifier keys.
type Anchors struct {
	ProviderCAs *x509.CertPool
	TSACAs      *x509.CertPool
	LogKeys     []string
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
		origin, size, root, err = tlog.OpenCheckpoint(b.Checkpoint, b.LogKey)
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
	tok, err := verifyStamp(b.Timestamp, b.Checkpoint, anchors.TSACAs)
	if err == nil && tok.Time.Before(e.EventTime.Add(-5*time.Minute)) {
		err = fmt.Errorf("the checkpoint was time-stamped at %s, before the evidence's event time %s", tok.Time.Format(time.RFC3339), e.EventTime.Format(time.RFC3339))
	}
	detail := ""
	if tok != nil {
		detail = fmt.Sprintf("checkpoint time-stamped at %s by %q", tok.Time.Format(time.RFC3339), subjectOf(tok.Signer(nil)))
	}
	r.add(CheckTimestamp, err, detail)
	for i, ts := range b.Retimestamps {
		tok, err := verifyStamp(ts, b.Checkpoint, anchors.TSACAs)
		d := ""
		if tok != nil {
			d = fmt.Sprintf("re-time-stamped at %s", tok.Time.Format(time.RFC3339))
		}
		r.add(fmt.Sprintf("%s-%d", CheckRetimestamp, i+1), err, d)
	}
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

func verifyStamp(resp, checkpoint []byte, roots *x509.CertPool) (*tsa.Token, error) {
	tok, err := tsa.ParseResponse(resp)
	if err != nil {
		return nil, err
	}
	if roots == nil {
		return tok, errors.New("no TSA CA given as trust anchor")
	}
	return tok, tok.VerifyData(checkpoint, roots, nil)
}

// CheckOriginalDigest checks that original has the digest an evidence
// states for its message.
func CheckOriginalDigest(e *Evidence, original []byte) error {
	alg := e.Message.DigestAlgorithm
	if alg == "" {
		alg = DigestSHA256
	}
	if alg != DigestSHA256 {
		return fmt.Errorf("digest algorithm %s is not supported", alg)
	}
	if len(e.Message.Digest) == 0 {
		return errors.New("the evidence states no message digest")
	}
	sum := sha256.Sum256(original)
	if !bytes.Equal(sum[:], e.Message.Digest) {
		return fmt.Errorf("the original's SHA-256 is %x, the evidence states %x", sum[:8], e.Message.Digest[:min(8, len(e.Message.Digest))])
	}
	return nil
}

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
// store: the evidence, the first checkpoint that covers it with its time
// stamps, and the inclusion proof in that checkpoint. chain is the provider's
// signing certificate and its intermediates (not the root); logKey its log
// verifier key. The same evidence always yields the same bundle.
func Assemble(ctx context.Context, q store.Querier, seq int64, chain []*x509.Certificate, logKey string) (*Bundle, error) {
	st, err := GetSeq(ctx, q, seq)
	if err != nil {
		return nil, err
	}
	cp, err := tlog.CoveringCheckpoint(ctx, q, seq)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotYetCheckpointed
	}
	if err != nil {
		return nil, err
	}
	proof, err := tlog.ProveInclusion(ctx, q, seq, cp.Size)
	if err != nil {
		return nil, err
	}
	stamps, err := tlog.Stamps(ctx, q, cp.Size)
	if err != nil {
		return nil, err
	}
	return &Bundle{Evidence: st.Document, Certificates: chain, Checkpoint: cp.Note, Timestamp: cp.TST, Index: seq, Proof: proof,
		LogKey: logKey, Retimestamps: stamps}, nil
}
