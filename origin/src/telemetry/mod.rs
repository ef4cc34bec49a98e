//! Logs, metrics and (with `OTEL_ENABLED=true`) traces.

pub mod logs;
pub mod metrics;
pub mod traces;
