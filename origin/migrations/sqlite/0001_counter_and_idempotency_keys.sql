-- The baseline, as postgres/0001 (an embedded file created before versioning is taken over as it
-- is, hence IF NOT EXISTS). Times are Unix seconds: SQLite has no timestamp type.
CREATE TABLE IF NOT EXISTS request_counter_state (
    id INTEGER PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO request_counter_state (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS counter_idempotency_keys (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX IF NOT EXISTS counter_idempotency_keys_created_at
    ON counter_idempotency_keys (created_at);
