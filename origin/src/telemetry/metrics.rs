//! Prometheus metrics, served only on the metrics listener.
//!
//! Names and labels of the original system are kept (`http_requests_total{method,endpoint,status}`,
//! `http_request_duration_seconds{method,endpoint}`, `counter_value`) so its dashboards keep
//! working. Every label value comes from a fixed set ([`Endpoint`], [`Method`], the status codes we
//! answer with), so no request can create a series. Hot-path handles are resolved once: a
//! request costs two atomic adds and a histogram observation, not a label hash.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The matched route, as the `endpoint` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Counter,
    Healthz,
    Readyz,
    Static,
    Other,
}

impl Endpoint {
    const ALL: [Endpoint; 5] = [
        Self::Counter,
        Self::Healthz,
        Self::Readyz,
        Self::Static,
        Self::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Counter => "/api/counter",
            Self::Healthz => "/healthz",
            Self::Readyz => "/readyz",
            Self::Static => "static",
            Self::Other => "other",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Options,
    Other,
}

impl Method {
    const ALL: [Method; 5] = [
        Self::Get,
        Self::Head,
        Self::Post,
        Self::Options,
        Self::Other,
    ];

    pub fn of(method: &hyper::Method) -> Self {
        match *method {
            hyper::Method::GET => Self::Get,
            hyper::Method::HEAD => Self::Head,
            hyper::Method::POST => Self::Post,
            hyper::Method::OPTIONS => Self::Options,
            _ => Self::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Options => "OPTIONS",
            Self::Other => "other",
        }
    }
}

/// Every status code the router answers with; hyper itself answers 400/408/431 on parse errors
/// before a request reaches us, and those never reach these metrics.
const STATUSES: [u16; 13] = [
    200, 204, 304, 400, 403, 404, 405, 408, 413, 431, 500, 503, 504,
];

/// Buckets fine enough for a cached GET (answered in tens of microseconds: below 100 µs every
/// quantile would be an interpolation inside one bucket) and coarse enough to see timeouts.
/// `0.05` must stay: the latency SLO (99% of POSTs under 50 ms) reads that bucket.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The 5xx answers of the API route, created at 0 on start-up: a rate over a series that does
/// not exist yet is no rate at all, so a pod's first errors (before a scrape had seen the
/// series) would never count, and a 5xx ratio would read "no data" instead of 0.
const API_ERRORS: [(Method, u16); 4] = [
    (Method::Get, 503),
    (Method::Get, 504),
    (Method::Post, 503),
    (Method::Post, 504),
];

const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// A connection pool at one moment (the PostgreSQL store's; the embedded store has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    pub max: usize,
    /// Connections open, in use or idle.
    pub open: usize,
    pub idle: usize,
    /// Callers waiting for a connection: the pool is the bottleneck.
    pub waiting: usize,
}

type PoolSource = Box<dyn Fn() -> Option<PoolUsage> + Send + Sync>;

#[derive(Clone, Copy)]
pub enum StoreOp {
    Add,
    Get,
    Ping,
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    /// `[endpoint][method][status index]`, filled on first use.
    request_handles: [[[OnceLock<IntCounter>; STATUSES.len()]; 5]; 5],
    durations: [[Histogram; 5]; 5],
    pub counter_value: IntGauge,
    pub batch_size: Histogram,
    store_statements: [Histogram; 3],
    pub write_queue_depth: IntGauge,
    /// The highest depth since the previous scrape (`observe_queue_depth`), published at render.
    write_queue_high_water: IntGauge,
    queue_peak: AtomicI64,
    pub write_queue_capacity: IntGauge,
    pool_source: OnceLock<PoolSource>,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    pool_waiting: IntGauge,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    pub committed: IntCounter,
    pub shed: IntCounter,
    pub failed: IntCounter,
    pub ambiguous: IntCounter,
    pub expired: IntCounter,
    pub replayed: IntCounter,
    pub ready: IntGauge,
    connections_closed: [IntCounter; CloseReason::ALL.len()],
}

/// Why the origin closed a connection itself rather than its client
/// (`counter_connections_closed_total{reason}`; server.rs decides).
/// Ordered by how readily an open connection is evicted (server.rs `evict_one`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CloseReason {
    /// At the limit: it had sent no request.
    EvictedUnproven,
    /// At the limit: its client was not reading its answers.
    EvictedStalled,
    /// At the limit: it was the longest idle.
    EvictedIdle,
    /// A request head (or the first request) did not arrive within the header timeout.
    HeadTimeout,
    /// Its client read nothing of what we had for it within the header timeout.
    SendStalled,
    /// Idle for the keep-alive timeout.
    IdleTimeout,
    /// A request on it timed out waiting for its body (a client trickling bytes).
    SlowRequest,
}

impl CloseReason {
    pub const ALL: [CloseReason; 7] = [
        CloseReason::EvictedUnproven,
        CloseReason::EvictedStalled,
        CloseReason::EvictedIdle,
        CloseReason::HeadTimeout,
        CloseReason::SendStalled,
        CloseReason::IdleTimeout,
        CloseReason::SlowRequest,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::EvictedUnproven => "evicted_unproven",
            CloseReason::EvictedStalled => "evicted_stalled",
            CloseReason::EvictedIdle => "evicted_idle",
            CloseReason::HeadTimeout => "head_timeout",
            CloseReason::SendStalled => "send_stalled",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::SlowRequest => "slow_request",
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered by the public listener",
            ),
            &["method", "endpoint", "status"],
        )
        .unwrap();
        let durations_vec = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request head to response, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "endpoint"],
        )
        .unwrap();
        let durations = Endpoint::ALL
            .map(|e| Method::ALL.map(|m| durations_vec.with_label_values(&[m.label(), e.label()])));
        let store_vec = HistogramVec::new(
            HistogramOpts::new(
                "counter_store_statement_duration_seconds",
                "Store calls, by operation",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["op"],
        )
        .unwrap();
        let store_statements = ["add", "get", "ping"].map(|op| store_vec.with_label_values(&[op]));
        let increments = IntCounterVec::new(
            Opts::new(
                "counter_increments_total",
                "Increments by outcome (committed, shed, failed, ambiguous, expired; replayed: a retried Idempotency-Key answered from its first commit)",
            ),
            &["outcome"],
        )
        .unwrap();
        let outcome = |o: &str| increments.with_label_values(&[o]);
        let cache = IntCounterVec::new(
            Opts::new(
                "counter_read_cache_requests_total",
                "Reads answered from the origin's cache (hit) or the store (miss)",
            ),
            &["result"],
        )
        .unwrap();
        let metrics = Self {
            request_handles: Default::default(),
            durations,
            counter_value: IntGauge::new(
                "counter_value",
                "Highest committed counter value this process has seen",
            )
            .unwrap(),
            batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "counter_batch_size",
                    "Increments committed per store statement",
                )
                .buckets(BATCH_BUCKETS.to_vec()),
            )
            .unwrap(),
            store_statements,
            write_queue_depth: IntGauge::new(
                "counter_write_queue_depth",
                "Increments waiting for the writer, at scrape time",
            )
            .unwrap(),
            write_queue_high_water: IntGauge::new(
                "counter_write_queue_high_water",
                "Most increments waiting for the writer at once since the previous scrape",
            )
            .unwrap(),
            queue_peak: AtomicI64::new(0),
            pool_source: OnceLock::new(),
            pool_connections: IntGaugeVec::new(
                Opts::new(
                    "counter_store_pool_connections",
                    "Store pool connections by state (in_use, idle), at scrape time",
                ),
                &["state"],
            )
            .unwrap(),
            pool_max: IntGauge::new(
                "counter_store_pool_max_connections",
                "Store pool size limit (DATABASE_POOL_SIZE)",
            )
            .unwrap(),
            pool_waiting: IntGauge::new(
                "counter_store_pool_waiting",
                "Store calls waiting for a pool connection, at scrape time",
            )
            .unwrap(),
            write_queue_capacity: IntGauge::new(
                "counter_write_queue_capacity",
                "Increments the write queue holds before shedding (WRITE_QUEUE_CAPACITY)",
            )
            .unwrap(),
            cache_hits: cache.with_label_values(&["hit"]),
            cache_misses: cache.with_label_values(&["miss"]),
            committed: outcome("committed"),
            shed: outcome("shed"),
            failed: outcome("failed"),
            ambiguous: outcome("ambiguous"),
            expired: outcome("expired"),
            replayed: outcome("replayed"),
            ready: IntGauge::new("counter_ready", "1 when this process reports ready").unwrap(),
            connections_closed: CloseReason::ALL.map(|reason| {
                IntCounter::with_opts(
                    Opts::new(
                        "counter_connections_closed_total",
                        "Connections the origin closed itself, by reason",
                    )
                    .const_label("reason", reason.label()),
                )
                .unwrap()
            }),
            requests,
            registry,
        };
        let r = &metrics.registry;
        r.register(Box::new(metrics.requests.clone())).unwrap();
        r.register(Box::new(durations_vec)).unwrap();
        r.register(Box::new(store_vec)).unwrap();
        r.register(Box::new(increments)).unwrap();
        r.register(Box::new(cache)).unwrap();
        r.register(Box::new(metrics.counter_value.clone())).unwrap();
        r.register(Box::new(metrics.batch_size.clone())).unwrap();
        r.register(Box::new(metrics.write_queue_depth.clone()))
            .unwrap();
        r.register(Box::new(metrics.write_queue_high_water.clone()))
            .unwrap();
        r.register(Box::new(metrics.write_queue_capacity.clone()))
            .unwrap();
        // Both states exist from the start (at 0 without a pool), so panels never read "no data".
        for state in ["in_use", "idle"] {
            metrics.pool_connections.with_label_values(&[state]);
        }
        r.register(Box::new(metrics.pool_connections.clone()))
            .unwrap();
        r.register(Box::new(metrics.pool_max.clone())).unwrap();
        r.register(Box::new(metrics.pool_waiting.clone())).unwrap();
        r.register(Box::new(metrics.ready.clone())).unwrap();
        for counter in &metrics.connections_closed {
            r.register(Box::new(counter.clone())).unwrap();
        }
        // Constant 1; the labels say which build runs (build.rs), so a dashboard can count them.
        let build_info = IntGauge::with_opts(
            Opts::new("counter_build_info", "1, labelled with the running build")
                .const_label("version", env!("CARGO_PKG_VERSION"))
                .const_label("revision", env!("COUNTER_REVISION")),
        )
        .unwrap();
        build_info.set(1);
        r.register(Box::new(build_info)).unwrap();
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .unwrap();
        for (method, status) in API_ERRORS {
            metrics.request_counter(method, Endpoint::Counter, status);
        }
        metrics
    }

    /// The request counter of one label set; resolved once for the statuses we answer with.
    fn request_counter(&self, method: Method, endpoint: Endpoint, status: u16) -> IntCounter {
        let labels = |status: &str| [method.label(), endpoint.label(), status].map(str::to_owned);
        match STATUSES.iter().position(|&s| s == status) {
            Some(i) => self.request_handles[endpoint as usize][method as usize][i]
                .get_or_init(|| {
                    self.requests
                        .with_label_values(&labels(&status.to_string()))
                })
                .clone(),
            None => self
                .requests
                .with_label_values(&labels(&status.to_string())),
        }
    }

    /// Reads the store's connection pool at each scrape (set once, at start-up). Without a pool
    /// (the embedded store) the pool series stay at 0.
    pub fn watch_pool(&self, source: impl Fn() -> Option<PoolUsage> + Send + Sync + 'static) {
        let _ = self.pool_source.set(Box::new(source));
    }

    /// A connection the origin closed itself (all reasons exist at 0 from start-up).
    pub fn connection_closed(&self, reason: CloseReason) {
        self.connections_closed[reason as usize].inc();
    }

    /// Records the write queue's depth as the writer found it; the scrape publishes the highest.
    pub fn observe_queue_depth(&self, depth: usize) {
        self.queue_peak.fetch_max(depth as i64, Ordering::Relaxed);
    }

    pub fn observe_request(
        &self,
        method: Method,
        endpoint: Endpoint,
        status: u16,
        elapsed: Duration,
    ) {
        let (e, m) = (endpoint as usize, method as usize);
        match STATUSES.iter().position(|&s| s == status) {
            Some(i) => self.request_handles[e][m][i]
                .get_or_init(|| {
                    self.requests.with_label_values(&[
                        method.label(),
                        endpoint.label(),
                        &status.to_string(),
                    ])
                })
                .inc(),
            None => self.request_counter(method, endpoint, status).inc(),
        }
        self.durations[e][m].observe(elapsed.as_secs_f64());
    }

    pub fn observe_store(&self, op: StoreOp, elapsed: Duration) {
        self.store_statements[op as usize].observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> Vec<u8> {
        // The depth read at this scrape counts too: a queue that is full right now peaked.
        let peak = self.queue_peak.swap(0, Ordering::Relaxed);
        self.write_queue_high_water
            .set(peak.max(self.write_queue_depth.get()));
        if let Some(pool) = self.pool_source.get().and_then(|read| read()) {
            let idle = pool.idle.min(pool.open);
            self.pool_connections
                .with_label_values(&["in_use"])
                .set((pool.open - idle) as i64);
            self.pool_connections
                .with_label_values(&["idle"])
                .set(idle as i64);
            self.pool_max.set(pool.max as i64);
            self.pool_waiting.set(pool.waiting as i64);
        }
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn the_api_5xx_series_exist_at_zero_from_the_start() {
        let text = String::from_utf8(Metrics::new().render()).unwrap();
        for (method, status) in API_ERRORS {
            let series = format!(
                "http_requests_total{{endpoint=\"/api/counter\",method=\"{}\",status=\"{status}\"}}",
                method.label()
            );
            assert_eq!(sample(&text, &series), Some(0.0), "{series}");
        }
    }

    #[test]
    fn the_high_water_mark_holds_the_peak_between_scrapes() {
        let metrics = Metrics::new();
        metrics.write_queue_capacity.set(64);
        metrics.observe_queue_depth(3);
        metrics.observe_queue_depth(54);
        metrics.observe_queue_depth(7);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert_eq!(sample(&text, "counter_write_queue_high_water"), Some(54.0));
        assert_eq!(sample(&text, "counter_write_queue_capacity"), Some(64.0));
        // The next scrape reports what happened since this one; a queue full right now counts.
        metrics.write_queue_depth.set(5);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert_eq!(sample(&text, "counter_write_queue_high_water"), Some(5.0));
    }

    #[test]
    fn the_pool_is_read_at_each_scrape() {
        let metrics = Metrics::new();
        let usage = std::sync::Arc::new(std::sync::Mutex::new(PoolUsage {
            max: 4,
            open: 3,
            idle: 1,
            waiting: 0,
        }));
        let source = std::sync::Arc::clone(&usage);
        metrics.watch_pool(move || Some(*source.lock().unwrap()));
        let text = String::from_utf8(metrics.render()).unwrap();
        let pool = |series: &str| sample(&text, series);
        assert_eq!(
            pool("counter_store_pool_connections{state=\"in_use\"}"),
            Some(2.0)
        );
        assert_eq!(
            pool("counter_store_pool_connections{state=\"idle\"}"),
            Some(1.0)
        );
        assert_eq!(pool("counter_store_pool_max_connections"), Some(4.0));
        usage.lock().unwrap().waiting = 7;
        let text = String::from_utf8(metrics.render()).unwrap();
        assert_eq!(sample(&text, "counter_store_pool_waiting"), Some(7.0));
    }

    #[test]
    fn cached_reads_have_buckets_below_100_microseconds_and_the_slo_keeps_50_ms() {
        assert_eq!(&LATENCY_BUCKETS[..3], &[0.00001, 0.000025, 0.00005]);
        assert!(LATENCY_BUCKETS.contains(&0.05));
    }
}
