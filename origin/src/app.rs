//! [`App`]: everything a request handler needs, wired once at start-up by [`crate::startup`].

use std::sync::Arc;

use hyper::header::HeaderValue;

use crate::config::Config;
use crate::counter::{IncrementBatcher, ReadCache};
use crate::health::Readiness;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::traces::Traces;

/// Everything a request handler needs, wired once at start-up.
pub struct App {
    pub config: Config,
    pub batcher: IncrementBatcher,
    pub cache: Arc<ReadCache>,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
    /// `None` unless `OTEL_ENABLED=true`.
    pub traces: Option<Arc<Traces>>,
    pub(crate) read_cache_control: HeaderValue,
}
