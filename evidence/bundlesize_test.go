package evidence_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kephs/kep/evidence"
)

// TestBundleZipBomb: a bundle whose members, each within the member limit,
// together decompress to more than a verifier should hold is refused before
// any member is read — the public verification page and the API take
// bundles from anyone.
func TestBundleZipBomb(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members int
		size    int
		refused bool
	}{
		{"9 × 4 MB", 9, 4 << 20, true},
		{"60 × 4 MB", 60, 4 << 20, true},
		{"3 × 1 MB", 3, 1 << 20, false}, // refused later, for what it lacks
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			w, _ := zw.CreateHeader(&zip.FileHeader{Name: evidence.MemberMimetype, Method: zip.Store})
			w.Write([]byte(evidence.BundleMediaType))
			zeros := make([]byte, tc.size)
			for i := 1; i <= tc.members; i++ {
				w, _ := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("%s%d.der", evidence.MemberRevocation, i), Method: zip.Deflate})
				w.Write(zeros)
			}
			zw.Close()
			if buf.Len() > 1<<20 {
				t.Fatalf("the bomb is %d bytes: not a bomb", buf.Len())
			}
			_, err := evidence.ParseBundle(buf.Bytes())
			if !errors.Is(err, evidence.ErrBundle) {
				t.Fatalf("%v, want ErrBundle", err)
			}
			if got := strings.Contains(err.Error(), "uncompressed"); got != tc.refused {
				t.Errorf("refused for its size: %v, want %v (%v)", got, tc.refused, err)
			}
		})
	}
}
