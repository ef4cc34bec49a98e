//! Logs and metrics (traces join here with the observability work).

pub mod logs;
pub mod metrics;
