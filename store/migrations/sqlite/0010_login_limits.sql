-- Login back-off (account.Limiter, docs/security.md "Login back-off"):
-- failed logins counted per (user, source), per user and per source, and the
-- (user, source) pairs that have logged in before. Keys are truncated
-- SHA-256 digests: no user name or address is stored here.
CREATE TABLE login_failures (
    key       BLOB PRIMARY KEY,
    failures  INTEGER NOT NULL,
    last_at   INTEGER NOT NULL,
    until_at  INTEGER NOT NULL
);

CREATE TABLE login_known (
    key  BLOB PRIMARY KEY,
    at   INTEGER NOT NULL
);
