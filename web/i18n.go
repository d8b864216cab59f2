package web

import "fmt"

// The pages' words, Turkish first (the default) and English. Templates
// call {{t "key"}}; a missing key shows as itself, and a test checks that
// every key the templates use is here.
var words = map[string][2]string{
	"app":                        {"KEP Posta", "KEP Mail"},
	"lang.other":                 {"English", "Türkçe"},
	"lang.other.code":            {"en", "tr"},
	"login":                      {"Giriş", "Log in"},
	"login.user":                 {"KEP adresi veya T.C. kimlik no (işlem yetkilisi)", "KEP address, or TCKN (operators)"},
	"login.password":             {"Parola", "Password"},
	"login.code":                 {"Doğrulama kodu (iki adımlı doğrulama açıksa)", "Verification code (if two-step verification is on)"},
	"login.submit":               {"Giriş yap", "Log in"},
	"logout":                     {"Çıkış", "Log out"},
	"folder.inbox":               {"Gelen", "Inbox"},
	"folder.sent":                {"Giden", "Sent"},
	"folder.delil":               {"Delil", "Evidence"},
	"folder.drafts":              {"Taslaklar", "Drafts"},
	"folder.archive":             {"Arşiv", "Archive"},
	"folder.trash":               {"Çöp", "Trash"},
	"search":                     {"Ara (konu, gönderen)", "Search (subject, sender)"},
	"search.submit":              {"Ara", "Search"},
	"list.empty":                 {"Bu klasörde ileti yok.", "No messages in this folder."},
	"list.from":                  {"Gönderen", "From"},
	"list.to":                    {"Alıcı", "To"},
	"list.subject":               {"Konu", "Subject"},
	"list.date":                  {"Tarih", "Date"},
	"list.unread":                {"okunmadı", "unread"},
	"page.prev":                  {"Önceki", "Previous"},
	"page.next":                  {"Sonraki", "Next"},
	"page.of":                    {"sayfa %d / %d", "page %d of %d"},
	"quota":                      {"Kota", "Quota"},
	"quota.used":                 {"%s / %s kullanılıyor (%%%d)", "%s of %s used (%d%%)"},
	"quota.80":                   {"Kotanızın %80'i doldu.", "Your mailbox is 80 % full."},
	"quota.90":                   {"Kotanızın %90'ı doldu: yer açın ya da ek kota alın.", "Your mailbox is 90 % full: make room or buy more space."},
	"quota.100":                  {"Kotanız doldu: yeni gelen iletiler teslim edilemez (teslim edilememe delili düzenlenir).", "Your mailbox is full: new messages cannot be delivered (non-delivery evidence is issued)."},
	"accounts":                   {"Hesaplar", "Accounts"},
	"compose":                    {"Yeni ileti", "New message"},
	"security":                   {"Güvenlik", "Security"},
	"msg.from":                   {"Gönderen", "From"},
	"msg.to":                     {"Alıcılar", "To"},
	"msg.cc":                     {"Bilgi", "Cc"},
	"msg.date":                   {"Tarih", "Date"},
	"msg.type":                   {"İleti tipi", "Message type"},
	"msg.iletiid":                {"İleti kimliği", "Message identifier"},
	"msg.attachments":            {"Ekler", "Attachments"},
	"msg.signer":                 {"İmzalayan (nitelikli elektronik sertifika)", "Signed by (qualified certificate)"},
	"msg.signer.ok":              {"İmza geçerli; sağlayıcı kabulde sertifikayı ve kimlik bağını doğruladı (delil 10).", "The signature is valid; the provider checked the certificate and its identity binding at acceptance (evidence 10)."},
	"msg.signer.bad":             {"İmza doğrulanamadı", "The signature could not be checked"},
	"msg.signer.serial":          {"Kimlik no", "Identity no"},
	"msg.signer.issuer":          {"Sertifika sağlayıcı", "Certificate issuer"},
	"msg.html":                   {"HTML içerik güvenli biçimde gösteriliyor: betik ve uzak içerik kaldırıldı.", "HTML shown safely: scripts and remote content removed."},
	"msg.deleted":                {"Bu iletinin içeriği silinmiş; delilleri duruyor.", "This message's content was deleted; its evidence remains."},
	"msg.timeline":               {"Delil zaman çizelgesi", "Evidence timeline"},
	"msg.timeline.none":          {"Bu ileti için görebileceğiniz delil yok.", "There is no evidence about this message you may see."},
	"msg.bundle":                 {"Delil paketi (.zip)", "Evidence bundle (.zip)"},
	"msg.report":                 {"Delil raporu", "Evidence report"},
	"msg.recipients":             {"Alıcı durumu", "Recipients"},
	"msg.served":                 {"Yasal tebliğ tarihi", "Legally served on"},
	"msg.served.note":            {"eTebligat: iletinin adrese ulaştığı günü izleyen beşinci günün sonu (7201 sayılı Tebligat Kanunu m. 7/a).", "eTebligat: the end of the fifth day after the message reached the address (Tebligat Kanunu art. 7/a)."},
	"msg.served.wait":            {"henüz teslim edilmedi", "not delivered yet"},
	"msg.tz":                     {"Saatler Türkiye saatiyle (Europe/Istanbul).", "Times are Turkish time (Europe/Istanbul)."},
	"state.accepted":             {"kabul edildi", "accepted"},
	"state.relayed":              {"alıcının sağlayıcısına aktarıldı", "relayed to the recipient's provider"},
	"state.accepted-by-provider": {"alıcının sağlayıcısı kabul etti", "accepted by the recipient's provider"},
	"state.delivered":            {"teslim edildi", "delivered"},
	"state.read":                 {"okundu", "read"},
	"state.deemed-read":          {"okunmuş sayıldı", "deemed read"},
	"state.failed":               {"teslim edilemedi", "not delivered"},
	"compose.to":                 {"Alıcılar (virgülle)", "To (comma-separated)"},
	"compose.cc":                 {"Bilgi (virgülle)", "Cc (comma-separated)"},
	"compose.subject":            {"Konu", "Subject"},
	"compose.body":               {"İleti", "Message"},
	"compose.files":              {"Ekler", "Attachments"},
	"compose.type":               {"İleti tipi", "Message type"},
	"compose.sign":               {"İmzalama", "Signing"},
	"compose.keyfile":            {"İmza dosyası (PKCS#12 veya PEM); anahtar tarayıcıdan çıkmaz", "Key file (PKCS#12 or PEM); the key never leaves the browser"},
	"compose.keypass":            {"İmza dosyasının parolası", "Key file password"},
	"compose.agent":              {"Akıllı kart (kep signer)", "Smartcard (kep signer)"},
	"compose.agent.no":           {"Bu bilgisayarda kep signer çalışmıyor.", "kep signer is not running on this computer."},
	"compose.send":               {"İmzala ve gönder", "Sign and send"},
	"compose.nosend":             {"Bu hesaptan gönderme yetkiniz yok.", "You may not send from this account."},
	"compose.receiveonly":        {"Bu hesap yalnızca alıcı (sadece alıcı) hesabıdır: ileti gönderemez. Göndermek için hesabınıza nitelikli elektronik sertifika kaydettirin.", "This is a receive-only account: it cannot send. Register a qualified e-signature certificate to send."},
	"compose.sent":               {"İleti kabul edildi; kabul delili: %s", "Message accepted; acceptance evidence: %s"},
	"compose.refused":            {"İleti kabul edilmedi", "The message was not accepted"},
	"compose.noscript":           {"İletiyi tarayıcıda imzalamak için JavaScript gerekir.", "Signing in the browser needs JavaScript."},
	"totp":                       {"İki adımlı doğrulama", "Two-step verification"},
	"totp.on":                    {"Açık. Posta programları yalnızca uygulama parolasıyla bağlanır.", "On. Mail clients log in with app passwords only."},
	"totp.off":                   {"Kapalı.", "Off."},
	"totp.begin":                 {"Aç", "Turn on"},
	"totp.scan":                  {"Doğrulayıcı uygulamanızla bu kodu tarayın, sonra gösterdiği kodu girin.", "Scan this code with your authenticator app, then enter the code it shows."},
	"totp.secret":                {"Elle girmek için anahtar", "Key, to type in"},
	"totp.confirm":               {"Onayla", "Confirm"},
	"totp.disable":               {"Kapat (geçerli kod gerekir)", "Turn off (needs a current code)"},
	"totp.code":                  {"Kod", "Code"},
	"totp.done":                  {"İki adımlı doğrulama açıldı.", "Two-step verification is on."},
	"totp.gone":                  {"İki adımlı doğrulama kapatıldı.", "Two-step verification is off."},
	"sessions":                   {"Oturumlar", "Sessions"},
	"sessions.end":               {"Tüm oturumları kapat", "Log out everywhere"},
	"sessions.ended":             {"%d oturum kapatıldı.", "%d sessions ended."},
	"err.title":                  {"Bir sorun var", "Something is wrong"},
	"err.csrf":                   {"Form süresi dolmuş ya da başka bir siteden gönderilmiş. Sayfayı yenileyip yeniden deneyin.", "The form expired or came from another site. Reload the page and try again."},
	"err.session":                {"Oturumunuz sona erdi; yeniden giriş yapın.", "Your session has ended; log in again."},
	"err.notfound":               {"Böyle bir sayfa ya da ileti yok (ya da görme yetkiniz yok).", "No such page or message (or you may not see it)."},
	"err.internal":               {"Sunucuda bir hata oldu; yeniden deneyin. Sürerse sağlayıcınıza şu kodu bildirin: %s", "The server failed; try again. If it persists, tell your provider this code: %s"},
	"err.login":                  {"Kullanıcı adı, parola ya da kod yanlış.", "Wrong user name, password or code."},
	"err.throttled":              {"Çok fazla hatalı giriş: %s sonra yeniden deneyin.", "Too many failed logins: try again in %s."},
	"err.notcovered":             {"Bu delil henüz bir kontrol noktasına (log checkpoint) girmedi; birkaç saniye sonra yeniden deneyin.", "No log checkpoint covers this evidence yet; try again in a few seconds."},
	"err.target":                 {"Bu klasöre taşınamaz: Gelen, Arşiv veya Çöp seçin.", "Cannot move there: choose Inbox, Archive or Trash."},
	"err.trashfirst":             {"Kalıcı silmek için iletiyi önce Çöp'e taşıyın.", "Move the message to Trash before deleting it for good."},
	"msg.move":                   {"Taşı", "Move"},
	"msg.delete":                 {"Kalıcı sil (deliller kalır)", "Delete for good (evidence remains)"},
	"err.back":                   {"Geri dön", "Go back"},
	"operator":                   {"İşlem yetkilisi", "Operator"},
	"grants":                     {"Yetkiler", "Grants"},
}

// tr returns a word in the language, formatted with args when given.
func tr(lang, key string, args ...any) string {
	w, ok := words[key]
	if !ok {
		return key
	}
	s := w[0]
	if lang == "en" {
		s = w[1]
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

func (c *reqCtx) t(key string, args ...any) string { return tr(c.lang, key, args...) }
