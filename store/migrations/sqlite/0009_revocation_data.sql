-- Revocation data (CRLs, OCSP responses) that acceptance evidence cites: the
-- proof that the signer's certificate was not revoked when the provider
-- accepted the message (issue 9, kep-domain.md access-point checks). An
-- evidence names a row by the SHA-256 of its bytes; a row is stored once
-- however many evidences cite it, and kept as long as they are: append-only.
CREATE TABLE revocation_data (
    digest       TEXT PRIMARY KEY,   -- SHA-256 of der, hex
    kind         TEXT NOT NULL,      -- ocsp (RFC 6960 OCSPResponse) or crl (RFC 5280 CertificateList)
    der          BLOB NOT NULL,
    source       TEXT NOT NULL,      -- the URL it was fetched from
    this_update  INTEGER NOT NULL,   -- Unix milliseconds
    next_update  INTEGER,            -- Unix milliseconds; NULL when the issuer named none
    created_at   INTEGER NOT NULL
);
CREATE TRIGGER revocation_data_no_update BEFORE UPDATE ON revocation_data
BEGIN SELECT RAISE(ABORT, 'append-only: revocation data cited by evidence cannot be changed'); END;
CREATE TRIGGER revocation_data_no_delete BEFORE DELETE ON revocation_data
BEGIN SELECT RAISE(ABORT, 'append-only: revocation data cited by evidence cannot be removed'); END;
