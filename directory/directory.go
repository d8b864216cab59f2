// Package directory is in charge of the provider directory: the
// authority's signed, versioned list of the licensed KEP providers, with
// what one provider needs to trust another — domains, relay endpoint, TLS
// certificate pins, envelope and evidence signing certificates, and log
// verifier keys, each with its validity window (docs/relay.md,
// "Directory"; kep-rules.md, "Closed system"; in the manner of the REM
// Trusted List of ETSI TS 102 640-1 and PEC's "indice dei gestori").
//
// The directory is a JSON document carried as the text of a C2SP signed
// note (https://c2sp.org/signed-note) signed by the authority's Ed25519
// key, so that any implementation can check it with the authority's
// verifier key alone. A removed provider stays in the directory with the
// time it was removed, so that evidence it signed still verifies decades
// later.
package directory

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Format names this document's layout; a verifier refuses others.
const Format = "kep-directory/1"

// Errors a directory check returns (wrapped with details).
var (
	ErrSignature = errors.New("directory: signature does not verify with the authority's key")
	ErrMalformed = errors.New("directory: malformed")
	ErrRollback  = errors.New("directory: older than the newest version seen")
)

// Directory is one signed version of the provider directory.
type Directory struct {
	Format    string     `json:"format"`
	Authority string     `json:"authority"` // who publishes it (BTK's role)
	Version   uint64     `json:"version"`   // grows with every signed edition
	IssuedAt  time.Time  `json:"issued_at"`
	Providers []Provider `json:"providers"`
}

// Window is a validity period; a zero NotAfter is open-ended.
type Window struct {
	NotBefore time.Time  `json:"not_before"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
}

// Covers reports whether t falls in the window.
func (w Window) Covers(t time.Time) bool {
	return !t.Before(w.NotBefore) && (w.NotAfter == nil || !t.After(*w.NotAfter))
}

// Pin is a TLS certificate pin: the SHA-256 of a certificate's
// SubjectPublicKeyInfo (as in RFC 7469), in standard base64.
type Pin struct {
	SPKISHA256 string `json:"spki_sha256"`
	Window
}

// Certificate is a signing certificate of a provider.
type Certificate struct {
	Use []string `json:"use"` // "envelope", "evidence"
	DER []byte   `json:"der"` // base64 in JSON
	Window
}

// Certificate uses.
const (
	UseEnvelope = "envelope"
	UseEvidence = "evidence"
)

// LogKey is a verifier key of a provider's evidence log (C2SP signed-note
// verifier key of its checkpoints).
type LogKey struct {
	Key string `json:"key"`
	Window
}

// Provider is one licensed provider (KEPHS).
type Provider struct {
	ID   string `json:"id"`   // hsNN
	Name string `json:"name"` // as licensed
	// Domains the provider serves. Each also covers every subdomain
	// (*.domain), so that an institutional address such as
	// x@acme.hs01.kep.tr needs no new directory.
	Domains      []string      `json:"domains"`
	Relay        string        `json:"relay"`            // host:port of the reception point (SMTP over mutual TLS)
	Rehber       string        `json:"rehber,omitempty"` // HTTPS base URL of its KEP Rehberi query endpoint
	TLSPins      []Pin         `json:"tls_pins"`
	Certificates []Certificate `json:"certificates"`
	LogKeys      []LogKey      `json:"log_keys"`
	Added        time.Time     `json:"added"`
	Removed      *time.Time    `json:"removed,omitempty"` // when its licence ended; its history stays
}

var providerID = regexp.MustCompile(`^hs[0-9]{2,3}$`)

// Active reports whether the provider may exchange messages at t.
func (p *Provider) Active(t time.Time) bool {
	return !t.Before(p.Added) && (p.Removed == nil || t.Before(*p.Removed))
}

// Serves reports whether domain is one of the provider's domains or a
// subdomain of one.
func (p *Provider) Serves(domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, d := range p.Domains {
		if domain == d || strings.HasSuffix(domain, "."+d) {
			return true
		}
	}
	return false
}

// PinMatches reports whether cert's public key is pinned for the provider
// at t.
func (p *Provider) PinMatches(cert *x509.Certificate, t time.Time) bool {
	h := SPKIPin(cert)
	for _, pin := range p.TLSPins {
		if pin.SPKISHA256 == h && pin.Covers(t) {
			return true
		}
	}
	return false
}

// SPKIPin is the pin of a certificate: base64 of the SHA-256 of its
// SubjectPublicKeyInfo.
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// SigningCertificates returns the provider's certificates for use that
// were valid in the directory at t (the time the signature claims, e.g.
// the evidence's event time), parsed.
func (p *Provider) SigningCertificates(use string, t time.Time) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range p.Certificates {
		if !c.Covers(t) || !contains(c.Use, use) {
			continue
		}
		if cert, err := x509.ParseCertificate(c.DER); err == nil {
			out = append(out, cert)
		}
	}
	return out
}

// LogVerifiers returns the provider's log verifier keys valid at t.
func (p *Provider) LogVerifiers(t time.Time) []string {
	var out []string
	for _, k := range p.LogKeys {
		if k.Covers(t) {
			out = append(out, k.Key)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ProviderFor returns the provider that serves domain, whether or not it is
// active (callers check Active at the time that matters to them).
func (d *Directory) ProviderFor(domain string) *Provider {
	var best *Provider
	bestLen := -1
	for i := range d.Providers {
		p := &d.Providers[i]
		for _, dom := range p.Domains {
			dl := strings.ToLower(strings.TrimSuffix(domain, "."))
			if (dl == dom || strings.HasSuffix(dl, "."+dom)) && len(dom) > bestLen {
				best, bestLen = p, len(dom)
			}
		}
	}
	return best
}

// Provider returns the provider with the given id, or nil.
func (d *Directory) Provider(id string) *Provider {
	for i := range d.Providers {
		if d.Providers[i].ID == id {
			return &d.Providers[i]
		}
	}
	return nil
}

// Validate checks the directory's own consistency: known format, provider
// ids of the form hsNN and unique, domains lower-case and claimed by one
// provider only, every provider with a relay endpoint, at least one pin,
// signing certificate and log key, and windows that parse.
func (d *Directory) Validate() error {
	if d.Format != Format {
		return fmt.Errorf("%w: format %q, want %q", ErrMalformed, d.Format, Format)
	}
	ids := map[string]bool{}
	domains := map[string]string{}
	for _, p := range d.Providers {
		if !providerID.MatchString(p.ID) {
			return fmt.Errorf("%w: provider id %q is not hsNN", ErrMalformed, p.ID)
		}
		if ids[p.ID] {
			return fmt.Errorf("%w: provider %s listed twice", ErrMalformed, p.ID)
		}
		ids[p.ID] = true
		if len(p.Domains) == 0 {
			return fmt.Errorf("%w: provider %s has no domain", ErrMalformed, p.ID)
		}
		for _, dom := range p.Domains {
			if dom != strings.ToLower(dom) || strings.Trim(dom, ".") != dom || !strings.Contains(dom, ".") {
				return fmt.Errorf("%w: provider %s: domain %q must be a lower-case name without trailing dot", ErrMalformed, p.ID, dom)
			}
			if other, ok := domains[dom]; ok {
				return fmt.Errorf("%w: domain %s claimed by %s and %s", ErrMalformed, dom, other, p.ID)
			}
			domains[dom] = p.ID
		}
		if p.Relay == "" || len(p.TLSPins) == 0 || len(p.LogKeys) == 0 {
			return fmt.Errorf("%w: provider %s needs a relay endpoint, a TLS pin and a log key", ErrMalformed, p.ID)
		}
		for _, c := range p.Certificates {
			if _, err := x509.ParseCertificate(c.DER); err != nil {
				return fmt.Errorf("%w: provider %s: certificate: %v", ErrMalformed, p.ID, err)
			}
		}
		if len(p.Certificates) == 0 {
			return fmt.Errorf("%w: provider %s has no signing certificate", ErrMalformed, p.ID)
		}
		for _, k := range p.LogKeys {
			if _, err := note.NewVerifier(k.Key); err != nil {
				return fmt.Errorf("%w: provider %s: log key: %v", ErrMalformed, p.ID, err)
			}
		}
	}
	return nil
}

// Marshal returns the directory's canonical JSON text: providers sorted by
// id, two-space indentation, a final newline.
func (d *Directory) Marshal() ([]byte, error) {
	c := *d
	c.Providers = append([]Provider(nil), d.Providers...)
	sort.Slice(c.Providers, func(i, j int) bool { return c.Providers[i].ID < c.Providers[j].ID })
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Sign returns the directory as a signed note.
func (d *Directory) Sign(s note.Signer) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	text, err := d.Marshal()
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(text)}, s)
}

// Open verifies a signed directory with the authority's verifier keys
// (several during a key rollover) and parses it strictly.
func Open(signed []byte, authorityKeys ...string) (*Directory, error) {
	var vs []note.Verifier
	for _, k := range authorityKeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("directory: authority key: %w", err)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, errors.New("directory: no authority key configured")
	}
	n, err := note.Open(signed, note.VerifierList(vs...))
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrSignature, err)
	}
	dec := json.NewDecoder(strings.NewReader(n.Text))
	dec.DisallowUnknownFields()
	var d Directory
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}
