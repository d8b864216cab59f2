package evidence

import "strconv"

// ReasonKEPBase prefixes the reason codes the system defines. TS 102 640-2
// leaves reason codes to the REM policy; ours are URNs in the KEP space. The
// sentences of the reasons defined here are Turkish, the language of the
// evidence's readers; callers may give their own sentence (the access point
// puts its SMTP reply, in English, into rejection evidence).
const ReasonKEPBase = "urn:kep:tr:evidence:reason:"

// Reason codes. The access-point checks follow docs/kep-rules.md "Messages and
// envelopes" (after RFC 6109 §3.1); the mailbox ones "Accounts"; the deemed
// ones "Timing rules".
const (
	ReasonCodeNotSigned            = ReasonKEPBase + "not-signed"
	ReasonCodeBadSignature         = ReasonKEPBase + "bad-signature"
	ReasonCodeUntrustedCertificate = ReasonKEPBase + "untrusted-certificate"
	ReasonCodeIdentityMismatch     = ReasonKEPBase + "identity-mismatch"
	ReasonCodeFromMismatch         = ReasonKEPBase + "from-mismatch"
	ReasonCodeBccNotEmpty          = ReasonKEPBase + "bcc-not-empty"
	ReasonCodeRecipientNotKEP      = ReasonKEPBase + "recipient-not-kep"
	ReasonCodeUnknownProvider      = ReasonKEPBase + "unknown-provider"
	ReasonCodeSizeLimit            = ReasonKEPBase + "size-limit"
	ReasonCodeReceiveOnly          = ReasonKEPBase + "receive-only"
	ReasonCodeMailboxFull          = ReasonKEPBase + "mailbox-full"
	ReasonCodeMailboxClosed        = ReasonKEPBase + "mailbox-closed"
	ReasonCodeUnknownRecipient     = ReasonKEPBase + "unknown-recipient"
	ReasonCodeRelayTimeout         = ReasonKEPBase + "relay-timeout"
	ReasonCodeDeemedStandart24h    = ReasonKEPBase + "deemed-read-standart-24h"
	ReasonCodeDeemedETebligat5Days = ReasonKEPBase + "deemed-read-etebligat-5days"
)

// ReasonNotSigned: the message carries no qualified e-signature (CMS).
func ReasonNotSigned() Reason {
	return Reason{ReasonCodeNotSigned, "İleti nitelikli elektronik imza ile imzalanmamış."}
}

// ReasonBadSignature: the CMS signature does not verify.
func ReasonBadSignature() Reason {
	return Reason{ReasonCodeBadSignature, "İletinin elektronik imzası doğrulanamadı."}
}

// ReasonUntrustedCertificate: the signer's certificate does not chain to a
// trusted e-signature CA, or was not valid at signing time.
func ReasonUntrustedCertificate() Reason {
	return Reason{ReasonCodeUntrustedCertificate, "İmza sertifikası güvenilir bir elektronik sertifika hizmet sağlayıcısına zincirlenmiyor ya da imza anında geçerli değil."}
}

// ReasonIdentityMismatch: the certificate is not bound to the account holder
// (or the operator) who sent the message.
func ReasonIdentityMismatch() Reason {
	return Reason{ReasonCodeIdentityMismatch, "İmza sertifikasındaki kimlik gönderici hesabın sahibine ait değil."}
}

// ReasonFromMismatch: From is not the authenticated account, or the SMTP
// reverse-path differs from From.
func ReasonFromMismatch() Reason {
	return Reason{ReasonCodeFromMismatch, "Gönderen adresi kimliği doğrulanan hesapla uyuşmuyor."}
}

// ReasonBccNotEmpty: KEP messages have no blind copies.
func ReasonBccNotEmpty() Reason {
	return Reason{ReasonCodeBccNotEmpty, "KEP iletilerinde gizli alıcı (Bcc) kullanılamaz."}
}

// ReasonRecipientNotKEP: a recipient is outside the KEP network.
func ReasonRecipientNotKEP(address string) Reason {
	return Reason{ReasonCodeRecipientNotKEP, "Alıcı adresi bir KEP adresi değil: " + address}
}

// ReasonUnknownProvider: a recipient's domain is not in the provider directory.
func ReasonUnknownProvider(domain string) Reason {
	return Reason{ReasonCodeUnknownProvider, "Alıcının hizmet sağlayıcısı KEP rehberinde bulunamadı: " + domain}
}

// ReasonSizeLimit: size × recipients exceeds the limit.
func ReasonSizeLimit(size, limit int64) Reason {
	return Reason{ReasonCodeSizeLimit, "İleti boyutu sınırı aşıyor: " + strconv.FormatInt(size, 10) + " > " + strconv.FormatInt(limit, 10) + " bayt."}
}

// ReasonReceiveOnly: the sending account is receive-only (sadece alıcı).
func ReasonReceiveOnly() Reason {
	return Reason{ReasonCodeReceiveOnly, "Hesap yalnızca ileti almaya yetkili; gönderim yapamaz."}
}

// ReasonMailboxFull: the recipient's quota is exhausted.
func ReasonMailboxFull() Reason {
	return Reason{ReasonCodeMailboxFull, "Alıcının posta kutusu dolu."}
}

// ReasonMailboxClosed: the recipient's account is closed.
func ReasonMailboxClosed() Reason {
	return Reason{ReasonCodeMailboxClosed, "Alıcının KEP hesabı kapalı."}
}

// ReasonUnknownRecipient: no such account at the recipient's provider.
func ReasonUnknownRecipient() Reason {
	return Reason{ReasonCodeUnknownRecipient, "Alıcı adresinde bir KEP hesabı yok."}
}

// ReasonRelayTimeout: the recipient's provider did not accept the message
// within the relay period (24 h by default).
func ReasonRelayTimeout() Reason {
	return Reason{ReasonCodeRelayTimeout, "Alıcının hizmet sağlayıcısı iletiyi süresi içinde kabul etmedi."}
}

// ReasonDeemedReadStandart24h: a standart message not opened within 24 hours
// of delivery.
func ReasonDeemedReadStandart24h() Reason {
	return Reason{ReasonCodeDeemedStandart24h, "İleti teslimden sonraki 24 saat içinde açılmadığından okunmuş sayıldı."}
}

// ReasonDeemedReadETebligat5Days: an e-tebligat not opened by the end of the
// fifth day after it reached the address (Tebligat Kanunu art. 7/a).
func ReasonDeemedReadETebligat5Days() Reason {
	return Reason{ReasonCodeDeemedETebligat5Days, "Elektronik tebligat adrese ulaştığı günü izleyen beşinci günün sonunda tebliğ edilmiş sayıldı."}
}
