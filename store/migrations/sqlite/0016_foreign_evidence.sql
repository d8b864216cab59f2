-- Evidence received from another provider (docs/relay.md, "Data model").
-- The recipient's provider sends each evidence it issues for a message of
-- ours (20/21, 40/41, 60/61) back as a bundle; we keep the bundle unchanged
-- here, apart from our own evidence table, so that evidence_once still
-- means "we issued this stage for this recipient once" (a foreign 20 beside
-- our own 31 is no conflict). Its receipt is a leaf of our own log (kind
-- receipt): seq is that leaf's index, and the leaf's entry is the SHA-256
-- of the receipt text (relay/receipt.go) recomputed from these columns by
-- `kep log verify`.
CREATE TABLE foreign_evidence (
    seq          INTEGER PRIMARY KEY,          -- leaf index of its receipt in our log
    evidence_id  TEXT NOT NULL UNIQUE,         -- the issuing provider's evidence id
    code         INTEGER NOT NULL,             -- 20, 21, 40, 41, 60, 61
    provider     TEXT NOT NULL,                -- directory id (hsNN) of the issuing provider
    message_id   INTEGER NOT NULL REFERENCES messages(id),
    account_id   INTEGER NOT NULL REFERENCES accounts(id), -- the sender, whose Delil shows it
    recipient    TEXT NOT NULL,
    event_time   INTEGER NOT NULL,             -- the evidence's own time (ms)
    received_at  INTEGER NOT NULL,             -- when we received it (ms), part of the receipt leaf
    bundle       BLOB NOT NULL                 -- the bundle exactly as received
);
CREATE INDEX foreign_evidence_message ON foreign_evidence(message_id, recipient);
