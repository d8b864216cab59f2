-- The web mail (docs/web.md): second factors (TOTP, RFC 6238) of account
-- holders and operators, and indexes to revoke a principal's sessions.
-- A secret is usable once confirmed with a code; last_step is the last
-- time step a code was accepted at, so that a code is never accepted twice.
CREATE TABLE totp_secrets (
    account_id    INTEGER REFERENCES accounts(id),
    operator_id   INTEGER REFERENCES operators(id),
    secret        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    confirmed_at  INTEGER,
    last_step     INTEGER NOT NULL DEFAULT 0,
    CHECK ((account_id IS NULL) <> (operator_id IS NULL))
);
CREATE UNIQUE INDEX totp_secrets_account ON totp_secrets(account_id);
CREATE UNIQUE INDEX totp_secrets_operator ON totp_secrets(operator_id);

CREATE INDEX sessions_account ON sessions(account_id);
CREATE INDEX sessions_operator ON sessions(operator_id);
