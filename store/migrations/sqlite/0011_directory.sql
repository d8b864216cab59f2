-- The newest provider directory this provider has accepted (package
-- directory): kept so that a restart can neither lose it nor be rolled back
-- to an older version. One row.
CREATE TABLE directory_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     INTEGER NOT NULL,
    signed      BLOB NOT NULL,   -- the signed note, as the authority published it
    updated_at  INTEGER NOT NULL
);
