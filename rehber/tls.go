package rehber

import "crypto/tls"

// PeerTLSConfig derives the configuration of the provider-to-provider
// listener from the provider's server configuration: a client certificate
// is required, and any is taken at the TLS layer, because the check is the
// directory's pin, which PeerHandler makes (a CA chain proves nothing
// here). It is a listener of its own, so that browsers on the public HTTPS
// listener never see a client-certificate prompt.
func PeerTLSConfig(server *tls.Config) *tls.Config {
	c := server.Clone()
	c.ClientAuth = tls.RequireAnyClientCert
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}
