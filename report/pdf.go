package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"

	"codeberg.org/go-pdf/fpdf"
)

// The PDF's faces: DejaVu Sans Condensed, regular and bold (Debian's
// fonts-dejavu-core; licence in fonts/LICENSE). fpdf's core fonts are
// Latin-1 and cannot show ğ, ş, ı or İ; these UTF-8 TrueType faces can,
// and fpdf embeds only the glyphs a document uses.
var (
	//go:embed fonts/DejaVuSansCondensed.ttf
	fontRegular []byte
	//go:embed fonts/DejaVuSansCondensed-Bold.ttf
	fontBold []byte
)

const (
	pdfFont   = "DejaVu"
	pageW     = 210.0 // A4, mm
	margin    = 15.0
	labelW    = 52.0
	lineH     = 4.6
	qrSide    = 38.0
	bodyW     = pageW - 2*margin
	pageBreak = 297.0 - 18.0 // where content stops (the footer is below)
)

// WritePDF writes the report as a PDF (A4): the message, then each
// evidence, every label in Turkish and English, the QR code on the first
// page. The same report always yields the same bytes.
func (r *Report) WritePDF(w io.Writer) error {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetMargins(margin, margin, margin)
	f.SetAutoPageBreak(true, 297.0-pageBreak)
	f.AddUTF8FontFromBytes(pdfFont, "", fontRegular)
	f.AddUTF8FontFromBytes(pdfFont, "B", fontBold)
	f.SetCreationDate(r.Generated.UTC)
	f.SetModificationDate(r.Generated.UTC)
	f.SetCatalogSort(true)
	f.SetTitle("Delil raporu / Evidence report <"+r.HeaderID+">", true)
	f.SetCreator("kep", true)
	f.SetProducer("kep", true)
	f.AliasNbPages("{nb}")
	f.SetFooterFunc(func() {
		f.SetY(-12)
		f.SetFont(pdfFont, "", 7.5)
		f.SetTextColor(90, 90, 90)
		f.CellFormat(bodyW*0.75, 4, fmt.Sprintf("<%s> · %s", r.HeaderID, r.Generated.UTCString()), "", 0, "L", false, 0, "")
		f.CellFormat(bodyW*0.25, 4, fmt.Sprintf("Sayfa / Page %d/{nb}", f.PageNo()), "", 0, "R", false, 0, "")
		f.SetTextColor(0, 0, 0)
	})
	f.AddPage()

	// Heading, with the QR code at the right.
	textW := bodyW
	if r.QR != "" {
		png, err := r.QRPNG(512)
		if err != nil {
			return err
		}
		f.RegisterImageOptionsReader("qr", fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(png))
		f.ImageOptions("qr", pageW-margin-qrSide, margin, qrSide, qrSide, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, r.QR)
		textW = bodyW - qrSide - 4
	}
	f.SetFont(pdfFont, "B", 17)
	f.MultiCell(textW, 8, "Delil raporu / Evidence report", "", "L", false)
	f.SetFont(pdfFont, "", 9.5)
	f.MultiCell(textW, lineH+0.4, "Kayıtlı Elektronik Posta (KEP) · "+r.Provider, "", "L", false)
	f.MultiCell(textW, lineH+0.4, "Hazırlanma / Generated: "+r.Generated.LocalString(), "", "L", false)
	if r.QR != "" {
		f.SetFont(pdfFont, "", 7.5)
		f.MultiCell(textW, 3.8, "QR kod, ilk delilin özetini ve kayıt sırasını taşır; başka hiçbir bilgi içermez. / The QR code carries the first evidence's digest and log index, nothing else:", "", "L", false)
		f.MultiCell(textW, 3.8, r.QR, "", "L", false)
		if f.GetY() < margin+qrSide+2 {
			f.SetY(margin + qrSide + 2)
		}
	}
	f.Ln(2)

	section(f, "İleti / Message")
	sender := r.Sender.Address
	if r.Sender.Name != "" {
		sender = r.Sender.Name + " <" + r.Sender.Address + ">"
	}
	row(f, "Gönderen / Sender", sender)
	if r.Operator != nil {
		row(f, "İşlem yetkilisi / Operator", r.Operator.Name)
	}
	var rcpts string
	for i, p := range r.Recipients {
		if i > 0 {
			rcpts += "\n"
		}
		if p.Name != "" {
			rcpts += p.Name + " "
		}
		rcpts += "<" + p.Address + ">"
	}
	row(f, "Alıcılar / Recipients", rcpts)
	subject := r.Subject
	if subject == "" {
		subject = "— (delil konuyu taşımaz / evidence does not carry the subject)"
	}
	row(f, "Konu / Subject", subject)
	tip := r.IletiTip
	if tip == "" {
		tip = "standart"
	}
	row(f, "İleti tipi / Message type", tip)
	row(f, "Message-ID", "<"+r.HeaderID+">")
	if r.IletiID != "" {
		row(f, "İleti kimliği / iletiID", r.IletiID)
	}
	row(f, "Gönderim zamanı / Submitted", timeText(r.Submitted))
	row(f, "Asıl iletinin özeti / Digest of the original", r.DigestAlgorithm+" "+group(r.OriginalDigest))
	row(f, "Boyut / Size", fmt.Sprintf("%d bayt / bytes", r.Size))
	f.Ln(3)

	section(f, fmt.Sprintf("Deliller / Evidence (%d)", len(r.Evidence)))
	for _, it := range r.Evidence {
		evidenceBlock(f, it)
	}

	section(f, "Nasıl doğrulanır / How to verify")
	f.SetFont(pdfFont, "", 8.5)
	f.MultiCell(bodyW, lineH, "Her delil, düzenleyen hizmet sağlayıcının imzalı ve zaman damgalı delil paketidir (ZIP). Paketi, isterseniz asıl iletiyle birlikte, hizmet sağlayıcının /dogrula sayfasına yükleyin ya da çevrimdışı `kep verify PAKET --original ILETI.eml` komutunu çalıştırın. Bu rapordaki özetler paketteki delille ve iletiyle birebir aynı olmalıdır; kayıt sırası ve kontrol noktası, delilin hizmet sağlayıcının değiştirilemez kaydında (Merkle ağacı) yer aldığını gösterir.", "", "L", false)
	f.Ln(1)
	f.MultiCell(bodyW, lineH, "Each evidence is a signed, time-stamped bundle (ZIP) from the provider that issued it. Upload the bundle, with the original if you have it, at the provider's /dogrula page, or run `kep verify BUNDLE --original MESSAGE.eml` offline. The digests in this report must equal those of the evidence and the message; the log index and checkpoint show that the evidence is in the provider's append-only log (a Merkle tree).", "", "L", false)
	if err := f.Error(); err != nil {
		return err
	}
	return f.Output(w)
}

func section(f *fpdf.Fpdf, title string) {
	need(f, 14)
	f.SetFont(pdfFont, "B", 12)
	f.SetFillColor(235, 235, 235)
	f.CellFormat(bodyW, 7, title, "", 1, "L", true, 0, "")
	f.Ln(1.5)
}

// row writes a label and its value side by side, the value wrapping.
func row(f *fpdf.Fpdf, label, value string) {
	f.SetFont(pdfFont, "", 9)
	lines := len(f.SplitText(value, bodyW-labelW))
	f.SetFont(pdfFont, "B", 8.5)
	if l := len(f.SplitText(label, labelW-1)); l > lines {
		lines = l
	}
	need(f, float64(lines)*lineH+0.8)
	y := f.GetY()
	f.SetX(margin)
	f.MultiCell(labelW-1, lineH, label, "", "L", false)
	yl := f.GetY()
	f.SetXY(margin+labelW, y)
	f.SetFont(pdfFont, "", 9)
	f.MultiCell(bodyW-labelW, lineH, value, "", "L", false)
	f.SetY(max(yl, f.GetY()) + 0.8)
}

// need starts a new page when less than h millimetres are left.
func need(f *fpdf.Fpdf, h float64) {
	if f.GetY()+h > pageBreak {
		f.AddPage()
	}
}

func timeText(t Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.LocalString() + "\n" + t.UTCString()
}

func evidenceBlock(f *fpdf.Fpdf, it *Item) {
	need(f, 85) // a block (about 80 mm) on one page where it fits
	if it.Positive {
		f.SetDrawColor(42, 125, 42)
	} else {
		f.SetDrawColor(178, 34, 34)
	}
	f.SetLineWidth(0.8)
	top, page := f.GetY(), f.PageNo()
	f.SetFont(pdfFont, "B", 10.5)
	f.MultiCell(bodyW, 5.5, fmt.Sprintf("%d — %s / %s", int(it.Code), it.LabelTR, it.LabelEN), "", "L", false)
	f.Ln(0.5)
	row(f, "Zaman / Time", timeText(it.Time))
	issuer := it.Issuer
	if it.Foreign {
		issuer += " — alıcının hizmet sağlayıcısı / the recipient's provider"
	}
	row(f, "Düzenleyen / Issuer", issuer)
	if it.Concerns != "" {
		row(f, "İlgili alıcı / Recipient", it.Concerns)
	}
	if it.Reason != "" {
		row(f, "Gerekçe / Reason", it.Reason)
	}
	row(f, "Delil kimliği / Evidence ID", it.ID)
	row(f, "Delilin özeti / Digest of the evidence", "SHA-256 "+group(it.EvidenceDigest))
	row(f, "Asıl iletinin özeti / Digest of the original", group(it.OriginalDigest))
	index := fmt.Sprint(it.LogIndex)
	if it.Foreign {
		index += fmt.Sprintf(" (düzenleyenin kaydında / in the issuer's log; alındı kaydımız / our receipt: %d)", it.ReceiptIndex)
	}
	row(f, "Kayıt sırası / Log index", index)
	if cp := it.Checkpoint; cp != nil {
		text := fmt.Sprintf("%s · ağaç boyu / tree size %d\nkök / root %s", cp.Origin, cp.Size, cp.Root)
		if !cp.Stamped.IsZero() {
			text += "\nzaman damgası / time stamp: " + cp.Stamped.LocalString()
		}
		row(f, "Kontrol noktası / Checkpoint", text)
	} else {
		row(f, "Kontrol noktası / Checkpoint", "Henüz bir kontrol noktasında değil. / Not in a checkpoint yet.")
	}
	if it.VerifyURL != "" {
		row(f, "Doğrulama / Verify", it.VerifyURL)
	}
	if f.PageNo() == page { // a bar beside the block, green or red
		f.Line(margin-2, top, margin-2, f.GetY())
	}
	f.SetLineWidth(0.2)
	f.SetDrawColor(0, 0, 0)
	f.Ln(3)
}
