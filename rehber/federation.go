package rehber

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kephs/kep/directory"
)

// PeerClient asks other providers' Rehberi over HTTPS with mutual TLS: it
// presents this provider's certificate, and accepts a server only when the
// SubjectPublicKeyInfo pin of its certificate is one the directory lists
// for the provider being asked, in force now (docs/relay.md, "KEP Rehberi
// query"). No CA is consulted: the directory is the trust anchor, as for
// the relay.
type PeerClient struct {
	Cert tls.Certificate // this provider's TLS certificate and key
	Now  func() time.Time

	mu         sync.Mutex
	transports map[string]*http.Transport // by provider id and pins
}

func (c *PeerClient) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// transport returns a transport pinned to p's keys, reused while the
// directory lists the same pins.
func (c *PeerClient) transport(p *directory.Provider) *http.Transport {
	var key strings.Builder
	key.WriteString(p.ID)
	for _, pin := range p.TLSPins {
		key.WriteString(" " + pin.SPKISHA256)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.transports[key.String()]; t != nil {
		return t
	}
	prov := *p
	t := &http.Transport{
		TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{c.Cert},
			MinVersion:   tls.VersionTLS12,
			// The chain is not checked against a CA: the pin below is the
			// check (RFC 7469 pins, taken from the signed directory).
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("the provider presented no certificate")
				}
				if !prov.PinMatches(cs.PeerCertificates[0], c.now()) {
					return fmt.Errorf("the certificate of %s (pin %s) is not pinned for it in the provider directory",
						prov.ID, directory.SPKIPin(cs.PeerCertificates[0]))
				}
				return nil
			},
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}
	if c.transports == nil {
		c.transports = map[string]*http.Transport{}
	}
	c.transports[key.String()] = t
	return t
}

// Ask sends one query (path "organisations", a GET, or "persons", a POST
// with a form body) to provider p and returns its entries. Entries that name another provider, or an
// address at a domain p does not serve, are dropped: a provider answers
// for its own addresses only.
func (c *PeerClient) Ask(ctx context.Context, p *directory.Provider, path string, params url.Values) ([]Entry, error) {
	if p.Rehber == "" {
		return nil, errors.New("the provider directory lists no Rehberi endpoint for it")
	}
	base, err := url.Parse(p.Rehber)
	if err != nil || base.Scheme != "https" {
		return nil, fmt.Errorf("its Rehberi endpoint %q in the directory is not an https:// URL", p.Rehber)
	}
	u := base.JoinPath(path)
	var req *http.Request
	if path == "persons" {
		// The TCKN goes in the body, never in the URL.
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(params.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		u.RawQuery = params.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	}
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Transport: c.transport(p)}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var pr Problem
		if json.Unmarshal(body, &pr) == nil && pr.Code != "" {
			return nil, fmt.Errorf("refused: %s (%s)", pr.Code, pr.Detail)
		}
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	var ans Answer
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("unreadable answer: %v", err)
	}
	out := []Entry{}
	for _, e := range ans.Entries {
		_, domain, ok := strings.Cut(e.Address, "@")
		if e.Provider != p.ID || !ok || !p.Serves(domain) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// fanOut asks every other active provider of the directory concurrently,
// within the timeout, and adds their entries and outcomes to ans. Removed
// providers are not asked (nothing is exchanged with them after removal,
// docs/relay.md).
func (s *Service) fanOut(ctx context.Context, ans *Answer, path string, params url.Values) {
	if s.Directory == nil || s.Peers == nil {
		return
	}
	d := s.Directory()
	if d == nil {
		return
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	now := s.now()
	type result struct {
		id      string
		entries []Entry
		err     error
	}
	var peers []*directory.Provider
	for i := range d.Providers {
		p := &d.Providers[i]
		if p.ID != s.Provider && p.Active(now) {
			peers = append(peers, p)
		}
	}
	results := make([]result, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			es, err := s.Peers.Ask(ctx, p, path, params)
			results[i] = result{p.ID, es, err}
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			ans.Providers = append(ans.Providers, PeerOutcome{ID: r.id, Status: "failed", Error: r.err.Error()})
			continue
		}
		ans.Providers = append(ans.Providers, PeerOutcome{ID: r.id, Status: "ok"})
		ans.Entries = append(ans.Entries, r.entries...)
	}
}
