package evidence_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/pki"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

// bundleFixture is a provider with two messages and three bundles made by
// the node: A is the acceptance (10) of the first message, covered by the
// first checkpoint; B is the delivery (40) of the second message, covered
// by the second checkpoint, which was time-stamped again afterwards, so B
// carries META-INF/retimestamp-1.tsr. Bundles A and B differ in every
// member that can differ, so each member of one can be swapped in for the
// other's.
type bundleFixture struct {
	w          *providertest.World
	anchors    evidence.Anchors
	a, b       []byte
	seqA, seqB int64
	origA      []byte // the first message's original
	origB      []byte // the second message's
}

func newBundleFixture(t testing.TB, d store.Dialect) *bundleFixture {
	t.Helper()
	ctx := context.Background()
	w := providertest.New(t, d)
	f := &bundleFixture{w: w, anchors: testAnchors(t, w)}
	checkpoint := func() {
		if _, err := w.Node.Checkpointer.Catchup(ctx, w.Node.Log.Size()); err != nil {
			t.Fatal(err)
		}
	}
	f.origA = originalMessage("Ödeme emri: 1.000 TL.")
	acc := issueEvidence(t, w, evidence.Accepted, f.origA, "")
	f.seqA = acc.Seq
	issueEvidence(t, w, evidence.Delivered, f.origA, acc.Evidence.ID)
	checkpoint()
	w.Clock.Advance(time.Minute)
	f.origB = originalMessage("İhtarname.")
	acc = issueEvidence(t, w, evidence.Accepted, f.origB, "")
	f.seqB = issueEvidence(t, w, evidence.Delivered, f.origB, acc.Evidence.ID).Seq
	w.Clock.Advance(time.Minute)
	checkpoint()
	w.Clock.Advance(time.Hour)
	if _, _, err := w.Node.Checkpointer.Retimestamp(ctx); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.a, err = w.Node.Bundle(ctx, f.seqA); err != nil {
		t.Fatal(err)
	}
	if f.b, err = w.Node.ArchiveBundle(ctx, f.seqB); err != nil {
		t.Fatal(err)
	}
	return f
}

// originalMessage is a submitted original message.
func originalMessage(body string) []byte {
	return fmt.Appendf(nil, "From: ayse.yilmaz@hs01.kep.tr\r\nTo: mehmet.ozturk@hs01.kep.tr\r\nSubject: Deneme\r\nMessage-ID: <%d@client>\r\nX-TR-REM-iletiTip: standart\r\n\r\n%s\r\n",
		time.Now().UnixNano(), body)
}

// issueEvidence has the node issue an evidence about original: the
// acceptance (10) of the message, or its delivery (40) following related.
func issueEvidence(t testing.TB, w *providertest.World, code evidence.Code, original []byte, related string) *evidence.Record {
	t.Helper()
	now := w.Clock.Now()
	sum := sha256.Sum256(original)
	e := &evidence.Evidence{Code: code, SubmissionTime: now, RelatedEvidence: related,
		Sender:     evidence.Party{Address: "ayse.yilmaz@hs01.kep.tr", Identity: "TCKN:10000000146", Name: "Ayşe Yılmaz"},
		Recipients: []evidence.Party{{Address: "mehmet.ozturk@hs01.kep.tr", Identity: "TCKN:10000000078", Name: "Mehmet Öztürk"}},
		Message: evidence.Message{MessageID: "<1@client>", IletiID: "ileti-" + evidence.NewID(), IletiTip: evidence.IletiTipStandart,
			DigestAlgorithm: evidence.DigestSHA256, Digest: sum[:], Size: int64(len(original))}}
	if code == evidence.Accepted {
		e.SenderAuthentication = evidence.Authentication{Method: evidence.AuthSMTPCMS, Time: now}
	}
	rec := &evidence.Record{Evidence: e}
	if err := w.Node.Issuer.Issue(context.Background(), []*evidence.Record{rec}, nil); err != nil {
		t.Fatal(err)
	}
	return rec
}

// testAnchors are what a verifier of w's bundles trusts: the provider CA,
// the TSA CA and the log key.
func testAnchors(t testing.TB, w *providertest.World) evidence.Anchors {
	t.Helper()
	provCA, err := pki.LoadCertsPEM(w.Node.Config.Path("keys/provider-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(provCA[0])
	return evidence.Anchors{ProviderCAs: pool, TSACAs: w.Node.TSARoots, LogKeys: []string{w.Node.LogKey}}
}

// member is one member of a bundle's ZIP file.
type member struct {
	name string
	data []byte
}

func unpack(t testing.TB, data []byte) []member {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []member
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{f.Name, b})
	}
	return out
}

// pack writes members as the canonical bundle container does (every member
// stored, fixed header fields), so that an altered member reaches the check
// of its content instead of failing the container check.
// TestBundleRepack makes sure it reproduces the node's bundles exactly.
func pack(t testing.TB, ms []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range ms {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: m.name, Method: zip.Store, CreatorVersion: 20, ReaderVersion: 20,
			ModifiedDate: (2020-1980)<<9 | 1<<5 | 1, CRC32: crc32.ChecksumIEEE(m.data),
			CompressedSize64: uint64(len(m.data)), UncompressedSize64: uint64(len(m.data))})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(m.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// replace returns ms with member name's content set to data.
func replace(ms []member, name string, data []byte) []member {
	out := slices.Clone(ms)
	for i := range out {
		if out[i].name == name {
			out[i].data = data
		}
	}
	return out
}

func find(ms []member, name string) []byte {
	for _, m := range ms {
		if m.name == name {
			return m.data
		}
	}
	return nil
}

// firstFailure returns the name of the first failed check, or "" when the
// bundle verified.
func firstFailure(r *evidence.Report) string {
	for _, c := range r.Checks {
		if !c.OK {
			return c.Name
		}
	}
	if !r.Valid {
		return "(invalid with no failed check)"
	}
	return ""
}

func failed(r *evidence.Report) []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

// positions are the byte offsets of an n-byte member to alter: all of them
// up to 4 KB, otherwise the first and last 512 and about 1,000 spread
// between (in -short mode a quarter as many; with KEP_FLIP_ALL=1, all).
func positions(n int) []int {
	limit, edge, spread := 4096, 512, 1024
	if os.Getenv("KEP_FLIP_ALL") == "1" {
		limit = n
	} else if testing.Short() {
		limit, edge, spread = 1024, 128, 256
	}
	if n <= limit {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	seen := map[int]bool{}
	var out []int
	add := func(i int) {
		if i >= 0 && i < n && !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	for i := range edge {
		add(i)
		add(n - 1 - i)
	}
	step := max(1, (n-2*edge)/spread)
	for i := edge; i < n-edge; i += step {
		add(i + i%7) // not always the same phase
	}
	sort.Ints(out)
	return out
}

// flipMasks are XORed in turn into each byte altered: the lowest bit (a
// neighbouring character: the base64 padding bits, a digit, a letter's
// neighbour), the top bit (invalid UTF-8, a negative DER integer) and every
// bit.
var flipMasks = []byte{0x01, 0x80, 0xff}

// memberChecks names, for each member, the checks that may be the first to
// fail when its content changes.
var memberChecks = map[string][]string{
	evidence.MemberMimetype:      {evidence.CheckContainer},
	evidence.MemberEvidence:      {evidence.CheckXMLSignature, evidence.CheckInclusion},
	evidence.MemberCertificates:  {evidence.CheckContainer, evidence.CheckXMLSignature, evidence.CheckCertChain},
	evidence.MemberCheckpoint:    {evidence.CheckContainer, evidence.CheckCheckpoint},
	evidence.MemberTimestamp:     {evidence.CheckTimestamp},
	evidence.MemberProof:         {evidence.CheckContainer, evidence.CheckInclusion},
	evidence.MemberLogKey:        {evidence.CheckContainer, evidence.CheckLogKey},
	"META-INF/retimestamp-1.tsr": {evidence.CheckRetimestamp + "-1"},
	"README.txt":                 {evidence.CheckContainer},
}

// alteration is one altered bundle and the checks allowed to catch it.
// When note is the first check to fail, verifyAll lists the alteration.
type alteration struct {
	what  string
	data  []byte
	allow []string
	note  string
}

// verifyAll verifies alterations on every core and returns, per label, how
// often each check was the first to fail. Each alteration must be refused,
// by one of its allowed checks.
func verifyAll(t *testing.T, anchors evidence.Anchors, alts []alteration, label func(alteration) string) (stats map[string]map[string]int, noted []string) {
	t.Helper()
	var mu sync.Mutex
	stats = map[string]map[string]int{}
	var bad []string
	work := make(chan alteration)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				r := evidence.VerifyBundle(a.data, anchors, nil)
				first := firstFailure(r)
				mu.Lock()
				switch {
				case r.Valid || first == "":
					bad = append(bad, fmt.Sprintf("%s: NOT DETECTED", a.what))
				case !slices.Contains(a.allow, first):
					bad = append(bad, fmt.Sprintf("%s: first failed check %q (%s), want one of %v", a.what, first, detailOf(r, first), a.allow))
				}
				if a.note != "" && first == a.note {
					noted = append(noted, a.what)
				}
				l := label(a)
				if stats[l] == nil {
					stats[l] = map[string]int{}
				}
				stats[l][first]++
				mu.Unlock()
			}
		}()
	}
	for _, a := range alts {
		work <- a
	}
	close(work)
	wg.Wait()
	sort.Strings(bad)
	for i, b := range bad {
		if i == 40 {
			t.Errorf("… and %d more", len(bad)-40)
			break
		}
		t.Error(b)
	}
	sort.Strings(noted)
	return stats, noted
}

func detailOf(r *evidence.Report, name string) string {
	for _, c := range r.Checks {
		if c.Name == name {
			return c.Detail
		}
	}
	return ""
}

func logStats(t *testing.T, title string, stats map[string]map[string]int) {
	var keys []string
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var parts []string
		total := 0
		for c, n := range stats[k] {
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
			total += n
		}
		sort.Strings(parts)
		t.Logf("%s %s: %d alterations, first failed check: %s", title, k, total, strings.Join(parts, ", "))
	}
}

func TestBundleAlterations(t *testing.T) {
	providertest.Each(t, func(t *testing.T, w *providertest.World) {
		f := newBundleFixture(t, w.Node.DB.Dialect)
		ctx := context.Background()
		for name, data := range map[string][]byte{"A": f.a, "B": f.b} {
			if r := evidence.VerifyBundle(data, f.anchors, nil); !r.Valid {
				t.Fatalf("bundle %s does not verify: %+v", name, r.Checks)
			}
		}
		if r := evidence.VerifyBundle(f.a, f.anchors, f.origA); !r.Valid {
			t.Fatalf("bundle A with its original: %+v", r.Checks)
		}
		if r := evidence.VerifyBundle(f.a, f.anchors, f.origB); r.Valid || firstFailure(r) != evidence.CheckOriginal {
			t.Fatalf("bundle A with another original: %+v", r.Checks)
		}
		ma, mb := unpack(t, f.a), unpack(t, f.b)
		if find(mb, "META-INF/retimestamp-1.tsr") == nil || find(ma, "META-INF/retimestamp-1.tsr") != nil {
			t.Fatal("want a later time stamp in bundle B only")
		}

		// Each byte of each member's content flipped in turn.
		t.Run("member bytes", func(t *testing.T) {
			var alts []alteration
			for _, bundle := range []struct {
				name string
				ms   []member
			}{{"A", ma}, {"B", mb}} {
				for _, m := range bundle.ms {
					allow := memberChecks[m.name]
					if allow == nil {
						t.Fatalf("no expected checks for member %q", m.name)
					}
					for _, i := range positions(len(m.data)) {
						for _, mask := range flipMasks {
							d := slices.Clone(m.data)
							d[i] ^= mask
							a := alteration{what: fmt.Sprintf("bundle %s, %s byte %d ^ %#02x (%q → %q)", bundle.name, m.name, i, mask, m.data[i:i+1], d[i:i+1]),
								data: pack(t, replace(bundle.ms, m.name, d)), allow: allow}
							if m.name == evidence.MemberEvidence {
								a.note = evidence.CheckInclusion
							}
							alts = append(alts, a)
						}
					}
				}
			}
			stats, noted := verifyAll(t, f.anchors, alts, func(a alteration) string { return strings.Fields(a.what)[2] })
			logStats(t, "member", stats)
			// Changes to evidence.xml that leave its canonical form as it was
			// (a redundant namespace declaration renamed, which exclusive
			// C14N drops) pass the XML signature; the log entry, the SHA-256
			// of the exact bytes, catches them.
			for _, n := range noted {
				t.Logf("caught by the log entry alone: %s", n)
			}
		})

		// Each byte of the ZIP file itself, and every truncation.
		t.Run("file bytes", func(t *testing.T) {
			var alts []alteration
			for _, bundle := range []struct {
				name string
				data []byte
			}{{"A", f.a}, {"B", f.b}} {
				for _, i := range positions(len(bundle.data)) {
					for _, mask := range flipMasks {
						d := slices.Clone(bundle.data)
						d[i] ^= mask
						alts = append(alts, alteration{what: fmt.Sprintf("bundle %s byte %d ^ %#02x", bundle.name, i, mask), data: d, allow: []string{evidence.CheckContainer}})
					}
				}
				for n := range len(bundle.data) {
					alts = append(alts, alteration{what: fmt.Sprintf("bundle %s truncated to %d bytes", bundle.name, n), data: bundle.data[:n], allow: []string{evidence.CheckContainer}})
				}
				alts = append(alts,
					alteration{what: "bundle " + bundle.name + " with a byte appended", data: append(slices.Clone(bundle.data), 0), allow: []string{evidence.CheckContainer}},
					alteration{what: "bundle " + bundle.name + " with a byte prepended", data: append([]byte{0}, bundle.data...), allow: []string{evidence.CheckContainer}})
			}
			stats, _ := verifyAll(t, f.anchors, alts, func(a alteration) string {
				if strings.Contains(a.what, "truncated") {
					return "truncated"
				}
				return "flipped"
			})
			logStats(t, "file", stats)
		})

		// Members removed, added, duplicated, reordered, or swapped from
		// the other bundle.
		t.Run("members", func(t *testing.T) {
			var alts []alteration
			container := []string{evidence.CheckContainer}
			for _, bundle := range []struct {
				name      string
				ms, other []member
			}{{"A", ma, mb}, {"B", mb, ma}} {
				for i, m := range bundle.ms {
					if m.name != "META-INF/retimestamp-1.tsr" { // a later time stamp is optional: see below
						alts = append(alts, alteration{what: bundle.name + " without " + m.name, data: pack(t, slices.Delete(slices.Clone(bundle.ms), i, i+1)), allow: container})
					}
					dup := slices.Insert(slices.Clone(bundle.ms), i+1, m)
					alts = append(alts, alteration{what: bundle.name + " with " + m.name + " twice", data: pack(t, dup), allow: container})
					if i > 0 {
						swapped := slices.Clone(bundle.ms)
						swapped[i-1], swapped[i] = swapped[i], swapped[i-1]
						alts = append(alts, alteration{what: bundle.name + " with " + m.name + " moved up", data: pack(t, swapped), allow: container})
					}
					// The same member from the other bundle, when it differs.
					if o := find(bundle.other, m.name); o != nil && !bytes.Equal(o, m.data) {
						allow := memberChecks[m.name]
						if m.name == evidence.MemberProof || m.name == evidence.MemberCheckpoint {
							allow = container // the proof's tree size is not the checkpoint's
						}
						alts = append(alts, alteration{what: bundle.name + " with " + m.name + " of the other bundle", data: pack(t, replace(bundle.ms, m.name, o)), allow: allow})
					}
				}
				for _, name := range []string{"META-INF/extra.txt", "evidence.xml.sig", "META-INF/retimestamp-0.tsr", "META-INF/retimestamp-2.tsr", "mimetype2"} {
					for _, at := range []int{1, len(bundle.ms) - 1, len(bundle.ms)} {
						added := slices.Insert(slices.Clone(bundle.ms), at, member{name, []byte("x")})
						allow := container
						if name == "META-INF/retimestamp-2.tsr" && bundle.name == "B" && at == len(bundle.ms)-1 {
							// In its place after retimestamp-1.tsr: a damaged later time stamp.
							allow = []string{evidence.CheckRetimestamp + "-2"}
						}
						alts = append(alts, alteration{what: fmt.Sprintf("%s with %s added at %d", bundle.name, name, at), data: pack(t, added), allow: allow})
					}
				}
				alts = append(alts, alteration{what: bundle.name + " with an empty member", data: pack(t, append(slices.Clone(bundle.ms), member{"META-INF/", nil})), allow: container})
			}
			// B's later time stamp added to A: it time-stamps another checkpoint.
			withStamp := slices.Insert(slices.Clone(ma), len(ma)-1, member{"META-INF/retimestamp-1.tsr", find(mb, "META-INF/retimestamp-1.tsr")})
			alts = append(alts, alteration{what: "A with B's later time stamp", data: pack(t, withStamp), allow: []string{evidence.CheckRetimestamp + "-1"}})
			// A's time stamp as B's later one: it time-stamps another checkpoint.
			alts = append(alts, alteration{what: "B with A's time stamp as its later one",
				data: pack(t, replace(mb, "META-INF/retimestamp-1.tsr", find(ma, evidence.MemberTimestamp))), allow: []string{evidence.CheckRetimestamp + "-1"}})
			// B's two time stamps swapped: both time-stamp B's checkpoint, but
			// the later one must not be earlier than the first.
			swapped := replace(replace(mb, evidence.MemberTimestamp, find(mb, "META-INF/retimestamp-1.tsr")), "META-INF/retimestamp-1.tsr", find(mb, evidence.MemberTimestamp))
			alts = append(alts, alteration{what: "B with its time stamps swapped", data: pack(t, swapped), allow: []string{evidence.CheckRetimestamp + "-1"}})
			verifyAll(t, f.anchors, alts, func(a alteration) string { return "" })

			// Without its later time stamp, B is the bundle as it was before
			// the checkpoint was re-time-stamped: later time stamps are
			// additions that no signature counts, so removing one leaves a
			// bundle that is valid, and complete for as long as the first
			// time stamp's TSA certificate can be checked.
			stripped := pack(t, slices.DeleteFunc(slices.Clone(mb), func(m member) bool { return m.name == "META-INF/retimestamp-1.tsr" }))
			if r := evidence.VerifyBundle(stripped, f.anchors, nil); !r.Valid {
				t.Fatalf("B without its later time stamp: %+v", r.Checks)
			}
		})

		// An inclusion proof for another tree size, or another leaf.
		t.Run("proofs", func(t *testing.T) {
			b, err := evidence.ParseBundle(f.a)
			if err != nil {
				t.Fatal(err)
			}
			_, size, _, err := tlog.ParseCheckpoint(tlog.NoteBody(b.Checkpoint))
			if err != nil {
				t.Fatal(err)
			}
			n := w2size(t, f)
			var alts []alteration
			for other := int64(1); other <= n; other++ {
				if other == size || f.seqA >= other {
					continue
				}
				p, err := tlog.ProveInclusion(ctx, f.w.Q(), f.seqA, other)
				if err != nil {
					t.Fatal(err)
				}
				// Stated as the proof of its real size: the container
				// refuses a proof for another tree than the checkpoint's.
				alts = append(alts, alteration{what: fmt.Sprintf("proof for size %d", other),
					data: pack(t, replace(ma, evidence.MemberProof, evidence.FormatProof(f.seqA, other, p))), allow: []string{evidence.CheckContainer}})
				// Stated as a proof for the checkpoint's size: it does not
				// lead to the checkpoint's root.
				alts = append(alts, alteration{what: fmt.Sprintf("proof for size %d labelled %d", other, size),
					data: pack(t, replace(ma, evidence.MemberProof, evidence.FormatProof(f.seqA, size, p))), allow: []string{evidence.CheckInclusion}})
			}
			for leaf := range size {
				if leaf == f.seqA {
					continue
				}
				p, err := tlog.ProveInclusion(ctx, f.w.Q(), leaf, size)
				if err != nil {
					t.Fatal(err)
				}
				alts = append(alts, alteration{what: fmt.Sprintf("proof of leaf %d", leaf),
					data: pack(t, replace(ma, evidence.MemberProof, evidence.FormatProof(leaf, size, p))), allow: []string{evidence.CheckInclusion}})
				alts = append(alts, alteration{what: fmt.Sprintf("proof of leaf %d with the index of A", leaf),
					data: pack(t, replace(ma, evidence.MemberProof, evidence.FormatProof(f.seqA, size, p))), allow: []string{evidence.CheckInclusion}})
			}
			alts = append(alts, alteration{what: "empty proof", data: pack(t, replace(ma, evidence.MemberProof, evidence.FormatProof(f.seqA, size, nil))),
				allow: []string{evidence.CheckInclusion}})
			if len(alts) < 4 {
				t.Fatalf("only %d proof alterations", len(alts))
			}
			verifyAll(t, f.anchors, alts, func(a alteration) string { return "" })
		})

		// A bundle of another provider, verified with this one's anchors.
		t.Run("other provider", func(t *testing.T) {
			other := newBundleFixture(t, w.Node.DB.Dialect)
			if r := evidence.VerifyBundle(other.a, other.anchors, nil); !r.Valid {
				t.Fatalf("the other provider's bundle: %+v", r.Checks)
			}
			r := evidence.VerifyBundle(other.a, f.anchors, nil)
			got := failed(r)
			for _, want := range []string{evidence.CheckCertChain, evidence.CheckLogKey} {
				if r.Valid || !slices.Contains(got, want) {
					t.Errorf("another provider's bundle: failed checks %v, want %s among them", got, want)
				}
			}
			// With its anchors added, it verifies: trust is the anchors'.
			both := f.anchors
			both.ProviderCAs = f.anchors.ProviderCAs.Clone()
			both.TSACAs = f.anchors.TSACAs.Clone()
			provCA, _ := pki.LoadCertsPEM(other.w.Node.Config.Path("keys/provider-ca.crt"))
			both.ProviderCAs.AddCert(provCA[0])
			tsaCA, _ := pki.LoadCertsPEM(other.w.Node.Config.Path("keys/tsa-ca.crt"))
			both.TSACAs.AddCert(tsaCA[0])
			both.LogKeys = append(slices.Clone(f.anchors.LogKeys), other.w.Node.LogKey)
			if r := evidence.VerifyBundle(other.a, both, nil); !r.Valid {
				t.Fatalf("with both providers' anchors: %+v", r.Checks)
			}
			// Members of the other provider's bundle swapped into ours.
			mo := unpack(t, other.a)
			var alts []alteration
			for _, m := range ma {
				if o := find(mo, m.name); o != nil && !bytes.Equal(o, m.data) {
					// Both providers are trusted here: the member is a valid one,
					// but not the one the rest of the bundle goes with.
					allow := append(slices.Clone(memberChecks[m.name]), evidence.CheckContainer, evidence.CheckCheckpoint)
					alts = append(alts, alteration{what: "A with " + m.name + " of another provider", data: pack(t, replace(ma, m.name, o)), allow: allow})
				}
			}
			verifyAll(t, both, alts, func(a alteration) string { return "" })
		})
	})
}

// w2size is the size of the fixture's log.
func w2size(t testing.TB, f *bundleFixture) int64 {
	t.Helper()
	cp, err := tlog.LatestCheckpoint(context.Background(), f.w.Q())
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// TestBundleRepack checks the test's own ZIP writer: it must reproduce the
// node's bundles byte for byte, or the member alterations would be caught
// by the container check for the wrong reason.
func TestBundleRepack(t *testing.T) {
	f := newBundleFixture(t, store.SQLite)
	for _, data := range [][]byte{f.a, f.b} {
		if !bytes.Equal(pack(t, unpack(t, data)), data) {
			t.Fatal("re-packed bundle differs from the node's")
		}
		// The mimetype is readable at a fixed offset (ASiC).
		if string(data[38:38+len(evidence.BundleMediaType)]) != evidence.BundleMediaType {
			t.Fatalf("mimetype not at offset 38: %q", data[30:80])
		}
		// Marshal of the parsed bundle gives the same bytes.
		b, err := evidence.ParseBundle(data)
		if err != nil {
			t.Fatal(err)
		}
		again, err := b.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("Marshal(ParseBundle(b)) differs: %v", err)
		}
	}
	t.Logf("bundle sizes: A %d bytes, B %d bytes", len(f.a), len(f.b))
}

// BenchmarkVerifyBundle measures offline verification of one bundle: the
// container, the XML signature, the certificate chain, the checkpoint's
// signature, the inclusion proof and the time stamps. Target: under 2 ms.
func BenchmarkVerifyBundle(b *testing.B) {
	f := newBundleFixture(b, store.SQLite)
	for _, bc := range []struct {
		name string
		data []byte
	}{{"one-time-stamp", f.a}, {"two-time-stamps", f.b}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			for b.Loop() {
				if r := evidence.VerifyBundle(bc.data, f.anchors, nil); !r.Valid {
					b.Fatal(r.Checks)
				}
			}
		})
	}
}
