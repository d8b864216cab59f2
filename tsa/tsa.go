// Package tsa is in charge of trusted time: RFC 3161 time-stamp tokens
// (zaman damgası) that fix when a message, its evidence or a log head existed.
// It asks a TSA for tokens (Client: the accredited TSA in production, such as
// Kamu SM), parses and verifies them (Token: CMS signature, message imprint,
// ESS certificate binding, TSA certificate purpose and chain at the token's
// time; the CMS layer through package cms's one model and algorithm
// policy, cms.Current for new tokens and cms.AsOf for old evidence), and runs a development TSA (Server: over HTTP for the standard
// tools, or in-process for `kep demo` and the tests).
//
// Tokens made here verify with `openssl ts -verify`, and OpenSSL's queries
// get answers from Server; the tests check both.
//
// Specifications: RFC 3161 (TSP) as updated by RFC 5816 (ESSCertIDv2),
// RFC 5652 (CMS), RFC 5035 (ESS signing certificate v2).
package tsa
