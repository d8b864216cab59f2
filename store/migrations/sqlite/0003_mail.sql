-- Messages, deliveries and mailboxes (SQLite).

-- One row per accepted message: the signed original lives in the content
-- store under digest; the row holds what evidence and routing need.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    digest          BLOB NOT NULL,            -- SHA-256 of the exact signed original
    size            INTEGER NOT NULL,
    sender_account  INTEGER NOT NULL REFERENCES accounts(id),
    operator_id     INTEGER REFERENCES operators(id),
    from_addr       TEXT NOT NULL,
    sender_name     TEXT NOT NULL DEFAULT '',  -- the sender's name at acceptance, as the envelope shows it
    header_id       TEXT NOT NULL DEFAULT '', -- RFC 5322 Message-ID
    ileti_id        TEXT NOT NULL DEFAULT '', -- X-TR-REM-iletiID
    ileti_tip       TEXT NOT NULL,            -- standart, eYazisma, eTebligat
    submitted_at    INTEGER NOT NULL,
    evidence_id     TEXT NOT NULL,            -- the acceptance evidence (10)
    envelope_params TEXT,                     -- what the envelope was rendered with (provider name, domain, time zone), JSON
    envelope_sig    BLOB,                     -- the detached CMS signature of the provider's envelope, once made
    envelope_size   INTEGER                   -- the envelope's size in bytes
);
CREATE INDEX messages_sender ON messages(sender_account, id);
CREATE INDEX messages_digest ON messages(digest);

-- One row per recipient: the delivery queue and its outcome.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL REFERENCES messages(id),
    recipient       TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'failed', 'read', 'deemed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL,
    account_id      INTEGER REFERENCES accounts(id),   -- the recipient's account, once delivered
    delivered_at    INTEGER,
    deemed_at       INTEGER,                           -- deemed-read deadline, once delivered
    rule            TEXT NOT NULL DEFAULT '',          -- the deemed-read rule that sets deemed_at
    reason          TEXT NOT NULL DEFAULT '',
    UNIQUE (message_id, recipient)
);
CREATE INDEX deliveries_queue ON deliveries(next_at, id) WHERE state = 'queued';
CREATE INDEX deliveries_deemed ON deliveries(deemed_at) WHERE state = 'delivered';

-- Folders of each account.
CREATE TABLE mailboxes (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    name         TEXT NOT NULL,
    uidvalidity  INTEGER NOT NULL,
    uidnext      INTEGER NOT NULL DEFAULT 1,
    modseq       INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);

-- Messages in folders. content is a digest in the content store; an
-- evidence item (Delil) or a quota notice has ref instead and is rendered on demand.
CREATE TABLE mailbox_messages (
    id             INTEGER PRIMARY KEY,
    mailbox_id     INTEGER NOT NULL REFERENCES mailboxes(id),
    uid            INTEGER NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('kep', 'sent', 'evidence', 'notice', 'draft')),
    message_id     INTEGER REFERENCES messages(id),
    delivery_id    INTEGER REFERENCES deliveries(id),
    ref            INTEGER,                 -- evidence items: the leaf index; notices: the quota level
    content        BLOB,
    size           INTEGER NOT NULL,
    internal_date  INTEGER NOT NULL,
    flags          TEXT NOT NULL DEFAULT '',
    modseq         INTEGER NOT NULL DEFAULT 1,
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX mailbox_messages_content ON mailbox_messages(content);

-- Usage for billing (charges are per recipient address) is read from
-- messages and deliveries: one delivery row per recipient of each message.

-- Quota notices already sent (80, 90, 100 %), so each is sent once per crossing.
CREATE TABLE quota_notices (
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    level       INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (account_id, level)
);

-- Progress of background workers over the evidence log (the Delil courier).
CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    pos   INTEGER NOT NULL
);
