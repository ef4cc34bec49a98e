//! The Counter Service fault suite (issue 9): the origin under database outages, SIGKILL,
//! rolling restarts behind a load balancer, slow and malformed clients, and failures that put
//! secrets close to an error message. Each case starts real processes on loopback, injects its
//! fault, reports figures and fails when a promise of docs/design.md §1–§2 breaks.

pub mod cases;
pub mod database;
pub mod error;
pub mod load;
pub mod report;

pub use error::Error;
