package web

import (
	"bytes"
	"crypto/x509"
	"errors"
	"html/template"
	"io"
	"net/textproto"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode the charsets mail uses, not only UTF-8
	"github.com/microcosm-cc/bluemonday"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/identity"
)

// A message as the message page shows it: the signed original's header
// and parts. Text is shown as text; HTML only after sanitising (no script,
// no style, no images or anything else that loads from elsewhere, links
// that open no referrer); every other part, and every part named as an
// attachment, is offered for download (as application/octet-stream, never
// rendered by the browser).

// view is a parsed message.
type view struct {
	Header      textproto.MIMEHeader
	Text        string
	HTML        template.HTML
	Attachments []attachment
	Signer      *signer // nil when the message is not signed
	SignerError string  // why the signature could not be checked
}

type attachment struct {
	Name        string
	ContentType string
	Size        int
	data        []byte
}

// signer is who signed the original, read from the signing certificate.
type signer struct {
	Name     string
	Identity string // the TCKN, masked (identity.Mask)
	Issuer   string
	Valid    string // the certificate's validity, for the page
}

// htmlPolicy keeps structure and links and drops everything that runs or
// loads: script, style, images, frames, forms, event handlers.
var htmlPolicy = func() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowElements("p", "br", "b", "i", "u", "s", "strong", "em", "small", "sub", "sup", "blockquote", "pre", "code",
		"ul", "ol", "li", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "div", "span",
		"table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption")
	p.AllowAttrs("href").OnElements("a")
	p.AllowURLSchemes("https", "http", "mailto")
	p.RequireParseableURLs(true)
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.AllowAttrs("colspan", "rowspan").Matching(bluemonday.Integer).OnElements("td", "th")
	return p
}()

// parseOriginal reads a message: a signed original (its signature checked
// for the signer's details; the access point checked the rest when it
// accepted the message), or an unsigned one (a draft, a provider notice,
// an evidence item).
func parseOriginal(raw []byte) *view {
	v := &view{}
	entity := raw
	signed, err := cms.Verify(raw)
	switch {
	case err == nil:
		v.Header = signed.Header
		entity = signed.Content
		v.Signer = signerOf(signed.Signer)
	default:
		if !errors.Is(err, cms.ErrNotSigned) {
			v.SignerError = err.Error()
		}
	}
	e, err := message.Read(bytes.NewReader(entity))
	if e == nil {
		v.Text = string(entity)
		return v
	}
	if v.Header == nil {
		v.Header = textproto.MIMEHeader(e.Header.Header.Map())
	}
	_ = err // an unknown charset still yields the raw bytes
	walk(e, v, 0)
	return v
}

func signerOf(c *x509.Certificate) *signer {
	if c == nil {
		return nil
	}
	s := &signer{Name: c.Subject.CommonName, Issuer: c.Issuer.CommonName,
		Valid: c.NotBefore.Format("02.01.2006") + " – " + c.NotAfter.Format("02.01.2006")}
	if t, err := identity.TCKNFromCertificate(c); err == nil {
		s.Identity = "TCKN " + identity.Mask(t)
	}
	return s
}

const maxDepth = 10

func walk(e *message.Entity, v *view, depth int) {
	if depth > maxDepth {
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err != nil {
				return
			}
			walk(p, v, depth+1)
		}
	}
	ct, params, _ := e.Header.ContentType()
	disp, dparams, _ := e.Header.ContentDisposition()
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	body, _ := io.ReadAll(io.LimitReader(e.Body, 200<<20))
	switch {
	case disp != "attachment" && name == "" && ct == "text/plain" && v.Text == "":
		v.Text = strings.ToValidUTF8(string(body), "\uFFFD")
	case disp != "attachment" && name == "" && ct == "text/html" && v.HTML == "":
		v.HTML = template.HTML(htmlPolicy.SanitizeBytes(body))
	case strings.HasPrefix(ct, "multipart/"):
	default:
		if name == "" {
			name = "ek"
		}
		if !utf8.ValidString(name) {
			name = strings.ToValidUTF8(name, "_")
		}
		v.Attachments = append(v.Attachments, attachment{Name: name, ContentType: ct, Size: len(body), data: body})
	}
}
