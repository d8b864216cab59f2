-- The delivery queue (package queue; docs/architecture.md, "The delivery
-- queue").
--
-- Each recipient's transport state is kept apart from its read state: the
-- deliveries row's state column keeps saying queued → delivered → read or
-- deemed (or failed), and transport_state says where the copy travels:
-- pending → delivered | failed | awaiting (handed to the recipient's
-- provider, waiting for its evidence) → delivered | failed.
ALTER TABLE deliveries ADD COLUMN transport_state TEXT NOT NULL DEFAULT 'pending'
    CHECK (transport_state IN ('pending', 'awaiting', 'delivered', 'failed'));
UPDATE deliveries SET transport_state = CASE state WHEN 'queued' THEN 'pending' WHEN 'failed' THEN 'failed' ELSE 'delivered' END;

-- deliveries.next_at is now the horizon of the node that accepted the
-- message (it delivers from memory until then); after it, a recipient still
-- pending with no queue item is swept into one.
DROP INDEX deliveries_queue;
CREATE INDEX deliveries_pending ON deliveries(next_at, id) WHERE transport_state = 'pending';

-- Work that needs a schedule: retries, deadlines and leases. A message gets
-- an item only when its first attempt did not settle every recipient or
-- when the node that held it died; other outbound work (evidence returned
-- to another provider, notices, webhooks) will be items of their own kinds.
-- An item is deleted when its work is done. A claimed item has lease_owner
-- set and next_at at the end of its lease: when the owner dies, the item
-- falls due again.
CREATE TABLE queue_items (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('message', 'evidence_return', 'notice', 'webhook')),
    ref          INTEGER NOT NULL,            -- what it is about; for 'message', messages.id
    created_at   INTEGER NOT NULL,            -- when the work began (a message: its acceptance)
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,            -- due at; for a claimed item, the end of its lease
    warn_at      INTEGER,                     -- when the sender is warned, until it has been
    deadline_at  INTEGER NOT NULL,            -- when the work is given up (failure evidence)
    lease_owner  TEXT,                        -- the node working on it
    reason       TEXT NOT NULL DEFAULT '',    -- the last failure, for people
    UNIQUE (kind, ref)
);
CREATE INDEX queue_items_due ON queue_items(kind, next_at, id);
