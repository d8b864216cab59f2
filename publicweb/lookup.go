package publicweb

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"

	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

// lookup is the answer to a QR code's ?d=&i=: whether leaf i of the log
// has entry d, and whether the latest checkpoint includes it.
type lookup struct {
	Digest   string
	Index    int64
	Match    bool // the entry at Index is Digest
	Included bool // and the inclusion proof in the latest checkpoint holds
	TreeSize int64
	Root     string
	Stamped  string
	NotYet   bool // the latest checkpoint does not reach Index
	LeafHash string
	ProofLen int
}

func (s *Site) verifyPage(w http.ResponseWriter, r *http.Request) {
	p := &page{Title: "Delil doğrulama / Evidence verification", Max: sizeText(s.maxUpload()), Invite: true}
	q := r.URL.Query()
	if !q.Has("d") && !q.Has("i") {
		s.render(w, http.StatusOK, "verify.html", p)
		return
	}
	d, derr := hex.DecodeString(q.Get("d"))
	i, ierr := strconv.ParseInt(q.Get("i"), 10, 64)
	if derr != nil || len(d) != 32 || ierr != nil || i < 0 {
		p.Error = &message{"Bağlantı eksik ya da bozuk: d 64 onaltılık haneli bir özet, i bir kayıt sırası olmalı. QR kodu yeniden okutun.",
			"The link is incomplete or damaged: d must be a digest of 64 hex digits and i a log index. Scan the QR code again."}
		s.render(w, http.StatusBadRequest, "verify.html", p)
		return
	}
	lk, err := s.lookup(r, d, i)
	if err != nil {
		p.Error = &message{"Kayıt şu an okunamıyor; bir dakika sonra yeniden deneyin.", "The log cannot be read right now; try again in a minute."}
		s.render(w, http.StatusServiceUnavailable, "verify.html", p)
		return
	}
	p.Lookup = lk
	status := http.StatusOK
	if !lk.Included && !lk.NotYet {
		status = http.StatusNotFound
	}
	s.render(w, status, "verify.html", p)
}

// lookup checks leaf i against digest d and proves its inclusion in the
// latest checkpoint, from the store, as an auditor would from the tiles.
func (s *Site) lookup(r *http.Request, d []byte, i int64) (*lookup, error) {
	ctx := r.Context()
	lk := &lookup{Digest: hex.EncodeToString(d), Index: i}
	cp, err := tlog.LatestCheckpoint(ctx, s.DB.Q())
	if errors.Is(err, store.ErrNotFound) {
		lk.NotYet = true
		return lk, nil
	}
	if err != nil {
		return nil, err
	}
	lk.TreeSize, lk.Root, lk.Stamped = cp.Size, base64.StdEncoding.EncodeToString(cp.Root[:]), when(cp.TSTTime)
	if i >= cp.Size {
		lk.NotYet = true
		return lk, nil
	}
	entries, err := s.Entries(ctx, i, i+1)
	if err != nil {
		return nil, err
	}
	if len(entries) != 1 || !bytes.Equal(entries[0], d) {
		return lk, nil // another entry, or none: nothing about it is shown
	}
	lk.Match = true
	leaf := tlog.LeafHash(d)
	lk.LeafHash = base64.StdEncoding.EncodeToString(leaf[:])
	proof, err := tlog.ProveInclusion(ctx, s.DB.Q(), i, cp.Size)
	if err != nil {
		return nil, err
	}
	lk.ProofLen = len(proof)
	lk.Included = tlog.CheckInclusion(proof, cp.Size, cp.Root, i, d) == nil
	return lk, nil
}
