//! Every statement a store runs while serving, one module per dialect, with the privileges they
//! need: `counter-origin migrate` grants the application role exactly [`postgres::APP_PRIVILEGES`],
//! so a new statement that needs more fails the tests that run the contract under that role.
//! (The schema itself is in `origin/migrations/`, see [`super::schema`].)

pub mod postgres {
    pub const ADD: &str =
        "UPDATE request_counter_state SET value = value + $1 WHERE id = $2 RETURNING value";
    pub const GET: &str = "SELECT value FROM request_counter_state WHERE id = $1";
    /// Taking the counter row's lock first serialises keyed batches across pods: once we hold it,
    /// a key committed by anyone else is visible to our next statement (READ COMMITTED).
    pub const LOCK: &str = "SELECT value FROM request_counter_state WHERE id = $1 FOR UPDATE";
    pub const STORED_KEYS: &str =
        "SELECT key, value FROM counter_idempotency_keys WHERE key = ANY($1)";
    pub const STORE_KEYS: &str =
        "INSERT INTO counter_idempotency_keys (key, value) SELECT * FROM unnest($1::text[], $2::bigint[])";
    /// Keys deleted per statement: pruning never holds many row locks or runs one long statement.
    pub const PRUNE_SLICE: u64 = 5000;
    pub const PRUNE: &str = "DELETE FROM counter_idempotency_keys WHERE key IN (
        SELECT key FROM counter_idempotency_keys WHERE created_at < now() - make_interval(secs => $1) LIMIT 5000)";

    /// What the statements above (and the schema version check) need, table by table, and nothing
    /// more. `UPDATE … RETURNING` and `FOR UPDATE` read, so they need SELECT as well as UPDATE.
    pub const APP_PRIVILEGES: &[(&str, &[&str])] = &[
        ("request_counter_state", &["SELECT", "UPDATE"]),
        ("counter_idempotency_keys", &["SELECT", "INSERT", "DELETE"]),
        (super::super::schema::VERSION_TABLE, &["SELECT"]),
    ];
}

/// The embedded store's statements (used by `store/embedded.rs`).
pub mod sqlite {
    pub const ADD: &str =
        "UPDATE request_counter_state SET value = value + ?1 WHERE id = ?2 RETURNING value";
    pub const GET: &str = "SELECT value FROM request_counter_state WHERE id = ?1";
    pub const STORED_KEY: &str = "SELECT value FROM counter_idempotency_keys WHERE key = ?1";
    pub const STORE_KEY: &str = "INSERT INTO counter_idempotency_keys (key, value) VALUES (?1, ?2)";
    pub const PRUNE: &str =
        "DELETE FROM counter_idempotency_keys WHERE created_at < unixepoch() - ?1";
    /// Readiness's write probe: SQLite writes no page for `value = value + 0`, so it inserts and
    /// deletes a key no client can send (keys are visible ASCII only: no spaces).
    pub const PROBE_WRITE: &str =
        "INSERT INTO counter_idempotency_keys (key, value) VALUES (' write probe ', 0);
         DELETE FROM counter_idempotency_keys WHERE key = ' write probe ';";
}

#[cfg(test)]
mod tests {
    #[test]
    fn pruning_deletes_the_slice_it_names() {
        let limit = format!("LIMIT {})", super::postgres::PRUNE_SLICE);
        assert!(
            super::postgres::PRUNE.ends_with(&limit),
            "{}",
            super::postgres::PRUNE
        );
    }
}
