package publicweb

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kephs/kep/directory"
	"github.com/kephs/kep/evidence"
)

// verification is the outcome of checking an uploaded bundle.
type verification struct {
	Valid       bool
	Checks      []check
	Evidence    *shown
	Original    bool   // an original was uploaded and checked
	Anchors     string // which anchors were used, in Turkish and English
	AnchorsEN   string
	BundleBytes int
}

// check is one link of the chain, as a person reads it.
type check struct {
	OK       bool
	TR, EN   string // what was checked
	Detail   string // the verifier's own words (English, technical)
	ResultTR string
	ResultEN string
	Name     string
}

// shown is what the page says about a verified evidence: its code and
// time, its issuer, the digest of the message. The uploader holds the
// bundle; the page adds nothing to it.
type shown struct {
	ID, LabelTR, LabelEN, Issuer, Time, Digest string
	Code                                       int
}

// checkTexts names each check of evidence.VerifyBundle and
// VerifyWithDirectory in plain Turkish and English.
var checkTexts = map[string]message{
	evidence.CheckContainer:      {"Dosya eksiksiz bir delil paketi", "The file is a complete evidence bundle"},
	evidence.CheckXMLSignature:   {"Delilin elektronik imzası geçerli; delil imzalandıktan sonra değişmemiş", "The evidence's signature is valid: it has not changed since it was signed"},
	evidence.CheckCertChain:      {"İmzalayan sertifika, güvenilir bir KEP hizmet sağlayıcısına ait", "The signing certificate belongs to a trusted KEP provider"},
	evidence.CheckLogKey:         {"Delil kaydının (log) anahtarı güvenilir", "The evidence log's key is a trusted one"},
	evidence.CheckCheckpoint:     {"Kaydın kontrol noktası bu anahtarla imzalı", "The log checkpoint is signed with that key"},
	evidence.CheckInclusion:      {"Delil, hizmet sağlayıcının değiştirilemez kaydında yer alıyor", "The evidence is in the provider's append-only log"},
	evidence.CheckTimestamp:      {"Kontrol noktası güvenilir bir zaman damgasıyla damgalı, delilden sonra", "The checkpoint carries a trusted time stamp, made after the evidence"},
	evidence.CheckRetimestamp:    {"Sonraki zaman damgası geçerli", "A later time stamp is valid"},
	evidence.CheckRevocationData: {"Delildeki iptal bilgileri (CRL/OCSP) pakettekilerle aynı", "The revocation data the evidence cites is in the bundle, unchanged"},
	evidence.CheckOriginal:       {"Yüklediğiniz ileti, delilin belirttiği iletinin ta kendisi (özetler aynı)", "The message you uploaded is exactly the one the evidence names (same digest)"},
	evidence.CheckDirectory:      {"İmzalayan ve kayıt anahtarı, hizmet sağlayıcılar listesinde bu sağlayıcı için kayıtlı", "The signer and the log key are listed for this provider in the provider directory"},
}

func describe(c evidence.Check) check {
	name := c.Name
	if strings.HasPrefix(name, evidence.CheckRetimestamp+"-") {
		name = evidence.CheckRetimestamp
	}
	t, ok := checkTexts[name]
	if !ok {
		t = message{c.Name, c.Name}
	}
	out := check{OK: c.OK, TR: t.TR, EN: t.EN, Detail: c.Detail, Name: c.Name, ResultTR: "GEÇTİ", ResultEN: "passed"}
	if !c.OK {
		out.ResultTR, out.ResultEN = "BAŞARISIZ", "failed"
	}
	return out
}

// errTooLarge: the upload is over the limit.
var errTooLarge = errors.New("too large")

// readUpload reads the multipart form part by part into memory: the
// bundle (field "bundle") and the original (field "original", optional).
// Nothing goes to disk (http.Request.ParseMultipartForm would spill large
// parts into temporary files).
func (s *Site) readUpload(w http.ResponseWriter, r *http.Request) (bundle, original []byte, err error) {
	limit := s.maxUpload()
	if r.ContentLength > limit+64<<10 {
		return nil, nil, errTooLarge
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+64<<10) // the parts' headers and boundaries beside the files
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return nil, nil, errors.New("not a form upload")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, nil, err
	}
	var total int64
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, errTooLarge
		}
		if err != nil {
			return nil, nil, err
		}
		var buf bytes.Buffer
		n, err := io.Copy(&buf, io.LimitReader(part, limit-total+1))
		part.Close()
		if errors.As(err, &mbe) {
			return nil, nil, errTooLarge
		}
		if err != nil {
			return nil, nil, err
		}
		if total += n; total > limit {
			return nil, nil, errTooLarge
		}
		switch part.FormName() {
		case "bundle":
			bundle = buf.Bytes()
		case "original":
			if buf.Len() > 0 {
				original = buf.Bytes()
			}
		}
	}
	return bundle, original, nil
}

func (s *Site) verifyUpload(w http.ResponseWriter, r *http.Request) {
	p := &page{Title: "Delil doğrulama / Evidence verification", Max: sizeText(s.maxUpload()), Invite: true}
	release, ok := s.slot()
	if !ok {
		w.Header().Set("Retry-After", "10")
		p.Error = &message{"Şu an çok sayıda doğrulama yapılıyor; birkaç saniye sonra yeniden gönderin.", "Many verifications are running right now; send again in a few seconds."}
		s.render(w, http.StatusServiceUnavailable, "verify.html", p)
		return
	}
	defer release()
	// The slot is held while the upload arrives: a sender too slow to
	// finish in time gives it back (net/http then fails the read).
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(s.uploadTimeout()))
	bundle, original, err := s.readUpload(w, r)
	rc.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		p.Error = &message{fmt.Sprintf("Yükleme %s içinde tamamlanmadı; bağlantınızı denetleyip yeniden gönderin.", s.uploadTimeout()),
			fmt.Sprintf("The upload did not arrive within %s; check your connection and send it again.", s.uploadTimeout())}
		s.render(w, http.StatusRequestTimeout, "verify.html", p)
		return
	case errors.Is(err, errTooLarge):
		p.Error = &message{fmt.Sprintf("Yükleme çok büyük: en çok %s gönderebilirsiniz.", p.Max), fmt.Sprintf("The upload is too large: at most %s.", p.Max)}
		s.render(w, http.StatusRequestEntityTooLarge, "verify.html", p)
		return
	case err != nil:
		p.Error = &message{"Form okunamadı; sayfadaki formla bir delil paketi seçip yeniden gönderin.", "The form could not be read; choose an evidence bundle with the form on this page and send it again."}
		s.render(w, http.StatusBadRequest, "verify.html", p)
		return
	case len(bundle) == 0:
		p.Error = &message{"Delil paketi seçilmedi: doğrulanacak .zip dosyasını seçin.", "No evidence bundle was chosen: pick the .zip file to verify."}
		s.render(w, http.StatusBadRequest, "verify.html", p)
		return
	case !bytes.HasPrefix(bundle, []byte("PK\x03\x04")): // not a ZIP at all; a damaged bundle is checked below
		p.Error = &message{"Bu dosya bir delil paketi değil. Delil paketi, hizmet sağlayıcınızın verdiği .zip dosyasıdır (Delil klasöründeki iletinin eki ya da `kep evidence bundle` çıktısı).",
			"This file is not an evidence bundle. A bundle is the .zip file your provider gives (the attachment of the item in the Delil folder, or what `kep evidence bundle` writes)."}
		s.render(w, http.StatusUnprocessableEntity, "verify.html", p)
		return
	}
	v := s.verify(bundle, original)
	p.Verify = v
	p.Invite = false
	status := http.StatusOK
	if !v.Valid {
		status = http.StatusUnprocessableEntity
	}
	s.render(w, status, "verify.html", p)
}

// verify checks a bundle against this provider's anchors, or, when the
// directory names another provider as its issuer, against that
// provider's entries in the directory.
func (s *Site) verify(bundle, original []byte) *verification {
	v := &verification{Original: original != nil, BundleBytes: len(bundle),
		Anchors: "bu hizmet sağlayıcının güven çapaları", AnchorsEN: "this provider's trust anchors"}
	var d *directory.Directory
	if s.Directory != nil {
		d = s.Directory()
	}
	rep, p := evidence.VerifyTrusted(bundle, s.Anchors, s.ProviderID, d, original)
	if p != nil {
		v.Anchors = "yetkili kurumun hizmet sağlayıcılar listesi (" + p.ID + ")"
		v.AnchorsEN = "the authority's provider directory (" + p.ID + ")"
	}
	v.Valid = rep.Valid
	for _, c := range rep.Checks {
		v.Checks = append(v.Checks, describe(c))
	}
	if e := rep.Evidence; e != nil {
		issuer := e.Issuer.Name
		if e.Issuer.Domain != "" {
			issuer += " (" + e.Issuer.Domain + ")"
		}
		v.Evidence = &shown{ID: e.ID, Code: int(e.Code), LabelTR: e.Code.LabelTR(), LabelEN: e.Code.Label(), Issuer: issuer,
			Time: when(e.EventTime), Digest: hex.EncodeToString(e.Message.Digest)}
	}
	return v
}

func sizeText(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
