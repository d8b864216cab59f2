package config

// The table of keys below (KeyTable) is the one source of the configuration's
// documentation: Render writes the commented kep.toml of `kep init` from
// it, Reference writes the key tables of docs/configuration.md from it, and
// the values in both come from Default. A test fails when a field of Config
// has no entry here, or when docs/configuration.md is stale (refresh it
// with `go generate ./config/`).

// Section is one [table] of the file.
type Section struct {
	Name string // "smtp"
	// Comment is written above the section's keys in kep.toml (optional).
	Comment string
}

// Key documents one key of the file.
type Key struct {
	Section string // "smtp"
	Name    string // "max_message_bytes", the field's toml tag
	// Type as docs/configuration.md names it: string, path, duration, …
	Type string
	// Comment is written above the key in kep.toml: short, plain text,
	// lines separated by "\n".
	Comment string
	// Doc is the "meaning" column of docs/configuration.md (Markdown).
	Doc string
	// Default, when set, replaces the value of Default in the doc's
	// "default" column ("(required)"); Note is added after the value.
	Default string
	Note    string
}

// Sections lists the sections in file order.
var Sections = []Section{
	{Name: "provider"},
	{Name: "store"},
	{Name: "keys"},
	{Name: "esign"},
	{Name: "tsa"},
	{Name: "log"},
	{Name: "smtp"},
	{Name: "imap"},
	{Name: "http"},
	{Name: "metrics"},
	{Name: "federation"},
	{Name: "accounts"},
	{Name: "timing"},
	{Name: "notices", Comment: "Notices by SMS and e-mail of new messages and of deadlines (docs/notices.md).\nThey never carry content: the sender, the time and the deadline only."},
}

// KeyTable lists every key, in file order within its section.
var KeyTable = []Key{
	{Section: "provider", Name: "id", Type: "string", Default: "(required)",
		Comment: "The provider's short id, as in its domain (hsNN).",
		Doc:     "the provider's short id, `hsNN` (PTT is `hs01`). Used to form institutional domains `name.hsNN.kep.tr` for company accounts."},
	{Section: "provider", Name: "domain", Type: "string", Default: "(required)",
		Comment: "The provider's KEP domain: addresses are ad.soyad@<domain>.",
		Doc:     "the provider's KEP domain, `hsNN.kep.tr`. Account addresses are `…@domain`; recipients at this domain are local; written in evidence as `EvidenceIssuerDetails/AttributedElectronicAddress scheme=\"dns\"`; envelopes and notices come from `postmaster@domain`. Never change it once accounts exist."},
	{Section: "provider", Name: "name", Type: "string", Note: " (the id in capitals + \" KEP\")",
		Comment: "The provider's name, as it appears in evidence and envelopes.",
		Doc:     "the provider's name in evidence (`EvidenceIssuerDetails/…/Name`) and in the display names of envelopes, notices and Delil items"},
	{Section: "provider", Name: "policy", Type: "URI",
		Comment: "The evidence issuer policy (EvidenceIssuerPolicyID, ETSI TS 102 640-2).",
		Doc:     "`EvidenceIssuerPolicyID/PolicyID` of every evidence (ETSI TS 102 640-2): the identifier of the provider's evidence policy document"},

	{Section: "store", Name: "dsn", Type: "string",
		Comment: "Database: \"sqlite:PATH\" (default; WAL, fsync on every commit) or\n\"postgres://user:pass@host:5432/db?sslmode=verify-full\".",
		Doc:     "the database (below)"},
	{Section: "store", Name: "content_dir", Type: "path",
		Comment: "Content store: signed originals, named by their SHA-256.",
		Doc:     "the content store: signed originals (one file per distinct original), drafts appended over IMAP, and Delil items and notices once an IMAP client fetched them; each file named by the SHA-256 of its bytes"},

	{Section: "keys", Name: "cert", Type: "path",
		Comment: "The provider's certificate (leaf first, then its chain): with its key it\nsigns evidence (XAdES) and envelopes (S/MIME) and serves TLS.",
		Doc:     "PEM: the provider's certificate first, then its chain (intermediates; a self-signed root may follow and is ignored in bundles)"},
	{Section: "keys", Name: "key", Type: "path",
		Comment: "The private key of cert (PEM, unencrypted).",
		Doc:     "PEM private key of `cert`: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC 1 (`EC PRIVATE KEY`), unencrypted. ECDSA P-256 (default) or RSA ≥ 2048 bits."},
	{Section: "keys", Name: "log_key", Type: "path",
		Comment: "The Ed25519 key that signs checkpoints of the evidence log (C2SP signed note).",
		Doc:     "the Ed25519 key that signs log checkpoints, in the Go `sumdb/note` signer format `PRIVATE+KEY+<name>+<id>+<base64>`; its name must equal `log.origin`"},
	{Section: "keys", Name: "log_key_not_after", Type: "date",
		Comment: "Date (YYYY-MM-DD) by which the log key is to be rotated (`kep keys rotate\n--which log`); warnings 30 and 7 days before. Empty: no date.",
		Doc:     "the date (`YYYY-MM-DD`, UTC) by which the log key is to be rotated. Log keys carry no certificate, so no expiry of their own: this date is the operator's. The node warns 30 and 7 days before and reports it failing on `/healthz` after, but keeps issuing evidence (checkpoints stay verifiable). `kep init` and `kep keys rotate --which log` set it 5 years ahead; empty: no date, no warning.", Default: "(none)"},

	{Section: "esign", Name: "trust_anchors", Type: "list of paths",
		Comment: "PEM files (or directories of them) with the qualified e-signature CAs whose\ncertificates users and operators sign with (the e-signature trust store).",
		Doc:     "the qualified e-signature CAs users' and operators' certificates must chain to (the trust store of `identity.TrustStore`)"},
	{Section: "esign", Name: "revocation", Type: "string",
		Comment: "Revocation of signer certificates is checked (OCSP, then CRL) at acceptance.\nWhen no source answers: \"check\" refuses for now (451, no evidence), \n\"accept-and-record\" accepts and records it in the evidence.",
		Doc:     "what a submission does when no OCSP responder or CRL of the signer's certificate answers: `check` answers 451 4.7.5 and issues no evidence (the sender did nothing wrong and retries); `accept-and-record` accepts and names the failure in evidence 10 (property `RevocationUnavailable`). Revocation is always checked; docs/certificates.md."},
	{Section: "esign", Name: "allow_no_source", Type: "boolean",
		Comment: "Accept certificates that name no OCSP responder or CRL (development CAs\nonly: a qualified certificate always names one).",
		Doc:     "accept, and record in the evidence, certificates that name neither an OCSP responder nor a CRL distribution point. Qualified certificates always name one (ETSI EN 319 412-2 §4.3.11); `kep init` sets it for its development CA, whose `kep cert issue` certificates name none."},

	{Section: "esign", Name: "eseal_vkn_fields", Type: "list of strings",
		Comment: "Where a company's e-seal (mali mühür) certificate carries its VKN:\nATTRIBUTE=PREFIX, tried in order. Empty: the defaults of docs/signing.md.",
		Doc:     "where the subject of a company's e-seal (mali mühür) certificate carries the company's VKN, each `ATTRIBUTE=PREFIX` (attribute: `serialNumber`, `organizationIdentifier`, `organizationalUnitName`, `organizationName`, `commonName` or a dotted OID; the prefix stands before the ten digits, matched without regard to case). A message sealed with such a certificate is bound to the account held under that VKN. Empty: `organizationIdentifier=VATTR-`, `serialNumber=VKN`, `serialNumber=VKN-`, `serialNumber=VKN:`, `organizationalUnitName=VKN:`, `organizationalUnitName=VKN-` — uncertain: Kamu SM's exact form could not be checked (docs/signing.md).", Default: "(the forms of docs/signing.md)"},

	{Section: "tsa", Name: "url", Type: "URL",
		Comment: "URL of the RFC 3161 time-stamp authority (Kamu SM in Turkey). Empty runs\nthe development TSA below inside the process: for development only.",
		Doc:     "the RFC 3161 time-stamp authority (HTTP POST, `application/timestamp-query`). Empty runs the development TSA inside the process — for development only."},
	{Section: "tsa", Name: "username", Type: "string",
		Comment: "HTTP basic authentication user for the TSA, if it needs one.",
		Doc:     "HTTP basic authentication user, when set"},
	{Section: "tsa", Name: "password", Type: "string",
		Comment: "HTTP basic authentication password for the TSA.",
		Doc:     "HTTP basic authentication password"},
	{Section: "tsa", Name: "trust_anchors", Type: "list of PEM files",
		Comment: "PEM files with the CA certificates the TSA's certificate chains to.",
		Doc:     "CA certificates the TSA's certificate must chain to; every token received from `url` is verified against them (signature, ESS certificate binding, critical `timeStamping` EKU, chain at genTime) before it is used. Files only, not directories."},
	{Section: "tsa", Name: "dev_cert", Type: "path",
		Comment: "Certificate of the development TSA (used only when url is empty).",
		Doc:     "certificate of the development TSA (only when `url` is empty)"},
	{Section: "tsa", Name: "dev_key", Type: "path",
		Comment: "Key of the development TSA (used only when url is empty).",
		Doc:     "its key"},
	{Section: "tsa", Name: "outage_tolerance", Type: "duration",
		Comment: "How long the TSA may fail (or its certificate be expired) while submissions\nare still accepted: checkpoints wait and are stamped later. Past it: 451.",
		Doc:     "how long the time-stamp authority may fail, or its certificate be expired, before every submission is answered `451 4.3.0` (no evidence). Within it, evidence is issued and checkpoints wait to be stamped when the TSA is back. `0` refuses at the first failure."},

	{Section: "log", Name: "origin", Type: "string",
		Comment: "The log's origin line in checkpoints (C2SP tlog-checkpoint).",
		Doc:     "the first line of every checkpoint (C2SP tlog-checkpoint) and the name of the log key; checkpoints are refused when they differ. Never change it for a running log."},
	{Section: "log", Name: "checkpoint_interval", Type: "duration", Note: " (`kep demo`: `1s`)",
		Comment: "A new signed, time-stamped checkpoint is issued this often when the log grew.",
		Doc:     "how often a new checkpoint is signed and time-stamped, when the log grew since the last one. Zero or negative means 2 s. Each checkpoint is one TSA request."},
	{Section: "log", Name: "batch_size", Type: "integer",
		Comment: "Most evidences appended in one database transaction (group commit).",
		Doc:     "most evidence appended in one database transaction (group commit). Zero or negative means 512."},

	{Section: "smtp", Name: "submission", Type: "host:port",
		Comment: "Submission with STARTTLS (port 587).",
		Doc:     "submission with STARTTLS (RFC 6409)"},
	{Section: "smtp", Name: "submissions", Type: "host:port",
		Comment: "Submission with implicit TLS (port 465).",
		Doc:     "submission with implicit TLS (RFC 8314)"},
	{Section: "smtp", Name: "hostname", Type: "string",
		Comment: "The name the server greets with.",
		Doc:     "the name in the SMTP greeting; `kep init` also puts it in the provider certificate's DNS names"},
	{Section: "smtp", Name: "max_message_bytes", Type: "integer", Note: " (100 MiB)",
		Comment: "Largest message accepted, in bytes (100 MB within one provider).",
		Doc:     "largest message; a larger one is refused (552, rejection evidence `size-limit`)"},
	{Section: "smtp", Name: "max_recipients", Type: "integer",
		Comment: "Most recipients of one message.",
		Doc:     "most RCPT TO per message (refused by the SMTP layer, without evidence)"},
	{Section: "smtp", Name: "max_total_bytes", Type: "integer", Note: " (1 GiB)",
		Comment: "Largest size × recipients of one message, in bytes.",
		Doc:     "largest size × number of recipients (552, `size-limit`)"},
	{Section: "smtp", Name: "max_connections_per_address", Type: "integer", Note: " (100; `kep demo`: 300)",
		Comment: "Most sessions one client address may hold at once (an integrator's server sending in bulk needs more).",
		Doc:     "most sessions one address holds at once over both submission ports; the next gets `421` naming the limit (connlimit)"},

	{Section: "imap", Name: "listen", Type: "host:port",
		Comment: "IMAP with STARTTLS (port 143).",
		Doc:     "IMAP with STARTTLS (no login before TLS)"},
	{Section: "imap", Name: "listen_tls", Type: "host:port",
		Comment: "IMAP with implicit TLS (port 993).",
		Doc:     "IMAP with implicit TLS"},

	{Section: "http", Name: "listen", Type: "host:port",
		Comment: "HTTPS: the web mail, the REST API, the public pages and the log's endpoints.",
		Doc:     "HTTPS (TLS 1.2+, the provider certificate): the web mail (web.md), the REST API under `/api/` (api.md), the public verification and audit pages, evidence reports, the public log endpoints `/log/checkpoint`, `/log/tile/…` and `/healthz` (evidence.md, section 6)."},
	{Section: "http", Name: "signer_origin", Type: "URL",
		Comment: "The origin of the local signer (`kep signer`) that the web mail's compose page\nmay connect to (Content-Security-Policy connect-src).",
		Doc:     "the local signer's origin (`kep signer`, smartcards): the only origin besides the provider's own that the web mail's pages may connect to (CSP `connect-src`; web.md, \"Security\")."},
	{Section: "http", Name: "api_rate", Type: "integer",
		Comment: "REST API rate limit per token: units a second refilling its bucket (a call\ncosts 1, a bulk call 1 more per message). 0 takes the default.",
		Doc:     "the REST API's rate limit per token: units a second that refill the token's bucket. A call costs one unit, a bulk call one more per message; a call finding too few answers 429 with `Retry-After` (api.md, \"Rate limits\"). 0 takes the default."},
	{Section: "http", Name: "api_burst", Type: "integer",
		Comment: "REST API burst per token: the bucket's size, and the most one call may cost.",
		Doc:     "the REST API's burst per token: how many units a token's bucket holds, so the most one call may cost (a larger bulk call answers 413 `over-burst`). At least 1,001 lets a full bulk call of 1,000 through. 0 takes the default."},

	{Section: "metrics", Name: "listen", Type: "host:port", Note: " (`kep demo`: `127.0.0.1:19464`)",
		Comment: "Prometheus metrics (/metrics) and the health check (/healthz), over plain\nHTTP: keep it on loopback or a private network. Empty turns it off.",
		Doc:     "the operator's plain-HTTP listener: `/metrics` (Prometheus text format) and `/healthz` (JSON: `status`, each check, a few facts; 503 when a check fails). Keep it on loopback or a private network. Empty turns it off. deployment.md, \"Monitoring\", lists the metrics."},

	{Section: "federation", Name: "directory", Type: "path or URL",
		Comment: "The authority's signed provider directory: a file or an https:// URL.\nEmpty: this provider stands alone, and only its own domain is a KEP domain.",
		Doc:     "the authority's signed provider directory (docs/relay.md, \"The provider directory\"): a file, or an `https://` URL. Loaded at start and every `refresh`; a forged or older edition is refused and the last good one kept (stored in the database, so a restart cannot roll it back). Recipients at domains it does not list are refused at RCPT with rejection evidence at DATA. Empty: only this provider's domain and its subdomains are KEP domains."},
	{Section: "federation", Name: "authority_keys", Type: "list of strings",
		Comment: "The authority's verifier keys (C2SP signed-note), e.g. \"KEP-Authority+ec1c3c02+Aeu…\".",
		Doc:     "the authority's note verifier keys; two during the authority's own key rollover. Required with `directory`."},
	{Section: "federation", Name: "refresh", Type: "duration",
		Comment: "How often the directory is fetched again.",
		Doc:     "how often the directory is fetched again"},
	{Section: "federation", Name: "relay_listen", Type: "host:port",
		Comment: "The reception point, where other providers deliver (SMTP over mutual TLS,\nimplicit TLS; the address the directory lists as this provider's relay).\nEmpty: this node only sends.",
		Doc:     "the reception point (docs/relay.md, \"The relay\"): other providers deliver here, over implicit TLS with both sides' certificates pinned in the directory. A listener of its own, so that browsers on the HTTPS listener never meet a client-certificate prompt. Needs `directory`. Empty: this node only sends."},
	{Section: "federation", Name: "rehber_listen", Type: "host:port",
		Comment: "Where other providers ask this provider's KEP Rehberi (HTTPS over mutual TLS;\nthe directory's rehber URL points here). Empty: no provider-to-provider lookups.",
		Doc:     "where other providers ask this provider's KEP Rehberi (docs/relay.md, \"KEP Rehberi query\"): HTTPS with client certificates pinned in the directory, on a listener of its own. Users ask at `/rehber/v1/` on the HTTPS listener. Needs `directory`. Empty: no provider-to-provider lookups."},

	{Section: "federation", Name: "evidence_alarm", Type: "duration",
		Comment: "Alarm: a recipient the other provider took (its 250) whose relay acceptance\nevidence (20) has not come back this long after acceptance is logged at WARN.",
		Doc:     "operator alarm (docs/relay.md, \"Alarms\"): a recipient the other provider took (its 250) whose relay acceptance evidence (20) has not come back this long after its message was accepted is logged once at WARN (ids only) and counted in `kep_relay_evidence_overdue`. The 20 normally follows within seconds."},

	{Section: "accounts", Name: "default_quota", Type: "integer", Note: " (100 MiB)",
		Comment: "Mailbox quota of new accounts, in bytes (100 MB).",
		Doc:     "mailbox quota of accounts created without `--quota`. Existing accounts keep theirs."},

	{Section: "timing", Name: "deemed_read_standart", Type: "duration",
		Comment: "Deemed read: a delivered message not opened within this period gets\nevidence 61. standart: a duration after delivery.",
		Doc:     "a delivered `standart` message not opened within this period gets evidence 61"},
	{Section: "timing", Name: "deemed_read_etebligat_days", Type: "integer",
		Comment: "eTebligat: the end of the Nth day after delivery, on the calendar of time_zone.",
		Doc:     "an `eTebligat` gets 61 at the end (midnight, `time_zone`) of the Nth day after the day of delivery"},
	{Section: "timing", Name: "deemed_read_eyazisma", Type: "duration",
		Comment: "eYazisma: a duration after delivery.",
		Doc:     "as `standart`, for `eYazisma`"},
	{Section: "timing", Name: "time_zone", Type: "IANA zone name",
		Comment: "The calendar for day-based deadlines and for times shown to people.",
		Doc:     "the calendar of day-based deadlines and of times shown to people (envelope introduction and Date, Delil items, notices). Evidence times are always UTC. The host needs the zone database (package `tzdata`); an unknown zone stops the node."},

	{Section: "notices", Name: "deadline_lead", Type: "duration",
		Comment: "How long before a deemed-read or e-tebligat deadline an unopened message's\nreminder goes (at most halfway from delivery). 0s or less: no reminders.",
		Doc:     "how long before the deemed-read (61) or e-tebligat deadline of a message still unopened the reminder notice goes; never earlier than halfway between delivery and the deadline (a 24 h `standart` period gets its reminder after 12 h). Zero or negative: no reminders."},
	{Section: "notices", Name: "sms_file", Type: "path", Default: "(none)", Note: " (`kep demo`: `sms-hsNN.jsonl` in its directory)",
		Comment: "Development SMS gateway: each SMS is appended to this file as one JSON line.",
		Doc:     "the development SMS gateway: each SMS is appended to this file as one JSON line `{\"at\", \"to\", \"text\"}`. For development and the demo; `sms_url` wins when both are set."},
	{Section: "notices", Name: "sms_url", Type: "URL", Default: "(none)",
		Comment: "HTTP SMS gateway: each SMS is POSTed as JSON {\"to\", \"text\"}; any 2xx is success.",
		Doc:     "an HTTP SMS gateway: each SMS is `POST`ed as JSON `{\"to\": \"+90…\", \"text\": \"…\"}`; a `2xx` answer is success, anything else is retried. Empty, with `sms_file` empty: no SMS notices are queued."},
	{Section: "notices", Name: "sms_token", Type: "string",
		Comment: "Bearer token for sms_url, if it needs one.",
		Doc:     "sent as `Authorization: Bearer …` to `sms_url`, when set"},
	{Section: "notices", Name: "sms_username", Type: "string",
		Comment: "HTTP basic authentication user for sms_url (when no token).",
		Doc:     "HTTP basic authentication user for `sms_url`, when set and `sms_token` is not"},
	{Section: "notices", Name: "sms_password", Type: "string",
		Comment: "HTTP basic authentication password for sms_url.",
		Doc:     "its password"},
	{Section: "notices", Name: "email_relay", Type: "host:port", Default: "(none)",
		Comment: "Outbound SMTP relay for e-mail notices (ordinary mail, not KEP). Empty: no\ne-mail notices are queued.",
		Doc:     "the outbound SMTP relay e-mail notices go through (the provider's MTA or a mail service); ordinary Internet mail, not KEP. Empty: no e-mail notices are queued."},
	{Section: "notices", Name: "email_tls", Type: "string",
		Comment: "starttls (port 587, required), tls (implicit, port 465) or none (a relay on\nloopback only).",
		Doc:     "`starttls`: a plain connection upgraded with STARTTLS, which is required; `tls`: TLS from the first byte (port 465); `none`: no TLS, for a relay on loopback or a trusted private network (no login then). The relay's certificate is verified against the system's roots."},
	{Section: "notices", Name: "email_username", Type: "string",
		Comment: "SMTP AUTH PLAIN user at the relay, if it needs one.",
		Doc:     "AUTH PLAIN user at the relay, when set (only over TLS)"},
	{Section: "notices", Name: "email_password", Type: "string",
		Comment: "Its password.",
		Doc:     "its password"},
	{Section: "notices", Name: "email_from", Type: "string", Note: " (`bildirim@` + `provider.domain`)",
		Comment: "The sender of e-mail notices (envelope and From:). Empty: bildirim@<domain>.",
		Doc:     "the envelope sender and `From:` address of e-mail notices; empty means `bildirim@` + `provider.domain`. Use an address of a domain the relay may send for (SPF, DKIM)."},
}
