package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// maxReplyBytes bounds a TSA's answer; tokens with a chain are a few KB.
const maxReplyBytes = 1 << 20

var defaultHTTPClient = &http.Client{Timeout: 30 * time.Second}

// Client asks an RFC 3161 TSA over HTTP (RFC 3161 §3.4) for time-stamp
// tokens and checks what comes back. Use NewClient for the defaults; the zero
// value of Certificates (false) asks the TSA not to include its certificate,
// and Verify then needs it in Intermediates. A Client is safe for concurrent
// use once configured.
type Client struct {
	URL        string
	HTTPClient *http.Client // nil: a client with a 30 s timeout
	Hash       crypto.Hash  // imprint hash; 0 means SHA-256
	// Policy, when set, is sent as reqPolicy and the token must carry it.
	Policy asn1.ObjectIdentifier
	// Certificates sets certReq: the TSA puts its certificate in the token
	// (RFC 3161 §2.4.1). NewClient sets it.
	Certificates bool
	// Username and Password, when Username is set, go as HTTP basic auth.
	// Header is added to every request (TSAs with their own account schemes,
	// such as Kamu SM's, take the credentials in headers).
	Username, Password string
	Header             http.Header
	// Roots and Intermediates are what tokens are verified against
	// (Token.Verify); nil Roots means the system roots.
	Roots         *x509.CertPool
	Intermediates []*x509.Certificate
}

// NewClient returns a Client for the TSA at url with SHA-256 imprints and
// certReq set.
func NewClient(url string) *Client {
	return &Client{URL: url, Hash: crypto.SHA256, Certificates: true}
}

func (c *Client) hash() crypto.Hash {
	if c.Hash == 0 {
		return crypto.SHA256
	}
	return c.Hash
}

// TimestampData hashes data with the client's hash and time-stamps it.
func (c *Client) TimestampData(ctx context.Context, data []byte) (*Token, error) {
	h := c.hash()
	if !h.Available() {
		return nil, fmt.Errorf("tsa: hash %v not available", h)
	}
	d := h.New()
	d.Write(data)
	return c.Timestamp(ctx, d.Sum(nil))
}

// Timestamp asks the TSA to time-stamp digest (made with the client's hash)
// and returns the token after checking the response: HTTP status, PKIStatus,
// nonce, message imprint, policy, and Token.Verify against Roots.
//
// Errors: ErrUnreachable (with the net or context error), *HTTPError,
// *RefusedError, ErrMalformed, ErrNonceMismatch, ErrImprintMismatch, and
// Verify's ErrBadSignature, ErrNotTSACertificate, ErrUntrustedTSA.
func (c *Client) Timestamp(ctx context.Context, digest []byte) (*Token, error) {
	h := c.hash()
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("tsa: digest is %d bytes, %v makes %d", len(digest), h, h.Size())
	}
	// RFC 3161 §2.4.1: a nonce lets the client tell a fresh answer from a
	// replayed one; 64 random bits, as OpenSSL sends.
	var nb [8]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return nil, err
	}
	nonce := new(big.Int).SetBytes(nb[:])
	query, err := (&Request{
		HashAlgorithm: h,
		HashedMessage: digest,
		Certificates:  c.Certificates,
		TSAPolicyOID:  c.Policy,
		Nonce:         nonce,
	}).Marshal()
	if err != nil {
		return nil, fmt.Errorf("tsa: encode request: %w", err)
	}

	body, err := c.post(ctx, query)
	if err != nil {
		return nil, err
	}
	tok, err := ParseResponse(body)
	if err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, c.URL)
	}

	// RFC 3161 §2.4.2: the nonce and the imprint must be the request's.
	if tok.Nonce == nil || tok.Nonce.Cmp(nonce) != 0 {
		return nil, fmt.Errorf("%w: sent %v, TSA %s answered %v", ErrNonceMismatch, nonce, c.URL, tok.Nonce)
	}
	if tok.HashAlg != h || !bytes.Equal(tok.HashedMessage, digest) {
		return nil, fmt.Errorf("%w: asked %s to stamp %v %s, token covers %v %s", ErrImprintMismatch, c.URL, h, shortHex(digest), tok.HashAlg, shortHex(tok.HashedMessage))
	}
	if len(c.Policy) > 0 && !tok.Policy.Equal(c.Policy) {
		return nil, fmt.Errorf("tsa: asked %s for policy %s, token is under %s", c.URL, c.Policy, tok.Policy)
	}
	if err := tok.Verify(digest, c.Roots, c.Intermediates); err != nil {
		return nil, err
	}
	return tok, nil
}

func (c *Client) post(ctx context.Context, query []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(query))
	if err != nil {
		return nil, fmt.Errorf("tsa: bad TSA URL %q: %w", c.URL, err)
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", QueryMediaType)
	req.Header.Set("Accept", ReplyMediaType)
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error // says "Post URL: ..." again
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, c.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: reading the answer: %w", ErrUnreachable, c.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPError{URL: c.URL, StatusCode: resp.StatusCode, Status: resp.Status,
			ContentType: resp.Header.Get("Content-Type"), Body: printable(body)}
	}
	if len(body) > maxReplyBytes {
		return nil, malformed("answer from %s is over %d bytes", c.URL, maxReplyBytes)
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/") {
		// A login page or proxy error sent with 200: say so rather than
		// "asn1: structure error".
		return nil, malformed("%s answered %s, not %s: %s", c.URL, ct, ReplyMediaType, printable(body))
	}
	return body, nil
}

// printable returns the start of an HTTP body for an error message, or
// nothing if it is binary.
func printable(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	if !utf8.Valid(b) || bytes.ContainsRune(b, 0) {
		return ""
	}
	return strings.TrimSpace(string(b))
}
