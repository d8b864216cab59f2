-- Messages from another provider (PostgreSQL). docs/relay.md, "Data
-- model": a message relayed in from another provider has no local sender,
-- so sender_account becomes nullable, and the message records the provider
-- it came from (origin_provider, its directory id hsNN) and the id of that
-- provider's acceptance evidence 10 (origin_evidence). The pair is the
-- reception point's deduplication key. A local message has neither.
ALTER TABLE messages ALTER COLUMN sender_account DROP NOT NULL;
ALTER TABLE messages ADD COLUMN origin_provider TEXT;
ALTER TABLE messages ADD COLUMN origin_evidence TEXT;
ALTER TABLE messages ADD CONSTRAINT messages_origin_pair
    CHECK ((origin_provider IS NULL) = (origin_evidence IS NULL));
ALTER TABLE messages ADD CONSTRAINT messages_sender_or_origin
    CHECK (sender_account IS NOT NULL OR origin_provider IS NOT NULL);
CREATE UNIQUE INDEX messages_origin ON messages(origin_provider, origin_evidence)
    WHERE origin_provider IS NOT NULL;
