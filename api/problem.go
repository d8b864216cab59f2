package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/rehber"
	"github.com/kephs/kep/submission"
)

// Problem is an RFC 9457 problem details object, the one shape of every
// error the API answers (application/problem+json). Beside the standard
// members: Code, a stable machine code; Detail (English) and DetailTR
// (Turkish), each a sentence a person can act on; for a message the
// access point refused, SMTPCode and Reason, exactly what the SMTP reply
// and the rejection evidence (11) say.
type Problem struct {
	Type       string `json:"type"` // "urn:kep:problem:" + Code
	Title      string `json:"title"`
	Status     int    `json:"status"`
	Detail     string `json:"detail"`
	DetailTR   string `json:"detail_tr"`
	Code       string `json:"code"`
	Reason     string `json:"reason,omitempty"`      // the evidence's reason URI
	SMTPCode   string `json:"smtp_code,omitempty"`   // "550 5.7.1"
	RetryAfter int    `json:"retry_after,omitempty"` // seconds, with 429 and 503
	Request    string `json:"request,omitempty"`     // X-Request-Id, for the provider's support
}

func (p *Problem) Error() string { return p.Detail }

// problemf makes a problem of the API's own.
func problemf(status int, code, title, tr, en string) *Problem {
	return &Problem{Type: "urn:kep:problem:" + code, Title: title, Status: status, Code: code, DetailTR: tr, Detail: en}
}

var errNoToken = problemf(http.StatusUnauthorized, "unauthenticated", "API token required",
	"Bu çağrı bir API anahtarı ister: Authorization: Bearer kep_… başlığını gönderin.",
	"This call needs an API token: send the header Authorization: Bearer kep_….")

// problemOf maps an error of the core to its problem. Errors it does not
// know are internal: their text stays in the log, never in the answer.
func problemOf(err error) *Problem {
	var p *Problem
	var ref *submission.Refusal
	var mref *mailbox.Refusal
	var th *account.ThrottledError
	var rl *rehber.RateLimitedError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &ref):
		return refusalProblem(ref)
	case errors.As(err, &mref):
		return mailboxProblem(mref)
	case errors.Is(err, account.ErrBadToken):
		return problemf(http.StatusUnauthorized, "invalid-token", "Invalid API token",
			"API anahtarı geçersiz: bilinmiyor, iptal edilmiş ya da hesabı veya yetkilisi artık etkin değil. Hesap sahibinden veya ana işlem yetkilisinden yeni bir anahtar isteyin.",
			err.Error()+"; ask the account's holder or main operator for a new one")
	case errors.As(err, &th):
		q := problemf(http.StatusTooManyRequests, "login-throttled", "Too many failed logins",
			fmt.Sprintf("Çok fazla hatalı giriş denemesi; %d saniye sonra yeniden deneyin.", int(th.RetryAfter().Seconds())), err.Error())
		q.RetryAfter = int(th.RetryAfter().Seconds())
		return q
	case errors.As(err, &rl):
		q := problemf(http.StatusTooManyRequests, "rate-limited", "Too many lookups",
			fmt.Sprintf("Çok fazla KEP Rehberi sorgusu; %d saniye sonra yeniden deneyin.", int(rl.RetryAfter().Seconds())), err.Error())
		q.RetryAfter = int(rl.RetryAfter().Seconds())
		return q
	case errors.Is(err, account.ErrNoSuchAccount):
		return problemf(http.StatusNotFound, "no-such-account", "No such account", "Böyle bir hesap yok ya da bu anahtar onu göremez.", "No such account, or this token cannot see it.")
	case errors.Is(err, account.ErrNoSuchToken):
		return problemf(http.StatusNotFound, "no-such-token", "No such token", "Bu hesapta böyle bir API anahtarı yok.", "No such API token on this account.")
	case errors.Is(err, account.ErrNoSuchOperator):
		return problemf(http.StatusNotFound, "no-such-operator", "No such operator", "Bu hesapta böyle bir işlem yetkilisi yok.", "No such operator on this account.")
	case errors.Is(err, account.ErrTokenNotMaking):
		return problemf(http.StatusForbidden, "not-manager", "Only the holder or main operator",
			"Bunu yalnızca hesap sahibi, ana işlem yetkilisi ya da sağlayıcı yapabilir.", err.Error())
	case errors.Is(err, account.ErrAccountNotActive):
		return problemf(http.StatusForbidden, "account-not-active", "Account not active", "Hesap etkin değil; sağlayıcınıza başvurun.", err.Error())
	case errors.Is(err, rehber.ErrBadQuery):
		return problemf(http.StatusBadRequest, "invalid-query", "Bad query",
			fmt.Sprintf("Sorgu geçersiz: name (en az %d harf), mersis, vkn veya detsis alanlarından tam olarak birini verin.", rehber.MinNameLength),
			fmt.Sprintf("Give exactly one of name (at least %d letters), mersis, vkn or detsis.", rehber.MinNameLength))
	case errors.Is(err, rehber.ErrBadTCKN):
		return problemf(http.StatusBadRequest, "invalid-tckn", "Not a valid TCKN", "Geçerli bir T.C. kimlik numarası değil.", "Not a valid TCKN: 11 digits whose check digits hold.")
	}
	return problemf(http.StatusInternalServerError, "internal", "Internal error",
		"Sağlayıcıda bir iç hata oluştu; hiçbir şey değişmemiş olabilir, daha sonra yeniden deneyin ve istek numarasını destek birimine bildirin.",
		"An internal error occurred; try again later, and quote the request id to the provider's support.")
}

// refusalProblem is the access point's refusal as a problem: the same
// reason as the SMTP reply and the rejection evidence.
func refusalProblem(ref *submission.Refusal) *Problem {
	code := ref.MachineCode()
	status := http.StatusUnprocessableEntity
	switch {
	case code == "idempotency-key-reused":
		status = http.StatusConflict
	case code == "size-limit":
		status = http.StatusRequestEntityTooLarge
	case ref.Temporary():
		status = http.StatusServiceUnavailable
	}
	p := problemf(status, code, "Message refused", refusalTR(ref), ref.Reason.Text)
	if ref.Temporary() {
		p.Title = "Message not accepted now"
		p.RetryAfter = 30
	}
	p.Reason = ref.Reason.Code
	p.SMTPCode = fmt.Sprintf("%d %d.%d.%d", ref.Code, ref.Enhanced[0], ref.Enhanced[1], ref.Enhanced[2])
	return p
}

// refusalTR says a refusal in Turkish. The English detail is the exact
// sentence of the SMTP reply and the evidence; the Turkish one says what
// to do, by the refusal's code.
func refusalTR(ref *submission.Refusal) string {
	tr := map[string]string{
		"not-signed":             "İleti nitelikli elektronik imzayla (S/MIME) imzalanmamış; e-imzanızla imzalayıp yeniden gönderin.",
		"bad-signature":          "İletinin elektronik imzası doğrulanamadı; iletiyi yeniden imzalayın.",
		"untrusted-certificate":  "İmza sertifikası kabul edilmiyor (güvenilir değil, süresi dolmuş ya da çok eski imza).",
		"certificate-revoked":    "İmza sertifikası iptal edilmiş; geçerli bir sertifikayla imzalayın.",
		"identity-mismatch":      "İleti, gönderen hesabın sahibine ya da işlem yetkilisine ait olmayan bir sertifikayla imzalanmış.",
		"from-mismatch":          "Bu anahtar From adresindeki hesap adına gönderemez.",
		"no-send-grant":          "İşlem yetkilisinin bu hesapta gönderme yetkisi yok; ana işlem yetkilisi verebilir.",
		"bcc-not-empty":          "KEP'te gizli alıcı (Bcc) olamaz; her alıcı To veya Cc alanında görünmelidir.",
		"recipient-not-kep":      "Alıcılardan biri KEP adresi değil; KEP iletileri yalnızca KEP adreslerine gider.",
		"unknown-provider":       "Alıcılardan birinin sağlayıcısı KEP hizmet sağlayıcı rehberinde yok.",
		"recipient-not-in-to-cc": "Her alıcı iletinin To veya Cc alanında görünmelidir.",
		"one-from":               "İletide tam olarak bir From adresi olmalıdır.",
		"reverse-path-mismatch":  "Zarf göndericisi From adresiyle aynı olmalıdır.",
		"size-limit":             "İleti (alıcı sayısıyla birlikte) boyut sınırını aşıyor.",
		"receive-only":           "Hesap yalnızca alıcı hesabıdır; KEP iletisi gönderemez.",
		"sender-not-active":      "Gönderen hesap etkin değil.",
		"malformed":              "İleti okunamıyor; satır sonları CRLF olan bir RFC 5322 iletisi gönderin.",
		"mime-too-deep":          "İletinin MIME bölümleri çok derin iç içe geçmiş.",
		"bad-ileti-tip":          "X-TR-REM-iletiTip standart, eYazisma veya eTebligat olmalıdır.",
		"encrypted":              "İleti şifrelenmiş; KEP iletisi imzalı olmalı, sağlayıcıya şifrelenmemelidir.",
		"idempotency-key-reused": "Bu tekrar anahtarı (idempotency key) başka bir ileti için kullanılmış; hiçbir şey gönderilmedi. Yeni ileti için yeni anahtar kullanın.",
		"bad-idempotency-key":    "Tekrar anahtarı (idempotency key) çok uzun.",
		"too-many-recipients":    "İletide izin verilenden fazla alıcı var.",
	}[ref.MachineCode()]
	if tr != "" {
		return tr
	}
	if ref.Temporary() {
		return "İleti şu anda kabul edilemedi; hiçbir şey gönderilmedi, biraz sonra yeniden deneyin."
	}
	return "İleti erişim noktasında reddedildi; ayrıntı İngilizce açıklamada ve ret delilindedir."
}

func mailboxProblem(r *mailbox.Refusal) *Problem {
	switch r.Kind {
	case mailbox.NotFound:
		return problemf(http.StatusNotFound, "not-found", "Not found", "Bulunamadı ya da bu anahtar göremez.", r.Reason)
	case mailbox.NoPermission:
		return problemf(http.StatusForbidden, "no-permission", "Grant missing", "Bu işlem için yetkiniz yok; ana işlem yetkilisi yetki verebilir.", r.Reason)
	case mailbox.OverQuota:
		return problemf(http.StatusInsufficientStorage, "over-quota", "Over quota", "Posta kutusu kotası doldu.", r.Reason)
	case mailbox.AlreadyExists:
		return problemf(http.StatusConflict, "already-exists", "Already exists", "Bu adla bir klasör zaten var.", r.Reason)
	case mailbox.OverLimit:
		return problemf(http.StatusUnprocessableEntity, "over-limit", "Over a limit", "Bir sayı ya da uzunluk sınırı aşıldı.", r.Reason)
	}
	return problemf(http.StatusUnprocessableEntity, "not-possible", "Not possible", "Bu işlem kurallar gereği yapılamaz.", r.Reason)
}

// problem answers err as a problem, logging internal errors under the
// request's id.
func (c *call) problem(err error) {
	p := *problemOf(err)
	if p.Status >= 500 && p.Code != "not-stored" && p.Code != "evidence-unavailable" && p.Code != "shutting-down" {
		c.s.log().Error("api: request failed", "request", c.id, "route", c.r.Pattern, "err", err) // the route, not the path: a path names an address
	}
	p.Request = c.id
	if p.RetryAfter > 0 {
		c.w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	c.w.Header().Set("Content-Type", "application/problem+json")
	c.w.Header().Set("Content-Language", "en, tr")
	c.w.WriteHeader(p.Status)
	writeJSON(c.w, p)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
