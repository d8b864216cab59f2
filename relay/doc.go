// Package relay is in charge of carrying KEP messages between providers
// (docs/relay.md, "The relay: SMTP over mutual TLS"): the outbound
// transport of the delivery queue (Transport, for recipients at another
// provider) and the inbound reception point (Server). Both sides trust only
// the authority's provider directory (package directory): TLS certificates
// are checked by their SPKI pins (RFC 7469 form), envelope and evidence
// signatures by the certificates the directory lists for the calling
// provider, never by the Web PKI.
//
// The mailbox owns the messages, deliveries and evidence
// (mailbox/relay.go); this package owns the wire: TLS, the SMTP dialogue
// (RFC 5321 over implicit TLS, as RFC 8314 does for submission) and the
// checks of what arrives.
//
// Replies of the reception point, each naming the check that failed:
//
//	530 5.7.0  no TLS (never on the implicit-TLS listener)
//	530 5.7.1  at EHLO: no client certificate; a key no provider pins;
//	           a provider removed from the directory
//	550 5.7.1  MAIL FROM not at a domain of the calling provider;
//	           RCPT not at this provider's domain (or a subdomain)
//	550 5.1.1  RCPT: no such KEP account here
//	554 5.7.0  DATA: the envelope's CMS signature, its signer not listed
//	           for the calling provider's envelopes; the evidence 10
//	           (XAdES, not listed for its evidence, not code 10); the
//	           original's digest; MAIL FROM not the evidence's sender; a
//	           RCPT not among its recipients; the original's signature or
//	           signer, as of the sending provider's acceptance time
//	451 4.3.0  a fault of this provider's own (store, log): retry
//	250        stored, with 20 per recipient (21 for an account that is
//	           not active); a retransmission (same provider and evidence-10
//	           id) gets 250 again and nothing new
//
// A returned evidence (MAIL FROM:<>, one RCPT: the original sender; back.go)
// is answered:
//
//	554 5.7.0  the bundle does not verify against the directory (the
//	           issuing provider's evidence certificate and log key in
//	           their windows, a trusted TSA), is not 20/21/40/41/60/61
//	           about a recipient of the calling provider, its header
//	           fields name another evidence, or it concerns no message
//	           of ours sent by that address
//	554 5.5.3  more than one RCPT
//	451 4.3.0  a fault of this provider's own: retry
//	250        stored (or stored before: a retransmission)
//
// The receiving side's Returner sends its evidence back once checkpointed,
// from evidence_return queue items the Delil courier enqueues.
//
// The sending side (Transport) turns a 250 into queue.Awaiting, a 5xx into
// relay failure 31 issued by itself with the reply as the reason (the
// receiver could not attribute the message, so no 21 of its exists), and a
// 4xx or network fault into a retry; past the queue's deadline, 31 with
// reason relay-timeout.
package relay
