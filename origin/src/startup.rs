//! Start-up and shutdown: bind the listeners, open the store, wire the [`App`], serve, and stop
//! in order (the shape of zero-to-production's `startup.rs` and mini-redis's `server::run`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::Config;
use crate::counter::{self, BatchLimits, IncrementBatcher, ReadCache, WriterParts};
use crate::health::{self, Readiness};
use crate::telemetry::{self, metrics::Metrics, traces::Traces};
use crate::{routes, server, store};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::OpenError),
    #[error(transparent)]
    Traces(#[from] telemetry::traces::StartError),
}

/// A started origin: its bound addresses and the handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub app: Arc<App>,
    shutdown: Arc<Notify>,
    lifecycle: JoinHandle<()>,
}

impl Running {
    /// Starts the graceful stop (what SIGTERM does): readiness fails at once, requests are served
    /// through the drain period, then the listener closes, in-flight requests finish and the
    /// write queue is flushed.
    pub fn shutdown(&self) {
        self.shutdown.notify_one();
    }

    /// Waits until the origin has stopped completely.
    pub async fn stopped(self) {
        let _ = self.lifecycle.await;
    }
}

/// Binds the listeners, opens the store and starts serving. Does not wait for the database.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let listener = server::bind(config.listen_addr).map_err(|source| StartError::Bind {
        addr: config.listen_addr,
        source,
    })?;
    let metrics_listener =
        server::bind(config.metrics_addr).map_err(|source| StartError::Bind {
            addr: config.metrics_addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen_addr,
        source,
    })?;
    let metrics_addr = metrics_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.metrics_addr,
            source,
        })?;

    let store = store::open(&config.store, config.statement_timeout)?;
    let traces = match &config.traces {
        Some(trace_config) => Some(Arc::new(Traces::start(trace_config, &config.store)?)),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let pooled = Arc::clone(&store);
    metrics.watch_pool(move || pooled.pool_usage());
    let readiness = Arc::new(Readiness::new(config.ready_stale_after));
    let cache = Arc::new(ReadCache::new(
        Arc::clone(&store),
        config.read_cache_ttl,
        Arc::clone(&metrics),
    ));
    let batcher = IncrementBatcher::start(
        WriterParts {
            store: Arc::clone(&store),
            cache: Arc::clone(&cache),
            readiness: Arc::clone(&readiness),
            metrics: Arc::clone(&metrics),
            traces: traces.clone(),
        },
        BatchLimits {
            max_batch: config.max_batch,
            queue_capacity: config.write_queue_capacity,
        },
    );
    let pruner =
        counter::idempotency::spawn_pruner(Arc::clone(&store), config.idempotency_key_retention);
    let checker = health::spawn_store_checker(
        store,
        Arc::clone(&readiness),
        Arc::clone(&metrics),
        config.ready_check_interval,
    );
    let app = Arc::new(App {
        read_cache_control: routes::read_cache_control(config.edge_cache_ttl_s),
        config,
        batcher,
        cache,
        readiness,
        metrics,
        traces,
    });

    let shutdown = Arc::new(Notify::new());
    let (stop, stop_rx) = watch::channel(false);
    let public = tokio::spawn(server::serve(Arc::clone(&app), listener, stop_rx.clone()));
    let private = tokio::spawn(server::serve_metrics(
        Arc::clone(&app),
        metrics_listener,
        stop_rx,
    ));
    let lifecycle = tokio::spawn(stop_when_asked(
        Arc::clone(&app),
        Arc::clone(&shutdown),
        Tasks {
            stop,
            public,
            private,
            checker,
            pruner,
        },
    ));
    tracing::info!(%addr, %metrics_addr, config = %app.config, "counter origin started");
    Ok(Running {
        addr,
        metrics_addr,
        app,
        shutdown,
        lifecycle,
    })
}

/// The tasks a started origin runs, and the switch that stops its listeners.
struct Tasks {
    stop: watch::Sender<bool>,
    public: JoinHandle<()>,
    private: JoinHandle<()>,
    checker: JoinHandle<()>,
    pruner: JoinHandle<()>,
}

/// The shutdown sequence (docs/operations.md, "Stopping"): once asked, readiness fails at once and
/// requests are served through the drain period (the load balancer needs it to stop sending);
/// then the public listener closes, in-flight requests finish, queued increments are committed or
/// answered, and the traces are flushed last, all within `SHUTDOWN_TIMEOUT_MS`.
async fn stop_when_asked(app: Arc<App>, shutdown: Arc<Notify>, tasks: Tasks) {
    shutdown.notified().await;
    let config = &app.config;
    tracing::info!(
        drain_ms = config.drain_period.as_millis() as u64,
        "shutdown requested: draining"
    );
    app.readiness.start_draining();
    app.metrics.ready.set(0);
    tokio::time::sleep(config.drain_period).await;
    let stopping = Instant::now();
    let _ = tasks.stop.send(true);
    let _ = tasks.public.await;
    let left = config.shutdown_timeout.saturating_sub(stopping.elapsed());
    let flushed = app
        .batcher
        .flush_and_stop(left.max(Duration::from_millis(100)))
        .await;
    tasks.checker.abort();
    tasks.pruner.abort();
    // Last: the final batches' spans are in the exporter's queue by now.
    if let Some(traces) = app.traces.clone() {
        let left = config.shutdown_timeout.saturating_sub(stopping.elapsed());
        traces.shutdown(left.max(Duration::from_millis(500))).await;
    }
    let _ = tasks.private.await;
    tracing::info!(flushed, "stopped");
}
