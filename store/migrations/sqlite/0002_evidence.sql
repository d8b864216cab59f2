-- The evidence store and its Merkle log (SQLite). Both are append-only:
-- triggers refuse UPDATE and DELETE, so evidence can never be changed or
-- removed through the database either.

-- One row per evidence; seq is its leaf index in the log.
CREATE TABLE evidence (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,     -- EvidenceIdentifier (UUID)
    code        INTEGER NOT NULL,         -- KEP code: 10, 11, 20, 21, 31, 40, 41, 60, 61
    stage       TEXT NOT NULL,            -- submission, relay, delivery, retrieval
    account_id  INTEGER,                  -- whose evidence folder (Delil) it reaches
    message_id  INTEGER,                  -- the message it is about
    subject     TEXT NOT NULL DEFAULT '', -- the recipient it concerns ('' for the whole message)
    event_time  INTEGER NOT NULL,
    format      INTEGER NOT NULL,         -- encoding of xml: 0 raw, else the evidence_dicts id (see evidence/codec.go)
    xml         BLOB NOT NULL             -- the signed evidence document, encoded
);
CREATE INDEX evidence_account ON evidence(account_id, seq);
-- Each stage happens once per message and recipient: a second 40/41, or a
-- 61 after a 60, is refused by the database. The index also serves the
-- look-ups of a message's evidence. (Rejections have no message: NULLs
-- never collide.)
CREATE UNIQUE INDEX evidence_once ON evidence(message_id, stage, subject);
CREATE TRIGGER evidence_no_update BEFORE UPDATE ON evidence
BEGIN SELECT RAISE(ABORT, 'append-only: evidence cannot be changed'); END;
CREATE TRIGGER evidence_no_delete BEFORE DELETE ON evidence
BEGIN SELECT RAISE(ABORT, 'append-only: evidence cannot be removed'); END;

-- The stored hashes of the Merkle tree (golang.org/x/mod/sumdb/tlog
-- StoredHashIndex numbering; RFC 6962 hashing).
CREATE TABLE tlog_hashes (
    idx   INTEGER PRIMARY KEY,
    hash  BLOB NOT NULL
);
CREATE TRIGGER tlog_hashes_no_update BEFORE UPDATE ON tlog_hashes
BEGIN SELECT RAISE(ABORT, 'append-only: log hashes cannot be changed'); END;
CREATE TRIGGER tlog_hashes_no_delete BEFORE DELETE ON tlog_hashes
BEGIN SELECT RAISE(ABORT, 'append-only: log hashes cannot be removed'); END;

-- Signed checkpoints (C2SP tlog-checkpoint in a C2SP signed note), each
-- with the RFC 3161 time-stamp token over the signed note.
CREATE TABLE checkpoints (
    size        INTEGER PRIMARY KEY,
    root        BLOB NOT NULL,
    note        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    tst         BLOB NOT NULL,
    tst_time    INTEGER NOT NULL
);
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'append-only: checkpoints cannot be changed'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'append-only: checkpoints cannot be removed'); END;

-- Later time stamps over a checkpoint (kep log retimestamp), so evidence
-- whose first time stamp has aged still chains to a valid one (RFC 4998 idea).
CREATE TABLE checkpoint_stamps (
    id          INTEGER PRIMARY KEY,
    size        INTEGER NOT NULL REFERENCES checkpoints(size),
    tst         BLOB NOT NULL,
    tst_time    INTEGER NOT NULL
);
CREATE TRIGGER checkpoint_stamps_no_update BEFORE UPDATE ON checkpoint_stamps
BEGIN SELECT RAISE(ABORT, 'append-only: time stamps cannot be changed'); END;
CREATE TRIGGER checkpoint_stamps_no_delete BEFORE DELETE ON checkpoint_stamps
BEGIN SELECT RAISE(ABORT, 'append-only: time stamps cannot be removed'); END;
