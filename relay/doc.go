// Package relay is in charge of carrying KEP messages between providers
// (docs/relay.md, "The relay: SMTP over mutual TLS"): the outbound
// transport of the delivery queue (Transport, for recipients at another
// provider) and the inbound reception point (Server). Both sides trust only
// the authority's provider directory (package directory): TLS certificates
// are checked by their SPKI pins, envelope and evidence signatures by the
// certificates the directory lists, never by the Web PKI.
//
// The mailbox owns the messages, deliveries and evidence; this package
// owns the wire: TLS, the SMTP dialogue and the checks of what arrives.
package relay
