//! The domain: increments go through the [`IncrementBatcher`] (write path), reads through the
//! [`ReadCache`] (read path). Neither knows which store is behind them.

mod batcher;
mod cache;
mod handoff;
pub mod idempotency;

pub use batcher::{BatchLimits, IncrementBatcher, IncrementError, WriterParts};
pub use cache::ReadCache;
