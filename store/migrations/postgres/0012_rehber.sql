-- KEP Rehberi lookup budgets (package rehber, docs/relay.md "KEP Rehberi
-- query"): one fixed-window counter per key. Keys are truncated SHA-256
-- digests of the principal, source address or peer provider with the kind
-- of budget: no user name, TCKN or address is stored here. This is a budget
-- of its own, apart from the login back-off (login_failures).
CREATE TABLE rehber_limits (
    key           BYTEA PRIMARY KEY,
    window_start  BIGINT NOT NULL,    -- Unix milliseconds
    used          INTEGER NOT NULL
);
