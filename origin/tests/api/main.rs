//! Integration tests: the real server on loopback sockets, a real PostgreSQL (a fresh database
//! per test) and the embedded store. `TEST_DATABASE_URL` names the server (`make test` starts a
//! throwaway one); without it the PostgreSQL tests fail with a message saying so.

mod helpers;

mod cli;
mod contract;
mod faults;
mod http_limits;
mod iam;
mod idempotency;
mod lifecycle;
mod migrate_command;
mod schema;
mod tls;
mod tracing;
mod write_path;
