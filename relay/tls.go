package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kephs/kep/directory"
)

// Peer errors: why a certificate presented in TLS is not accepted.
var (
	ErrNoCertificate   = errors.New("no client certificate: a KEP provider presents the TLS certificate the directory pins for it")
	ErrUnknownProvider = errors.New("the certificate's key is not pinned for any provider in the KEP directory")
	ErrProviderRemoved = errors.New("the provider pinned for this certificate was removed from the KEP directory")
)

// PeerProvider finds the provider whose directory entry pins cert at t
// (docs/relay.md, "TLS and pins between providers"): none is
// ErrUnknownProvider, a provider no longer active is ErrProviderRemoved.
func PeerProvider(d *directory.Directory, cert *x509.Certificate, t time.Time) (*directory.Provider, error) {
	if cert == nil {
		return nil, ErrNoCertificate
	}
	if d == nil {
		return nil, fmt.Errorf("no provider directory loaded")
	}
	for i := range d.Providers {
		p := &d.Providers[i]
		if !p.PinMatches(cert, t) {
			continue
		}
		if !p.Active(t) {
			return p, fmt.Errorf("%w (%s)", ErrProviderRemoved, p.ID)
		}
		return p, nil
	}
	return nil, ErrUnknownProvider
}

// ClientConfig is the TLS configuration to dial provider p's reception
// point: it presents cert, and accepts the server only when its leaf
// certificate is pinned for p at the time of the handshake. No CA chain is
// checked (the directory is the trust anchor).
func ClientConfig(cert tls.Certificate, p *directory.Provider, now func() time.Time) *tls.Config {
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return fmt.Errorf("relay: %s presented no certificate", p.ID)
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return fmt.Errorf("relay: %s's certificate: %w", p.ID, err)
			}
			if !p.PinMatches(leaf, now()) {
				return fmt.Errorf("relay: the server at %s presented a certificate whose key (pin %s) the directory does not pin for %s", p.Relay, directory.SPKIPin(leaf), p.ID)
			}
			return nil
		},
	}
}

// ServerConfig is the reception point's TLS configuration: it presents
// cert and asks for a client certificate. It does not refuse the handshake
// without one, so that the refusal is an SMTP reply a person can read
// (Server checks the pin after EHLO).
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		ClientAuth:   tls.RequestClientCert,
	}
}

// dialPeer opens the relay channel to provider p's reception point:
// implicit TLS presenting cert, the server checked by its pin
// (ClientConfig), and one deadline of timeout (a minute when zero) over
// the whole exchange. The caller says EHLO and closes the client.
func dialPeer(ctx context.Context, cert tls.Certificate, p *directory.Provider, now func() time.Time, timeout time.Duration) (*smtp.Client, error) {
	c, _, _, err := dialSession(ctx, cert, p, now, timeout)
	return c, err
}

// dialSession is dialPeer, also returning the connection (for later
// deadlines) and the peer's pinned certificate.
func dialSession(ctx context.Context, cert tls.Certificate, p *directory.Provider, now func() time.Time, timeout time.Duration) (*smtp.Client, net.Conn, *x509.Certificate, error) {
	if timeout == 0 {
		timeout = time.Minute
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: ClientConfig(cert, p, now)}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := dialer.DialContext(dctx, "tcp", p.Relay)
	if err != nil {
		return nil, nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(timeout))
	var leaf *x509.Certificate
	if tc, ok := conn.(*tls.Conn); ok {
		if pcs := tc.ConnectionState().PeerCertificates; len(pcs) > 0 {
			leaf = pcs[0]
		}
	}
	return smtp.NewClient(conn), conn, leaf, nil
}
