package evidence_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/store"
)

// FuzzVerifyBundle: VerifyBundle never panics, always reports the container
// check first, is valid exactly when every check passed, and accepts no
// bundle but the node's own: any change to a real bundle is refused.
//
//	go test ./evidence -run '^$' -fuzz FuzzVerifyBundle -fuzztime 1m
func FuzzVerifyBundle(f *testing.F) {
	fx := newBundleFixture(f, store.SQLite)
	mb := unpack(f, fx.b)
	// B without its later time stamp is the node's bundle as it was before
	// the checkpoint was re-time-stamped: genuine too.
	stripped := pack(f, slices.DeleteFunc(slices.Clone(mb), func(m member) bool { return m.name == "META-INF/retimestamp-1.tsr" }))
	genuine := [][]byte{fx.a, fx.b, stripped}
	for _, g := range genuine {
		f.Add(g)
	}
	f.Add(pack(f, replace(unpack(f, fx.a), evidence.MemberProof, find(mb, evidence.MemberProof))))
	f.Add(fx.a[:len(fx.a)/2])
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := evidence.VerifyBundle(data, fx.anchors, nil)
		if len(r.Checks) == 0 || r.Checks[0].Name != evidence.CheckContainer {
			t.Fatalf("the container check does not come first: %+v", r.Checks)
		}
		all := true
		for _, c := range r.Checks {
			all = all && c.OK
		}
		if r.Valid != all {
			t.Fatalf("Valid %v, but every check passed: %v", r.Valid, all)
		}
		if !r.Valid {
			return
		}
		for _, g := range genuine {
			if bytes.Equal(data, g) {
				return
			}
		}
		t.Fatalf("an altered bundle verified: %+v", r.Checks)
	})
}
