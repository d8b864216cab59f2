package publicweb

import (
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/kephs/kep/store"
	"github.com/kephs/kep/tlog"
)

// audit is the /denetim page: the latest checkpoint as signed, and the
// log's verifier keys to check it with.
type audit struct {
	Note    string // the signed note, exactly as /log/checkpoint serves it
	Origin  string
	Size    int64
	Root    string
	Stamped string // the RFC 3161 time stamp's time
	Created string
	LogKeys []string
	Empty   bool // no checkpoint yet
}

func (s *Site) auditPage(w http.ResponseWriter, r *http.Request) {
	p := &page{Title: "Kayıt denetimi / Log audit"}
	a := &audit{LogKeys: s.Anchors.LogKeys}
	p.Audit = a
	cp, err := tlog.LatestCheckpoint(r.Context(), s.DB.Q())
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.Empty = true
	case err != nil:
		p.Error = &message{"Kayıt şu an okunamıyor; bir dakika sonra yeniden deneyin.", "The log cannot be read right now; try again in a minute."}
		s.render(w, http.StatusServiceUnavailable, "audit.html", p)
		return
	default:
		origin, _, _, err := tlog.ParseCheckpoint(tlog.NoteBody(cp.Note))
		if err != nil {
			origin = "?"
		}
		a.Note, a.Origin, a.Size = string(cp.Note), origin, cp.Size
		a.Root, a.Stamped, a.Created = base64.StdEncoding.EncodeToString(cp.Root[:]), when(cp.TSTTime), when(cp.CreatedAt)
	}
	s.render(w, http.StatusOK, "audit.html", p)
}
