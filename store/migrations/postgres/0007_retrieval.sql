-- Retrieval (read evidence 60) and user copies (PostgreSQL).

-- Who has been served the body of a delivered KEP message, by any fetch
-- (a peek included), so that a \Seen set later by the same principal counts
-- as the retrieval (docs/evidence.md, "What counts as a retrieval"). Kept in
-- the store so that it survives reconnects and restarts.
CREATE TABLE retrieval_served (
    delivery_id  BIGINT NOT NULL REFERENCES deliveries(id),
    principal    TEXT NOT NULL,            -- account:ADDRESS or operator:ID (no TCKN)
    at           BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, principal)
);

-- A new kind of mailbox message: 'copy', a message a client appended
-- (APPEND to Sent or a user folder) that matches no KEP message: shown as
-- not attested by the provider.
ALTER TABLE mailbox_messages DROP CONSTRAINT mailbox_messages_kind_check;
ALTER TABLE mailbox_messages ADD CONSTRAINT mailbox_messages_kind_check
    CHECK (kind IN ('kep', 'sent', 'evidence', 'notice', 'draft', 'copy'));
-- Finding the account's Sent copy of a KEP message (APPEND deduplication,
-- Delil subjects).
CREATE INDEX mailbox_messages_message ON mailbox_messages(message_id) WHERE message_id IS NOT NULL;
