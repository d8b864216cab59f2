-- Login back-off (account.Limiter, docs/security.md "Login back-off"):
-- failed logins counted per (user, source), per user and per source, and the
-- (user, source) pairs that have logged in before. Keys are truncated
-- SHA-256 digests: no user name or address is stored here.
CREATE TABLE login_failures (
    key       BYTEA PRIMARY KEY,
    failures  INTEGER NOT NULL,
    last_at   BIGINT NOT NULL,
    until_at  BIGINT NOT NULL
);

CREATE TABLE login_known (
    key  BYTEA PRIMARY KEY,
    at   BIGINT NOT NULL
);
