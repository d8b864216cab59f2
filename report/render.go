package report

import (
	"bytes"
	"embed"
	"html/template"
	"io"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

//go:embed templates/report.html
var templateFS embed.FS

//go:embed static/report.css
var stylesheet []byte

var pageTemplate = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"group": group,
}).ParseFS(templateFS, "templates/report.html"))

// QRPNG draws the QR code of the report (r.QR) as a PNG image of size
// pixels; nil when the report has nothing to encode yet.
func (r *Report) QRPNG(size int) ([]byte, error) {
	if r.QR == "" {
		return nil, nil
	}
	return qrcode.Encode(r.QR, qrcode.Medium, size)
}

// WriteHTML writes the printable page. qrSrc is the address the page
// loads the QR image from (no data: URL, so that a strict
// Content-Security-Policy with img-src 'self' allows it); "" leaves it out.
func (r *Report) WriteHTML(w io.Writer, qrSrc string) error {
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, struct {
		*Report
		QRSrc string
	}{r, qrSrc}); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// group writes a hex digest in groups of eight, so that a person can
// compare it by eye and a line can break between groups.
func group(hex string) string {
	var b strings.Builder
	for i := 0; i < len(hex); i += 8 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(hex[i:min(i+8, len(hex))])
	}
	return b.String()
}
