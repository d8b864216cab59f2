-- Compression dictionaries of stored evidence, one per signing certificate:
-- sample evidences signed with it, so that what every evidence repeats (names,
-- namespaces, algorithm URIs, the certificate itself) is stored once. The id
-- is derived from the dictionary's SHA-256 and written as each evidence
-- row's format. Kept as long as the evidence: append-only.
CREATE TABLE evidence_dicts (
    id          INTEGER PRIMARY KEY,
    cert        TEXT NOT NULL,   -- SHA-256 of the signing certificate, hex
    codec       TEXT NOT NULL,   -- deflate (RFC 1951) or zstd (RFC 8878), with the dictionary raw
    dict        BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX evidence_dicts_cert ON evidence_dicts(cert);
CREATE TRIGGER evidence_dicts_no_update BEFORE UPDATE ON evidence_dicts
BEGIN SELECT RAISE(ABORT, 'append-only: evidence dictionaries cannot be changed'); END;
CREATE TRIGGER evidence_dicts_no_delete BEFORE DELETE ON evidence_dicts
BEGIN SELECT RAISE(ABORT, 'append-only: evidence dictionaries cannot be removed'); END;
