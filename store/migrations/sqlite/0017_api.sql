-- The REST API (package api, docs/api.md).
--
-- API tokens (account/tokens.go). A token acts as exactly one principal:
-- the holder of account_id, or operator_id limited to its role on
-- account_id. Only the SHA-256 of the token is kept (the token is 256
-- random bits: a fast hash is enough, nothing to guess); hint is its first
-- characters, for people to tell tokens apart.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    hash         BLOB NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    name         TEXT NOT NULL,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    operator_id  INTEGER REFERENCES operators(id),   -- NULL: the account's holder
    created_by   TEXT NOT NULL,                      -- the actor, as in the audit
    created_at   INTEGER NOT NULL,                   -- Unix milliseconds
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_tokens_account ON api_tokens(account_id);

-- Idempotency keys of accepted submissions (api, bulk): written in the
-- acceptance transaction (mailbox.Accept), scoped per sending account, kept
-- a documented number of days (api.IdempotencyDays).
CREATE TABLE idempotency_keys (
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    key          TEXT NOT NULL,
    digest       BLOB NOT NULL,                      -- SHA-256 of the message bytes
    message_id   INTEGER NOT NULL REFERENCES messages(id),
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);

-- Webhook subscriptions: evidence events of one account, POSTed to url,
-- signed with HMAC-SHA256 under secret (kept as is: it must sign).
CREATE TABLE webhooks (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    url          TEXT NOT NULL,
    secret       BLOB NOT NULL,
    codes        TEXT NOT NULL DEFAULT '',           -- evidence codes, comma separated; '' every code
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    deleted_at   INTEGER
);
CREATE INDEX webhooks_account ON webhooks(account_id);

-- One call of one webhook for one evidence (our own or returned by another
-- provider: seq is its leaf). Its queue item (kind webhook, ref = id)
-- carries the retries.
CREATE TABLE webhook_calls (
    id           INTEGER PRIMARY KEY,
    webhook_id   INTEGER NOT NULL REFERENCES webhooks(id),
    seq          INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_status  INTEGER NOT NULL DEFAULT 0,         -- the HTTP status of the last attempt, 0 none
    last_error   TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    done_at      INTEGER,
    UNIQUE (webhook_id, seq)
);

-- How far the webhook courier has read the log (one row).
CREATE TABLE webhook_cursor (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    seq          INTEGER NOT NULL                    -- every leaf below it is dispatched
);
