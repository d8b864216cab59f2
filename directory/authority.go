package directory

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Authority is the authority's working directory on disk (the role BTK
// plays): its signing key, the editable directory, and the last signed
// edition that providers fetch.
//
//	authority.key     the note signer key (secret)
//	authority.pub     the note verifier key, which providers configure
//	directory.json    the working copy, edited by add-provider / remove-provider
//	directory.note    the signed edition, published
type Authority struct {
	Dir string
}

// Files of an authority directory.
const (
	KeyFile       = "authority.key"
	PubFile       = "authority.pub"
	WorkingFile   = "directory.json"
	PublishedFile = "directory.note"
)

// InitAuthority creates an authority directory with a new Ed25519 key and
// an empty directory (version 0, unsigned).
func InitAuthority(dir, name string) (*Authority, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
		return nil, fmt.Errorf("%s already holds an authority key", dir)
	}
	keyName := strings.Map(func(r rune) rune {
		if r == ' ' || r == '+' {
			return '-'
		}
		return r
	}, name)
	skey, vkey, err := note.GenerateKey(rand.Reader, keyName)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte(skey+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, PubFile), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	a := &Authority{Dir: dir}
	return a, a.save(&Directory{Format: Format, Authority: name})
}

// VerifierKey returns the authority's public verifier key.
func (a *Authority) VerifierKey() (string, error) {
	b, err := os.ReadFile(filepath.Join(a.Dir, PubFile))
	return strings.TrimSpace(string(b)), err
}

// Working returns the editable directory.
func (a *Authority) Working() (*Directory, error) {
	b, err := os.ReadFile(filepath.Join(a.Dir, WorkingFile))
	if err != nil {
		return nil, err
	}
	var d Directory
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", WorkingFile, err)
	}
	return &d, nil
}

func (a *Authority) save(d *Directory) error {
	b, err := d.Marshal()
	if err != nil {
		return err
	}
	tmp := filepath.Join(a.Dir, WorkingFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(a.Dir, WorkingFile))
}

// ProviderEntry is what add-provider needs to list a provider.
type ProviderEntry struct {
	ID, Name     string
	Domains      []string
	Relay        string
	Rehber       string
	TLSCerts     []*x509.Certificate // certificates whose keys the provider presents in TLS
	SigningCerts []*x509.Certificate // envelope and evidence signing certificates
	LogKey       string              // the log's note verifier key
}

// AddProvider lists a new provider, or adds keys, pins and certificates to
// one already listed (a key rollover: old ones stay, with their windows).
// Pins and certificates take the certificates' own validity as windows.
func (a *Authority) AddProvider(e ProviderEntry, now time.Time) error {
	d, err := a.Working()
	if err != nil {
		return err
	}
	p := d.Provider(e.ID)
	if p == nil {
		d.Providers = append(d.Providers, Provider{ID: e.ID, Added: now.UTC().Truncate(time.Second)})
		p = &d.Providers[len(d.Providers)-1]
	}
	if p.Removed != nil {
		return fmt.Errorf("provider %s was removed on %s; its id is not reused", e.ID, p.Removed.Format(time.RFC3339))
	}
	if e.Name != "" {
		p.Name = e.Name
	}
	for _, dom := range e.Domains {
		dom = strings.ToLower(strings.TrimSuffix(dom, "."))
		if !contains(p.Domains, dom) {
			p.Domains = append(p.Domains, dom)
		}
	}
	if e.Relay != "" {
		p.Relay = e.Relay
	}
	if e.Rehber != "" {
		p.Rehber = e.Rehber
	}
	for _, c := range e.TLSCerts {
		pin := SPKIPin(c)
		seen := false
		for _, old := range p.TLSPins {
			seen = seen || old.SPKISHA256 == pin
		}
		if !seen {
			p.TLSPins = append(p.TLSPins, Pin{SPKISHA256: pin, Window: certWindow(c)})
		}
	}
	for _, c := range e.SigningCerts {
		seen := false
		for _, old := range p.Certificates {
			seen = seen || string(old.DER) == string(c.Raw)
		}
		if !seen {
			p.Certificates = append(p.Certificates, Certificate{Use: []string{UseEnvelope, UseEvidence}, DER: c.Raw, Window: certWindow(c)})
		}
	}
	if e.LogKey != "" {
		seen := false
		for _, old := range p.LogKeys {
			seen = seen || old.Key == e.LogKey
		}
		if !seen {
			p.LogKeys = append(p.LogKeys, LogKey{Key: e.LogKey, Window: Window{NotBefore: now.UTC().Truncate(time.Second)}})
		}
	}
	if err := d.Validate(); err != nil {
		return err
	}
	return a.save(d)
}

func certWindow(c *x509.Certificate) Window {
	na := c.NotAfter.UTC()
	return Window{NotBefore: c.NotBefore.UTC(), NotAfter: &na}
}

// RemoveProvider marks a provider removed from now on. Its entry stays, so
// that what it signed before still verifies.
func (a *Authority) RemoveProvider(id string, now time.Time) error {
	d, err := a.Working()
	if err != nil {
		return err
	}
	p := d.Provider(id)
	if p == nil {
		return fmt.Errorf("no provider %s in the directory", id)
	}
	if p.Removed != nil {
		return fmt.Errorf("provider %s was already removed on %s", id, p.Removed.Format(time.RFC3339))
	}
	t := now.UTC().Truncate(time.Second)
	p.Removed = &t
	return a.save(d)
}

// Sign signs the working directory as the next version and publishes it
// as directory.note; it returns the signed bytes.
func (a *Authority) Sign(now time.Time) ([]byte, error) {
	d, err := a.Working()
	if err != nil {
		return nil, err
	}
	skey, err := os.ReadFile(filepath.Join(a.Dir, KeyFile))
	if err != nil {
		return nil, err
	}
	s, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, err
	}
	d.Version++
	d.IssuedAt = now.UTC().Truncate(time.Second)
	if len(d.Providers) == 0 {
		return nil, errors.New("the directory lists no provider yet: add one first")
	}
	signed, err := d.Sign(s)
	if err != nil {
		return nil, err
	}
	if err := a.save(d); err != nil {
		return nil, err
	}
	tmp := filepath.Join(a.Dir, PublishedFile+".tmp")
	if err := os.WriteFile(tmp, signed, 0o644); err != nil {
		return nil, err
	}
	return signed, os.Rename(tmp, filepath.Join(a.Dir, PublishedFile))
}
