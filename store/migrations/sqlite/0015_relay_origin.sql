-- Messages from another provider (SQLite). docs/relay.md, "Data model":
-- a message relayed in from another provider has no local sender, so
-- sender_account becomes nullable, and the message records the provider it
-- came from (origin_provider, its directory id hsNN) and the id of that
-- provider's acceptance evidence 10 (origin_evidence). The pair is the
-- reception point's deduplication key: a retransmission after a lost reply
-- finds the row and delivers nothing twice. A local message has neither
-- (both NULL); a foreign one has both, and no sender_account.
--
-- SQLite cannot drop NOT NULL in place, so the table is rebuilt with the
-- same columns (digest_alg from 0006 included), then its indexes. Other
-- tables reference messages(id); the foreign keys are deferred to the end
-- of this migration's transaction, by which time messages exists again with
-- every id it had.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE messages_new (
    id              INTEGER PRIMARY KEY,
    digest          BLOB NOT NULL,            -- SHA-256 of the exact signed original
    size            INTEGER NOT NULL,
    sender_account  INTEGER REFERENCES accounts(id),  -- NULL for a message from another provider
    operator_id     INTEGER REFERENCES operators(id),
    from_addr       TEXT NOT NULL,
    sender_name     TEXT NOT NULL DEFAULT '',  -- the sender's name at acceptance, as the envelope shows it
    header_id       TEXT NOT NULL DEFAULT '', -- RFC 5322 Message-ID
    ileti_id        TEXT NOT NULL DEFAULT '', -- X-TR-REM-iletiID
    ileti_tip       TEXT NOT NULL,            -- standart, eYazisma, eTebligat
    submitted_at    INTEGER NOT NULL,
    evidence_id     TEXT NOT NULL,            -- the acceptance evidence (10); for a foreign message, the sending provider's
    envelope_params TEXT,                     -- what the envelope was rendered with (provider name, domain, time zone), JSON
    envelope_sig    BLOB,                     -- the detached CMS signature of the provider's envelope, once made
    envelope_size   INTEGER,                  -- the envelope's size in bytes
    digest_alg      TEXT NOT NULL DEFAULT 'sha-256'
        CHECK (digest_alg IN ('sha-256')),
    origin_provider TEXT,                     -- directory id (hsNN) of the provider it came from; NULL when local
    origin_evidence TEXT,                     -- the id of that provider's evidence 10
    CHECK ((origin_provider IS NULL) = (origin_evidence IS NULL)),
    CHECK (sender_account IS NOT NULL OR origin_provider IS NOT NULL)
);
INSERT INTO messages_new (id, digest, size, sender_account, operator_id, from_addr, sender_name,
        header_id, ileti_id, ileti_tip, submitted_at, evidence_id, envelope_params, envelope_sig,
        envelope_size, digest_alg)
    SELECT id, digest, size, sender_account, operator_id, from_addr, sender_name,
        header_id, ileti_id, ileti_tip, submitted_at, evidence_id, envelope_params, envelope_sig,
        envelope_size, digest_alg
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_sender ON messages(sender_account, id);
CREATE INDEX messages_digest ON messages(digest);
CREATE UNIQUE INDEX messages_origin ON messages(origin_provider, origin_evidence)
    WHERE origin_provider IS NOT NULL;
