package cms

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/textproto"
	"strings"
)

// Verify checks the S/MIME signature of msg, a whole RFC 5322 message with
// CRLF or bare-LF line breaks, and returns the signed content and signer.
//
// Accepted forms (RFC 8551 §3.5):
//   - multipart/signed with protocol application/pkcs7-signature (or the
//     x- variant) and a detached CMS signature in the second part (RFC 1847);
//   - application/pkcs7-mime (or x-pkcs7-mime, or a *.p7m octet stream) with
//     smime-type=signed-data and encapsulated content.
//
// Verify checks only that every signature is mathematically valid over the
// content with a certificate the signature carries. It does not check the
// certificate chain, validity period, key usage or the signer's identity:
// build x509.VerifyOptions from Signed.Signer, Signed.Intermediates and
// Signed.SigningTime (package identity does).
//
// Errors wrap ErrNotSigned, ErrEncrypted, ErrBadSignature, ErrNoSignerCert,
// ErrMalformed or ErrUnsupportedAlgorithm.
func Verify(msg []byte) (*Signed, error) {
	rawHeader, body := splitHeader(msg)
	header, err := parseHeader(rawHeader)
	if err != nil {
		return nil, malformed("message header: %v", err)
	}
	ct := header.Get("Content-Type")
	if ct == "" {
		return nil, wrap(ErrNotSigned, "no Content-Type (plain text)")
	}
	mt, params, perr := mime.ParseMediaType(ct)
	switch {
	case mt == "multipart/signed":
		if perr != nil {
			return nil, malformed("Content-Type %q: %v", ct, perr)
		}
		return verifyMultipartSigned(header, body, params)
	case isPKCS7Mime(mt, params, header):
		if perr != nil {
			return nil, malformed("Content-Type %q: %v", ct, perr)
		}
		return verifyPKCS7Mime(header, body, params)
	case mt == "":
		return nil, malformed("Content-Type %q: %v", ct, perr)
	}
	return nil, wrap(ErrNotSigned, "its content type is %s", mt)
}

func isPKCS7Signature(mt string) bool {
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/pkcs7-signature" || mt == "application/x-pkcs7-signature"
}

// isPKCS7Mime recognises application/pkcs7-mime, its x- variant, and the
// application/octet-stream with a .p7m name some agents send (RFC 8551 §3.2.2).
func isPKCS7Mime(mt string, params map[string]string, h textproto.MIMEHeader) bool {
	switch mt {
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		return true
	case "application/octet-stream":
		name := params["name"]
		if _, dp, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && dp["filename"] != "" {
			name = dp["filename"]
		}
		return strings.HasSuffix(strings.ToLower(name), ".p7m")
	}
	return false
}

func verifyMultipartSigned(header textproto.MIMEHeader, body []byte, params map[string]string) (*Signed, error) {
	protocol := params["protocol"]
	if protocol != "" && !isPKCS7Signature(protocol) {
		return nil, wrap(ErrNotSigned, "multipart/signed with protocol %q is not S/MIME", protocol)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, malformed("multipart/signed without a boundary")
	}
	parts, err := splitMultipart(body, boundary)
	if err != nil {
		return nil, malformed("multipart/signed: %v", err)
	}
	if len(parts) != 2 {
		return nil, malformed("multipart/signed has %d parts, want 2 (RFC 1847 §2.1)", len(parts))
	}
	rawSigHeader, sigBody := splitHeader(parts[1])
	sigHeader, err := parseHeader(rawSigHeader)
	if err != nil {
		return nil, malformed("signature part header: %v", err)
	}
	if st, _, _ := mime.ParseMediaType(sigHeader.Get("Content-Type")); !isPKCS7Signature(st) {
		if protocol == "" {
			return nil, wrap(ErrNotSigned, "multipart/signed whose signature part is %q", st)
		}
		return nil, malformed("the signature part is %q, not application/pkcs7-signature", st)
	}
	sig, err := decodeTransfer(sigBody, sigHeader.Get("Content-Transfer-Encoding"))
	if err != nil {
		return nil, malformed("signature part: %v", err)
	}

	// The signed bytes are the first part exactly, with CRLF line breaks
	// (RFC 8551 §3.1.1; openssl converts to CRLF itself). When that fails on
	// the digest and the part had bare LFs, the signer may have signed the
	// bytes as they are (openssl -binary): try those.
	raw := parts[0]
	content := toCRLF(raw)
	v, err := verifySignedData(sig, true, content)
	var dm digestMismatchError
	if err != nil && errors.As(err, &dm) && len(content) != len(raw) {
		if v2, err2 := verifySignedData(sig, true, raw); err2 == nil {
			v, err, content = v2, nil, raw
		}
	}
	if err != nil {
		return nil, err
	}
	return newSigned(header, content, true, sig, v), nil
}

func verifyPKCS7Mime(header textproto.MIMEHeader, body []byte, params map[string]string) (*Signed, error) {
	switch st := strings.ToLower(params["smime-type"]); st {
	case "enveloped-data", "authenveloped-data":
		return nil, wrap(ErrEncrypted, "smime-type=%s", st)
	case "certs-only", "compressed-data":
		return nil, wrap(ErrNotSigned, "smime-type=%s", st)
	}
	// Without smime-type (or with an unknown one) the CMS content type decides.
	sig, err := decodeTransfer(body, header.Get("Content-Transfer-Encoding"))
	if err != nil {
		return nil, malformed("application/pkcs7-mime body: %v", err)
	}
	v, err := verifySignedData(sig, false, nil)
	if err != nil {
		return nil, err
	}
	return newSigned(header, v.content, false, sig, v), nil
}

func newSigned(header textproto.MIMEHeader, content []byte, detached bool, sig []byte, v *verifiedData) *Signed {
	first := v.signers[0]
	return &Signed{
		Header:          header,
		Content:         content,
		Detached:        detached,
		Signer:          first.Certificate,
		Certificates:    v.certs,
		SigningTime:     first.SigningTime,
		DigestAlgorithm: first.DigestAlgorithm,
		Signers:         v.signers,
		Signature:       sig,
	}
}

// splitHeader splits an RFC 5322 message or MIME entity at the first empty
// line. The header keeps its line breaks; the body starts after the empty line.
func splitHeader(b []byte) (header, body []byte) {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return b, nil
		}
		line := b[i : i+j]
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return b[:i], b[i+j+1:]
		}
		i += j + 1
	}
	return b, nil
}

func parseHeader(raw []byte) (textproto.MIMEHeader, error) {
	r := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(raw), strings.NewReader("\r\n\r\n"))))
	h, err := r.ReadMIMEHeader()
	if err != nil {
		return nil, err
	}
	return h, nil
}

// splitMultipart returns the parts of a multipart body (RFC 2046 §5.1.1). A
// part runs from after its delimiter line's line break up to, not including,
// the line break before the next delimiter: for multipart/signed those are
// exactly the signed bytes (RFC 1847 §2.1). The preamble and epilogue are
// dropped; the close delimiter is required.
func splitMultipart(body []byte, boundary string) ([][]byte, error) {
	if len(boundary) > 200 {
		return nil, errors.New("boundary longer than 200 characters")
	}
	delim := []byte("--" + boundary)
	var parts [][]byte
	partStart := -1
	for pos := 0; pos < len(body); {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			break
		}
		i += pos
		after := i + len(delim)
		if i > 0 && body[i-1] != '\n' { // a delimiter starts a line
			pos = i + 1
			continue
		}
		lineEnd, next := len(body), len(body)
		if eol := bytes.IndexByte(body[after:], '\n'); eol >= 0 {
			lineEnd, next = after+eol, after+eol+1
		}
		tail := bytes.TrimRight(body[after:lineEnd], "\r")
		closing := bytes.HasPrefix(tail, []byte("--"))
		if closing {
			tail = tail[2:]
		}
		if len(bytes.Trim(tail, " \t")) != 0 { // "--boundaryXYZ": not ours
			pos = after
			continue
		}
		if partStart >= 0 {
			end := i
			if end > partStart && body[end-1] == '\n' {
				end--
				if end > partStart && body[end-1] == '\r' {
					end--
				}
			}
			parts = append(parts, body[partStart:end])
		}
		if closing {
			if partStart < 0 {
				return nil, errors.New("close delimiter before the first part")
			}
			return parts, nil
		}
		partStart, pos = next, next
	}
	if partStart < 0 {
		return nil, errors.New("boundary not found")
	}
	return nil, errors.New("no closing boundary")
}

// decodeTransfer undoes the Content-Transfer-Encoding of a CMS body.
func decodeTransfer(b []byte, cte string) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return decodeBase64(b)
	case "", "7bit", "8bit", "binary":
		if len(b) > 0 && b[0] == 0x30 { // raw DER/BER SEQUENCE
			return b, nil
		}
		return decodeBase64(b) // agents that forget the header
	}
	return nil, errors.New("unsupported Content-Transfer-Encoding " + cte)
}

// decodeBase64 decodes base64 that may be broken into lines and carry
// transport padding. The standard decoder already skips CR and LF.
func decodeBase64(b []byte) ([]byte, error) {
	if bytes.ContainsAny(b, " \t") {
		b = bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, b)
	}
	dst := make([]byte, base64.RawStdEncoding.DecodedLen(len(b))) // ≥ the padded size
	n, err := base64.StdEncoding.Decode(dst, b)
	if err != nil {
		// Some agents drop the padding.
		trimmed := bytes.TrimRight(bytes.TrimSpace(b), "=")
		n, err = base64.RawStdEncoding.Decode(dst, trimmed)
		if err != nil {
			return nil, errors.New("bad base64")
		}
	}
	if n == 0 {
		return nil, errors.New("empty")
	}
	return dst[:n], nil
}

// toCRLF turns every bare LF into CRLF (RFC 8551 §3.1.1 canonical form). It
// returns b itself when there is nothing to change.
func toCRLF(b []byte) []byte {
	bare := 0
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		if i+j == 0 || b[i+j-1] != '\r' {
			bare++
		}
		i += j + 1
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for len(b) > 0 {
		j := bytes.IndexByte(b, '\n')
		if j < 0 {
			return append(out, b...)
		}
		out = append(out, b[:j]...)
		if j == 0 || b[j-1] != '\r' { // b[j-1] is in this chunk: j == 0 follows an LF
			out = append(out, '\r')
		}
		out = append(out, '\n')
		b = b[j+1:]
	}
	return out
}
