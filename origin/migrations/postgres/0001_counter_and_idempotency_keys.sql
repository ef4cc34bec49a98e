-- The baseline: the original system's counter table (taken over as it is when it already exists,
-- hence IF NOT EXISTS) and the idempotency keys. Applied under the runner's advisory lock, in one
-- transaction with the row that records version 1.
CREATE TABLE IF NOT EXISTS request_counter_state (
    id INTEGER PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO request_counter_state (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS counter_idempotency_keys (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS counter_idempotency_keys_created_at
    ON counter_idempotency_keys (created_at);
