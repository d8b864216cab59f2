-- No digest is implicitly SHA-256 (docs/architecture.md, docs/algorithms.md):
-- each message records the algorithm of its digest, which is also the name
-- of its original in the content store (blob.Algorithm; content names are
-- "sha256:<hex>"). Rows written before this migration were all SHA-256, and
-- the default says so. Only the algorithms the content store can name are
-- allowed; a new one comes with its own migration.
ALTER TABLE messages ADD COLUMN digest_alg TEXT NOT NULL DEFAULT 'sha-256'
    CHECK (digest_alg IN ('sha-256'));
