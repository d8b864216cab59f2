package node

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/kephs/kep/provider"
)

// Set-up without guesswork (issue 10.2; docs/mail-clients.md): the HTTPS
// listener serves what a mail client needs to configure itself, with the
// node's real hostname and ports:
//
//   - Thunderbird's autoconfig, /.well-known/autoconfig/mail/config-v1.1.xml
//     and /mail/config-v1.1.xml?emailaddress=… (the format of
//     https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat);
//   - the provider CA's certificate, /ca.pem (PEM, application/x-pem-file)
//     and /ca.crt (DER, application/pkix-cert, RFC 2585 §4.1), which a
//     client imports to trust both the TLS certificate and the provider's
//     S/MIME signature on every envelope.

// clientSetup is what the set-up endpoints tell clients.
type clientSetup struct {
	domain   string // the provider's KEP domain; its subdomains are the provider's too
	name     string // the provider's name
	hostname string // the host clients connect to (smtp.hostname)
	ports    struct{ imaps, imap, submissions, submission int }
	caPEM    []byte // the provider CA, PEM; nil when the node has none to give
}

// newClientSetup reads the node's set-up from its configuration, its
// certificate and the addresses it listens on.
func newClientSetup(n *provider.Node, ep Endpoints) *clientSetup {
	cfg := n.Config
	cs := &clientSetup{domain: strings.ToLower(cfg.Provider.Domain), name: cfg.Provider.Name, hostname: cfg.SMTP.Hostname}
	cs.ports.imaps, cs.ports.imap = portOf(ep.IMAPS), portOf(ep.IMAP)
	cs.ports.submissions, cs.ports.submission = portOf(ep.Submissions), portOf(ep.Submission)
	cs.caPEM = providerCA(n)
	return cs
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// providerCA returns the root(s) of the provider certificate's chain, or,
// when the chain stops below its root, keys/provider-ca.crt as `kep init`
// writes it.
func providerCA(n *provider.Node) []byte {
	var b bytes.Buffer
	if n.Cert != nil {
		for _, c := range n.Cert.Chain {
			if c.CheckSignatureFrom(c) == nil && bytes.Equal(c.RawIssuer, c.RawSubject) {
				pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
			}
		}
	}
	if b.Len() > 0 {
		return b.Bytes()
	}
	data, err := os.ReadFile(n.Config.Path("keys/provider-ca.crt"))
	if err != nil {
		return nil
	}
	return data
}

// ours says whether a mail domain is the provider's own or one of its
// subdomains.
func (cs *clientSetup) ours(domain string) bool {
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	return d == cs.domain || strings.HasSuffix(d, "."+cs.domain)
}

// Thunderbird's autoconfig format, version 1.1.
type autoconfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider emailProvider `xml:"emailProvider"`
}

type emailProvider struct {
	ID          string   `xml:"id,attr"`
	Domains     []string `xml:"domain"`
	DisplayName string   `xml:"displayName"`
	ShortName   string   `xml:"displayShortName"`
	Incoming    []server `xml:"incomingServer"`
	Outgoing    []server `xml:"outgoingServer"`
	Docs        *docs    `xml:"documentation,omitempty"`
}

type server struct {
	Type       string `xml:"type,attr"`
	Hostname   string `xml:"hostname"`
	Port       int    `xml:"port"`
	SocketType string `xml:"socketType"` // SSL (implicit TLS) or STARTTLS
	Auth       string `xml:"authentication"`
	Username   string `xml:"username"`
}

type docs struct {
	URL   string `xml:"url,attr"`
	Descr string `xml:"descr"`
}

// config builds the autoconfig document for a mail domain; servers whose
// listener is off (port 0) are left out, implicit TLS first (RFC 8314 §3).
func (cs *clientSetup) config(domain string) *autoconfig {
	ac := &autoconfig{Version: "1.1", Provider: emailProvider{ID: cs.domain, Domains: []string{cs.domain},
		DisplayName: cs.name + " (KEP)", ShortName: cs.name}}
	if domain != "" && domain != cs.domain {
		ac.Provider.Domains = append(ac.Provider.Domains, domain)
	}
	add := func(list *[]server, typ string, port int, socket string) {
		if port > 0 {
			*list = append(*list, server{Type: typ, Hostname: cs.hostname, Port: port, SocketType: socket,
				Auth: "password-cleartext", Username: "%EMAILADDRESS%"})
		}
	}
	add(&ac.Provider.Incoming, "imap", cs.ports.imaps, "SSL")
	add(&ac.Provider.Incoming, "imap", cs.ports.imap, "STARTTLS")
	add(&ac.Provider.Outgoing, "smtp", cs.ports.submissions, "SSL")
	add(&ac.Provider.Outgoing, "smtp", cs.ports.submission, "STARTTLS")
	if cs.caPEM != nil {
		ac.Provider.Docs = &docs{URL: "https://" + cs.hostname + caPath,
			Descr: "Import this provider CA certificate to trust the server and the provider's signature on every KEP envelope"}
	}
	return ac
}

// caPath is where the provider CA's certificate is served, in PEM.
const caPath = "/ca.pem"

// handle registers the set-up endpoints on mux.
func (cs *clientSetup) handle(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/autoconfig/mail/config-v1.1.xml", cs.serveConfig)
	mux.HandleFunc("GET /mail/config-v1.1.xml", cs.serveConfig)
	mux.HandleFunc("GET "+caPath, func(w http.ResponseWriter, r *http.Request) { cs.serveCA(w, false) })
	mux.HandleFunc("GET /ca.crt", func(w http.ResponseWriter, r *http.Request) { cs.serveCA(w, true) })
}

// serveConfig answers an autoconfig request. With emailaddress (as
// Thunderbird asks), an address outside the provider's domain is 404 with
// the reason: this provider serves no mailbox there.
func (cs *clientSetup) serveConfig(w http.ResponseWriter, r *http.Request) {
	domain := ""
	if addr := r.URL.Query().Get("emailaddress"); addr != "" {
		_, d, ok := strings.Cut(addr, "@")
		if !ok || !cs.ours(d) {
			http.Error(w, fmt.Sprintf("%q is not an address of this KEP provider (%s): ask the provider of that address for its settings", addr, cs.domain), http.StatusNotFound)
			return
		}
		domain = strings.ToLower(d)
	}
	out, err := xml.MarshalIndent(cs.config(domain), "", "  ")
	if err != nil {
		http.Error(w, "The configuration could not be written; try again later", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Write([]byte(xml.Header))
	w.Write(out)
	w.Write([]byte("\n"))
}

// serveCA serves the provider CA, in PEM or (der) DER.
func (cs *clientSetup) serveCA(w http.ResponseWriter, der bool) {
	if cs.caPEM == nil {
		http.Error(w, "This node has no provider CA certificate to give (its certificate chain names none): ask the provider", http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "max-age=3600")
	if !der {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Disposition", `attachment; filename="kep-provider-ca.pem"`)
		w.Write(cs.caPEM)
		return
	}
	blk, _ := pem.Decode(cs.caPEM)
	if blk == nil {
		http.Error(w, "The provider CA certificate could not be read; ask the provider", http.StatusInternalServerError)
		return
	}
	if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		http.Error(w, "The provider CA certificate could not be read; ask the provider", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-cert")
	w.Header().Set("Content-Disposition", `attachment; filename="kep-provider-ca.crt"`)
	w.Write(blk.Bytes)
}
