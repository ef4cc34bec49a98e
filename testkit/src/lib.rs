//! Test tooling the origin's integration tests, the load tester and the fault suite share, so
//! each exists once: starting an origin binary and waiting for it ([`origin`]), a fresh
//! PostgreSQL database ([`database`]), free loopback ports ([`ports`]), the machine's description
//! ([`machine`]), and one HTTP/1.1 response parser ([`response`]) under both the keep-alive load
//! client ([`client`], the load tester's hot path) and the one-shot probes ([`probe`]). The
//! `testkit` binary gives the shell scripts the origin launcher (`testkit with-origin`), and
//! [`proxy`] is the latency-injecting TCP proxy `make bench` puts in front of PostgreSQL;
//! [`procfs`] reads processes' CPU time and memory (the benchmark's CPU per request), and
//! [`affinity`] keeps the benchmark's latency runs on chosen cores.

pub mod affinity;
pub mod client;
pub mod database;
pub mod error;
pub mod machine;
pub mod origin;
pub mod ports;
pub mod probe;
pub mod procfs;
pub mod proxy;
pub mod response;

pub use database::Database;
pub use error::Error;
pub use machine::Machine;
pub use origin::{Origin, OriginSpec};
pub use ports::free_addr;
