-- Retrieval (read evidence 60) and user copies (SQLite).

-- Who has been served the body of a delivered KEP message, by any fetch
-- (a peek included), so that a \Seen set later by the same principal counts
-- as the retrieval (docs/evidence.md, "What counts as a retrieval"). Kept in
-- the store so that it survives reconnects and restarts.
CREATE TABLE retrieval_served (
    delivery_id  INTEGER NOT NULL REFERENCES deliveries(id),
    principal    TEXT NOT NULL,            -- account:ADDRESS or operator:ID (no TCKN)
    at           INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, principal)
);

-- A new kind of mailbox message: 'copy', a message a client appended
-- (APPEND to Sent or a user folder) that matches no KEP message: shown as
-- not attested by the provider. SQLite cannot change a CHECK in place, so
-- the table is rebuilt with the same columns and index.
CREATE TABLE mailbox_messages_new (
    id             INTEGER PRIMARY KEY,
    mailbox_id     INTEGER NOT NULL REFERENCES mailboxes(id),
    uid            INTEGER NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('kep', 'sent', 'evidence', 'notice', 'draft', 'copy')),
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
INSERT INTO mailbox_messages_new SELECT id, mailbox_id, uid, kind, message_id, delivery_id, ref, content, size, internal_date, flags, modseq FROM mailbox_messages;
DROP TABLE mailbox_messages;
ALTER TABLE mailbox_messages_new RENAME TO mailbox_messages;
CREATE INDEX mailbox_messages_content ON mailbox_messages(content);
-- Finding the account's Sent copy of a KEP message (APPEND deduplication,
-- Delil subjects).
CREATE INDEX mailbox_messages_message ON mailbox_messages(message_id) WHERE message_id IS NOT NULL;
