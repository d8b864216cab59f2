-- Accounts, addresses, operators, credentials and the audit trail (SQLite).
-- Rules enforced here, not only in code:
--   * an address once issued is reserved forever (addresses: no UPDATE, no DELETE);
--   * no operation changes an account's owner or address;
--   * the audit trail is append-only.

CREATE TABLE addresses (
    address    TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL,           -- "TCKN:…", "VKN:…", "MERSIS:…", "DETSIS:…"
    issued_at  INTEGER NOT NULL
);
CREATE TRIGGER addresses_no_update BEFORE UPDATE ON addresses
BEGIN SELECT RAISE(ABORT, 'addresses are append-only: an issued address is reserved forever'); END;
CREATE TRIGGER addresses_no_delete BEFORE DELETE ON addresses
BEGIN SELECT RAISE(ABORT, 'addresses are append-only: an issued address is reserved forever'); END;

CREATE TABLE accounts (
    id           INTEGER PRIMARY KEY,
    address      TEXT NOT NULL UNIQUE REFERENCES addresses(address),
    kind         TEXT NOT NULL CHECK (kind IN ('person', 'company', 'public')),
    capability   TEXT NOT NULL CHECK (capability IN ('send-receive', 'receive-only')),
    owner_id     TEXT NOT NULL,
    owner_name   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('applied', 'verified', 'active', 'suspended', 'closed')),
    quota_bytes  INTEGER NOT NULL,
    used_bytes   INTEGER NOT NULL DEFAULT 0,
    password     TEXT,                  -- argon2id PHC string; NULL for accounts used only through operators
    created_at   INTEGER NOT NULL,
    verified_at  INTEGER,
    verified_by  TEXT,
    closed_at    INTEGER,
    reopened_at  INTEGER
);
CREATE INDEX accounts_owner ON accounts(owner_id);
-- The address row must belong to the same identity.
CREATE TRIGGER accounts_address_owner BEFORE INSERT ON accounts
WHEN (SELECT owner_id FROM addresses WHERE address = NEW.address) IS NOT NEW.owner_id
BEGIN SELECT RAISE(ABORT, 'immutable: the address is reserved for another identity'); END;
CREATE TRIGGER accounts_owner_immutable BEFORE UPDATE OF owner_id, address, kind ON accounts
WHEN NEW.owner_id IS NOT OLD.owner_id OR NEW.address IS NOT OLD.address OR NEW.kind IS NOT OLD.kind
BEGIN SELECT RAISE(ABORT, 'immutable: an account''s owner, address and kind never change'); END;
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
BEGIN SELECT RAISE(ABORT, 'append-only: accounts are closed, never deleted'); END;

-- Lifecycle history and fees owed on reopening.
CREATE TABLE account_events (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    at          INTEGER NOT NULL,
    event       TEXT NOT NULL,          -- applied, verified, activated, suspended, resumed, closed, reopened
    detail      TEXT NOT NULL DEFAULT '',
    fee_days    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX account_events_account ON account_events(account_id);

-- Qualified e-signature certificates registered for an account's owner.
CREATE TABLE certificates (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER REFERENCES accounts(id),
    operator_id  INTEGER REFERENCES operators(id),
    fingerprint  TEXT NOT NULL,         -- SHA-256 of the DER, hex
    der          BLOB NOT NULL,
    subject      TEXT NOT NULL,
    not_before   INTEGER NOT NULL,
    not_after    INTEGER NOT NULL,
    added_at     INTEGER NOT NULL,
    revoked_at   INTEGER,
    CHECK ((account_id IS NULL) <> (operator_id IS NULL))
);
CREATE INDEX certificates_account ON certificates(account_id);
CREATE INDEX certificates_operator ON certificates(operator_id);

-- Operators (işlem yetkilisi): real persons acting for company or
-- public-body accounts, each with their own credentials.
CREATE TABLE operators (
    id          INTEGER PRIMARY KEY,
    tckn        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    password    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TRIGGER operators_tckn_immutable BEFORE UPDATE OF tckn ON operators
WHEN NEW.tckn IS NOT OLD.tckn
BEGIN SELECT RAISE(ABORT, 'immutable: an operator''s TCKN never changes'); END;

CREATE TABLE operator_roles (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    operator_id  INTEGER NOT NULL REFERENCES operators(id),
    role         TEXT NOT NULL CHECK (role IN ('main', 'sub')),
    grants       INTEGER NOT NULL DEFAULT 0,   -- bit set, see account.Grant
    added_at     INTEGER NOT NULL,
    removed_at   INTEGER
);
-- One main operator per account, one live role per operator and account.
CREATE UNIQUE INDEX operator_roles_one_main ON operator_roles(account_id) WHERE role = 'main' AND removed_at IS NULL;
CREATE UNIQUE INDEX operator_roles_live ON operator_roles(account_id, operator_id) WHERE removed_at IS NULL;
CREATE INDEX operator_roles_operator ON operator_roles(operator_id);

-- App passwords for mail clients, and web sessions.
CREATE TABLE app_passwords (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER REFERENCES accounts(id),
    operator_id  INTEGER REFERENCES operators(id),
    name         TEXT NOT NULL,
    password     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    CHECK ((account_id IS NULL) <> (operator_id IS NULL))
);
CREATE INDEX app_passwords_account ON app_passwords(account_id);
CREATE INDEX app_passwords_operator ON app_passwords(operator_id);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,      -- SHA-256 of the session token, hex
    account_id   INTEGER REFERENCES accounts(id),
    operator_id  INTEGER REFERENCES operators(id),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

-- The audit trail: who did what, when, from where. Append-only.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT '',
    remote  TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'append-only: the audit trail cannot be changed'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'append-only: the audit trail cannot be changed'); END;
