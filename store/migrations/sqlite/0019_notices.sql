-- Notices by SMS and e-mail (package notice, docs/notices.md).
--
-- Who wants notices, and where: the account's owner (operator_id 0) and
-- each operator choose a mobile number and/or an ordinary e-mail address.
-- An empty value turns that channel off. An operator's notices also need
-- the sms-notice or email-notice grant (operator_roles.grants), checked
-- when each notice is sent.
CREATE TABLE notice_prefs (
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    operator_id  INTEGER NOT NULL DEFAULT 0,   -- 0: the owner; else operators.id
    sms          TEXT NOT NULL DEFAULT '',     -- E.164 mobile number, +90…
    email        TEXT NOT NULL DEFAULT '',     -- an ordinary (non-KEP) e-mail address
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, operator_id)
);

-- One row per notice to send: the dedupe key is (delivery, kind, channel,
-- principal), so that a delivery retried or a hook run twice never sends a
-- second one. The destination is not stored here: it is read from
-- notice_prefs when the notice is sent, so that a preference removed or a
-- grant revoked stops notices still queued. Its queue item (kind 'notice',
-- ref = notices.id) schedules the attempts.
CREATE TABLE notices (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('arrival', 'deadline')),
    channel      TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    delivery_id  INTEGER NOT NULL REFERENCES deliveries(id),
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    operator_id  INTEGER NOT NULL DEFAULT 0,   -- 0: the owner
    due_at       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    outcome      TEXT NOT NULL DEFAULT '' CHECK (outcome IN ('', 'sent', 'dropped', 'failed')),
    done_at      INTEGER,
    reason       TEXT NOT NULL DEFAULT '',     -- why dropped or failed, for people (no personal data)
    UNIQUE (delivery_id, kind, channel, operator_id)
);
