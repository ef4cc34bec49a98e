//! Traces (`OTEL_ENABLED=true`): OpenTelemetry spans exported over OTLP/gRPC to the ADOT
//! collector, which forwards them to AWS X-Ray.
//!
//! - Ids are X-Ray's (`XrayIdGenerator`: the first 8 hex digits of a trace id are its start in
//!   epoch seconds), so the collector forwards them unchanged and the console finds them.
//! - An incoming `X-Amzn-Trace-Id` continues its trace: with a `Parent` our request span is that
//!   segment's child; with only a `Root` (what the ALB adds) our span is the trace's first segment,
//!   under the ALB's trace id, so the ALB's access log line and the trace share one id.
//! - Sampling: `Sampled=1`/`Sampled=0` from upstream is followed; when upstream left it open (the
//!   ALB always does), `OTEL_TRACES_SAMPLER_ARG` of requests are traced, decided on the trace id.
//! - Spans: one per request (kind server; method, route label, status, client address, user
//!   agent), one per write batch that carried a traced increment, and its store statement.
//!
//! What the collector's `awsxray` exporter makes of them decides what on-call sees; the rules
//! below are those of `awsxrayexporter` v0.117.0 (ADOT collector v0.43.3):
//! - Annotation keys are underscore names (`counter_batch_size`): with the exporter's
//!   `exporter.xray.allowDot` gate on (its default) a dotted key stays dotted, and X-Ray filters
//!   only match alphanumeric-and-underscore keys.
//! - The batch span has no parent. A parentless span that is neither SERVER nor marked a local
//!   root becomes a service node named after the span; `aws.span.kind=LOCAL_ROOT` with
//!   `aws.local.service` makes it a segment of this service, so the map draws the edge from
//!   `counter-origin` to the database and `service("counter-origin") { fault = true }` finds it.
//! - The statement span's `sql` block and its remote node (`<db.name>@<host>`) come from the
//!   older `db.*` names only (`db.name`, `db.connection_string`, `db.user`, `db.statement`); the
//!   host is parsed from `db.connection_string` as a URL, hence `postgresql://host:port`. The
//!   embedded store is in-process: INTERNAL kind, no remote node.
//!
//! The batch span is its own trace, and each traced request span **links** to it (not the other
//! way round): X-Ray keeps at most 20 linked traces per segment, and a batch carries up to
//! `MAX_BATCH` requests, while a request is in exactly one batch. Opening a request's trace in
//! X-Ray shows the linked batch trace (statement time, batch size); the request span also carries
//! the batch's trace id as the annotation `counter_batch_trace_id`, so the filter
//! `annotation.counter_batch_trace_id = "1-…"` lists every traced request of one batch.
//!
//! Nothing here exists when tracing is off: the tracer is `None` and the request path skips it.
//! The provider is owned by the app, not installed globally, so apps (and tests) never share one.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{header, Request};
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{
    IdGenerator, Sampler, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider,
    ShouldSample,
};
use opentelemetry_sdk::Resource;

use crate::config::{StoreConfig, TraceConfig};
use crate::store::StoreError;
use crate::telemetry::metrics::{Endpoint, Method};

/// The request header the ALB adds (and X-Ray SDKs propagate).
pub const XRAY_HEADER: &str = "x-amzn-trace-id";
/// Span names; the request span is renamed `"{method} {route}"` once the route is known.
pub const BATCH_SPAN: &str = "counter.batch";
pub const STATEMENT_SPAN: &str = "UPDATE request_counter_state";
/// Indexed (annotation) keys; see the module comment for why they have no dots.
pub const BATCH_SIZE: &str = "counter_batch_size";
pub const BATCH_OUTCOME: &str = "counter_batch_outcome";
pub const BATCH_TRACE_ID: &str = "counter_batch_trace_id";
/// The route label again, as an annotation (`annotation.http_route = "/api/counter"`):
/// `http.route` itself is recorded too but would be indexed under a dotted key.
pub const ROUTE_ANNOTATION: &str = "http_route";
/// The batch's statement as each store sends it (parameterised; `db.statement`).
const POSTGRES_ADD_SQL: &str = crate::store::statements::postgres::ADD;
const EMBEDDED_ADD_SQL: &str = crate::store::statements::sqlite::ADD;
/// The embedded store's file in `DATA_DIR` (its `db.name`).
const EMBEDDED_FILE: &str = "counter.sqlite3";
/// X-Ray's "sampling decision deferred" flag, as `opentelemetry-aws` decodes `Sampled=?` or none.
const DEFERRED: u8 = 0x02;
/// Longest `url.path` / `server.address` recorded: both come from the client.
const MAX_ATTRIBUTE_CHARS: usize = 256;

pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// `service.name`, repeated on the batch span as `aws.local.service`.
    service: String,
    database: Database,
}

/// What the statement span says about the store; never a password.
struct Database {
    kind: SpanKind,
    attributes: Vec<KeyValue>,
}

impl Database {
    fn of(store: &StoreConfig) -> Self {
        match store {
            StoreConfig::Postgres(pg) => {
                let mut attributes = vec![
                    KeyValue::new("db.system", "postgresql"),
                    KeyValue::new("db.statement", POSTGRES_ADD_SQL),
                ];
                // Already validated by the store; an unparsable URL just records less.
                if let Ok(url) = pg.url.driver_config() {
                    if let Some(name) = url.get_dbname() {
                        attributes.push(KeyValue::new("db.name", name.to_string()));
                    }
                    if let Some(user) = url.get_user() {
                        attributes.push(KeyValue::new("db.user", user.to_string()));
                    }
                    let host = url.get_hosts().iter().find_map(|host| match host {
                        tokio_postgres::config::Host::Tcp(name) => Some(name.clone()),
                        #[cfg(unix)]
                        tokio_postgres::config::Host::Unix(_) => None,
                    });
                    if let Some(host) = host {
                        let port = url.get_ports().first().copied().unwrap_or(5432);
                        attributes.push(KeyValue::new(
                            "db.connection_string",
                            format!("postgresql://{host}:{port}"),
                        ));
                    }
                }
                Self {
                    kind: SpanKind::Client,
                    attributes,
                }
            }
            StoreConfig::Embedded { .. } => Self {
                kind: SpanKind::Internal,
                attributes: vec![
                    KeyValue::new("db.system", "sqlite"),
                    KeyValue::new("db.name", EMBEDDED_FILE),
                    KeyValue::new("db.statement", EMBEDDED_ADD_SQL),
                ],
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("OTLP exporter for {endpoint}: {source}")]
pub struct StartError {
    endpoint: String,
    source: opentelemetry_otlp::ExporterBuildError,
}

impl Traces {
    /// Builds the exporter and the provider. Must run inside the tokio runtime: the gRPC
    /// channel's connection task is spawned there (the batch processor's own thread only queues
    /// requests onto it). Connects lazily, so a collector that is down never delays start-up.
    pub fn start(config: &TraceConfig, store: &StoreConfig) -> Result<Self, StartError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .build()
            .map_err(|source| StartError {
                endpoint: config.endpoint.clone(),
                source,
            })?;
        let resource = Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(
                config
                    .resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        // The batch processor's queue is bounded (2048 spans by default, OTEL_BSP_* to tune):
        // when the collector is slow, spans are dropped, never requests delayed.
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_id_generator(ContinuingIdGenerator::default())
            .with_sampler(OriginSampler::new(config.sample_ratio))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("counter-origin");
        // Later entries win, as in the resource.
        let service = config
            .resource
            .iter()
            .rev()
            .find(|(k, _)| k == "service.name")
            .map_or_else(|| "counter-origin".to_string(), |(_, v)| v.clone());
        Ok(Self {
            provider,
            tracer,
            service,
            database: Database::of(store),
        })
    }

    /// Starts the span of one request and returns the context to serve it in. Probes get none:
    /// the kubelet's and the ALB's health checks would otherwise fill X-Ray with noise.
    pub fn start_request(&self, request: &Request<Incoming>) -> Option<Context> {
        let path = request.uri().path();
        if path == "/healthz" || path == "/readyz" {
            return None;
        }
        let upstream = request
            .headers()
            .get(XRAY_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(opentelemetry_aws::trace::xray_propagator::span_context_from_str);
        let mut parent = Context::new();
        let mut continued_trace = None;
        if let Some(upstream) = upstream {
            let flags = upstream.trace_flags().to_u8();
            if flags & DEFERRED == 0 {
                parent = parent.with_value(Decided(upstream.is_sampled()));
            }
            if upstream.is_valid() {
                parent = parent.with_remote_span_context(SpanContext::new(
                    upstream.trace_id(),
                    upstream.span_id(),
                    // Without the deferred bit, which our spans must not inherit.
                    upstream.trace_flags() & TraceFlags::SAMPLED,
                    true,
                    upstream.trace_state().clone(),
                ));
            } else {
                continued_trace = Some(upstream.trace_id());
            }
        }
        let method = Method::of(request.method()).label();
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.path", truncated(path)),
            annotations(&[BATCH_TRACE_ID, ROUTE_ANNOTATION]),
        ];
        // The viewer: the first X-Forwarded-For hop (CloudFront and the ALB append theirs after
        // it). A client can send its own header, so this is a hint for tracing, never an identity.
        // Only an IP address: the exporter ignores anything else, and junk stays out of X-Ray.
        let forwarded_for = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|list| list.split(',').next())
            .and_then(|first| first.trim().parse::<std::net::IpAddr>().ok());
        if let Some(client) = forwarded_for {
            attributes.push(KeyValue::new("client.address", client.to_string()));
        }
        if let Some(agent) = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
        {
            attributes.push(KeyValue::new("user_agent.original", truncated(agent)));
        }
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().host());
        if let Some(host) = host {
            // With it the X-Ray exporter builds the segment's URL (for `http.url` filters).
            attributes.push(KeyValue::new("server.address", truncated(host)));
        }
        let builder = self
            .tracer
            .span_builder(method)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes);
        let span = ContinuingIdGenerator::continuing(continued_trace, || {
            self.tracer.build_with_context(builder, &parent)
        });
        Some(parent.with_span(span))
    }

    /// Starts the span of a write batch of `size` increments. Called only when at least one of
    /// them belongs to a sampled request, so the batch is always sampled.
    pub fn start_batch(&self, size: usize) -> BatchTrace {
        let parent = Context::new().with_value(Decided(true));
        let span = self
            .tracer
            .span_builder(BATCH_SPAN)
            .with_kind(SpanKind::Internal)
            .with_attributes([
                KeyValue::new(BATCH_SIZE, size as i64),
                annotations(&[BATCH_SIZE, BATCH_OUTCOME]),
                // A segment of this service, not a node of its own (see the module comment).
                KeyValue::new("aws.span.kind", "LOCAL_ROOT"),
                KeyValue::new("aws.local.service", self.service.clone()),
            ])
            .start_with_context(&self.tracer, &parent);
        BatchTrace {
            context: parent.with_span(span),
        }
    }

    /// Runs `statement` (the batch's one `add(n)` call) inside its span, child of `batch`:
    /// CLIENT kind for PostgreSQL (a remote node on the map), INTERNAL for the embedded store.
    /// A failure is recorded as an `exception` event (type, message, SQLSTATE when there is one),
    /// which the exporter turns into the subsegment's cause.
    pub async fn statement<T>(
        &self,
        batch: &BatchTrace,
        statement: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        use opentelemetry::trace::Span as _;
        let mut attributes = self.database.attributes.clone();
        attributes.push(KeyValue::new("db.operation", "UPDATE"));
        attributes.push(KeyValue::new("db.sql.table", "request_counter_state"));
        let mut span = self
            .tracer
            .span_builder(STATEMENT_SPAN)
            .with_kind(self.database.kind.clone())
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &batch.context);
        let result = statement.await;
        if let Err(error) = &result {
            let mut event = vec![
                KeyValue::new("exception.type", error_type(error)),
                KeyValue::new("exception.message", error.to_string()),
            ];
            if let Some(code) = sqlstate(error) {
                event.push(KeyValue::new("db.response.status_code", code.to_string()));
                span.set_attribute(KeyValue::new("db.response.status_code", code.to_string()));
            }
            span.add_event("exception", event);
            span.set_status(Status::error(error.to_string()));
        }
        span.end();
        result
    }

    /// Exports what is still queued and stops the exporter, waiting at most `timeout`. Runs on a
    /// blocking thread: the export needs this runtime's threads free to drive the gRPC channel.
    pub async fn shutdown(self: std::sync::Arc<Self>, timeout: Duration) {
        let flushed =
            tokio::task::spawn_blocking(move || self.provider.shutdown_with_timeout(timeout)).await;
        match flushed {
            Ok(Ok(())) => tracing::info!("traces flushed"),
            Ok(Err(error)) => tracing::warn!(%error, "traces not flushed at shutdown"),
            Err(error) => tracing::warn!(%error, "trace flush task failed"),
        }
    }
}

/// Ends the request span of `context` with what the router decided.
pub fn end_request(context: &Context, method: Method, endpoint: Endpoint, status: u16) {
    let span = context.span();
    if span.is_recording() {
        span.update_name(format!("{} {}", method.label(), endpoint.label()));
        span.set_attribute(KeyValue::new("http.route", endpoint.label()));
        span.set_attribute(KeyValue::new(ROUTE_ANNOTATION, endpoint.label()));
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 500 {
            span.set_status(Status::error("server error"));
        }
    }
    span.end();
}

/// The span context a write batch runs in.
pub struct BatchTrace {
    context: Context,
}

impl BatchTrace {
    /// What each traced caller links its request span to.
    pub fn span_context(&self) -> SpanContext {
        self.context.span().span_context().clone()
    }

    /// Makes the batch current for log lines written while the guard lives (it must not be
    /// held across an `.await`).
    pub fn enter(&self) -> opentelemetry::ContextGuard {
        self.context.clone().attach()
    }

    /// `outcome` is committed, failed or ambiguous (indexed, for `annotation.counter_batch_outcome`).
    pub fn end(self, outcome: &'static str) {
        let span = self.context.span();
        span.set_attribute(KeyValue::new(BATCH_OUTCOME, outcome));
        if outcome != "committed" {
            span.set_status(Status::error("batch not committed"));
        }
        span.end();
    }
}

/// Whether the span current on this thread (the request being served) is sampled: only those
/// callers ask the writer for a batch span.
pub fn current_span_sampled() -> bool {
    Context::map_current(|cx| cx.span().span_context().is_sampled())
}

/// Links the current request span to the batch span that carried its increment.
pub fn link_current_span(batch: &SpanContext) {
    Context::map_current(|cx| {
        let span = cx.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new(
                BATCH_TRACE_ID,
                xray_trace_id(batch.trace_id()),
            ));
            span.add_link(batch.clone(), Vec::new());
        }
    });
}

/// `1-5f84c7a1-a006649127e371903a2de979`: the X-Ray form of a trace id.
pub fn xray_trace_id(trace_id: TraceId) -> String {
    let hex = format!("{trace_id:032x}");
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

/// `aws.xray.annotations`: which of a span's attributes the exporter indexes.
fn annotations(keys: &[&'static str]) -> KeyValue {
    KeyValue::new(
        "aws.xray.annotations",
        Value::Array(Array::String(
            keys.iter().map(|&k| StringValue::from(k)).collect(),
        )),
    )
}

fn error_type(error: &StoreError) -> &'static str {
    match error {
        StoreError::Unavailable(_) => "StoreError::Unavailable",
        StoreError::Ambiguous(_) => "StoreError::Ambiguous",
    }
}

/// The SQLSTATE of a database error response: the PostgreSQL store words those
/// `"<SQLSTATE>: <message>"` (five digits or capital letters).
fn sqlstate(error: &StoreError) -> Option<&str> {
    let StoreError::Unavailable(text) = error else {
        return None;
    };
    let (code, _) = text.split_once(": ")?;
    (code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()))
    .then_some(code)
}

fn truncated(text: &str) -> String {
    match text.char_indices().nth(MAX_ATTRIBUTE_CHARS) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

/// A sampling decision already taken (by upstream's `Sampled=1/0`, or for a batch by its
/// sampled requests), carried in the parent context to [`OriginSampler`].
#[derive(Clone, Copy, Debug)]
struct Decided(bool);

/// `parentbased_traceidratio`, with X-Ray's deferred decision treated as no decision: a
/// [`Decided`] value wins, then a local sampled parent (the statement under its batch), else the
/// ratio on the trace id. The stock parent-based sampler would drop every request behind an ALB,
/// whose header never carries a decision.
#[derive(Clone, Debug)]
struct OriginSampler {
    ratio: Sampler,
}

impl OriginSampler {
    fn new(ratio: f64) -> Self {
        Self {
            ratio: Sampler::TraceIdRatioBased(ratio),
        }
    }
}

impl ShouldSample for OriginSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let decided = parent_context.and_then(|cx| {
            cx.get::<Decided>().map(|d| d.0).or_else(|| {
                let parent = cx.span().span_context().clone();
                (parent.is_valid() && !parent.is_remote()).then(|| parent.is_sampled())
            })
        });
        let trace_state = parent_context
            .map(|cx| cx.span().span_context().trace_state().clone())
            .unwrap_or_default();
        match decided {
            Some(sampled) => SamplingResult {
                decision: if sampled {
                    SamplingDecision::RecordAndSample
                } else {
                    SamplingDecision::Drop
                },
                attributes: Vec::new(),
                trace_state,
            },
            None => SamplingResult {
                trace_state,
                ..self.ratio.should_sample(
                    parent_context,
                    trace_id,
                    name,
                    span_kind,
                    attributes,
                    links,
                )
            },
        }
    }
}

/// X-Ray ids, except that a span started inside [`ContinuingIdGenerator::continuing`] gets the
/// given trace id: how a request that names a trace but no parent segment (the ALB's
/// `Root=…` alone) keeps the ALB's trace id. The SDK takes the trace id from the parent span or
/// the generator only; the thread-local hand-over is safe because it is set and consumed inside
/// one synchronous `build_with_context` call on this thread.
#[derive(Debug, Default)]
struct ContinuingIdGenerator {
    xray: XrayIdGenerator,
}

thread_local! {
    static CONTINUED_TRACE: Cell<Option<TraceId>> = const { Cell::new(None) };
}

impl ContinuingIdGenerator {
    fn continuing<T>(trace_id: Option<TraceId>, start: impl FnOnce() -> T) -> T {
        if trace_id.is_none() {
            return start();
        }
        CONTINUED_TRACE.with(|next| next.set(trace_id));
        let started = start();
        CONTINUED_TRACE.with(|next| next.set(None));
        started
    }
}

impl IdGenerator for ContinuingIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        CONTINUED_TRACE
            .with(Cell::take)
            .unwrap_or_else(|| self.xray.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.xray.new_span_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceState;

    #[test]
    fn the_recorded_file_is_the_one_the_embedded_store_opens() {
        let embedded = include_str!("../store/embedded.rs");
        assert!(embedded.contains(&format!("FILE_NAME: &str = \"{EMBEDDED_FILE}\"")));
    }

    #[test]
    fn sqlstate_is_read_from_database_error_responses_only() {
        let refused = StoreError::Unavailable("23514: new row violates check constraint".into());
        assert_eq!(sqlstate(&refused), Some("23514"));
        let connect = StoreError::Unavailable("connect: connection refused".into());
        assert_eq!(sqlstate(&connect), None);
        assert_eq!(sqlstate(&StoreError::Ambiguous("12345: x".into())), None);
    }

    #[test]
    fn the_statement_span_names_the_database_but_never_the_password() {
        let pg = StoreConfig::Postgres(crate::config::PostgresConfig::new(
            "postgres://counter_app:s3cret@db.internal:6432/counter?sslmode=require",
            crate::config::TlsMode::Require,
            None,
        ));
        let database = Database::of(&pg);
        let get = |key: &str| {
            database
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(database.kind, SpanKind::Client);
        assert_eq!(get("db.name").as_deref(), Some("counter"));
        assert_eq!(get("db.user").as_deref(), Some("counter_app"));
        assert_eq!(
            get("db.connection_string").as_deref(),
            Some("postgresql://db.internal:6432")
        );
        assert!(database
            .attributes
            .iter()
            .all(|kv| !kv.value.to_string().contains("s3cret")));
    }

    #[test]
    fn xray_form_splits_the_epoch_seconds_from_the_random_part() {
        let id = TraceId::from_hex("5f84c7a1a006649127e371903a2de979").unwrap();
        assert_eq!(xray_trace_id(id), "1-5f84c7a1-a006649127e371903a2de979");
    }

    #[test]
    fn generated_trace_ids_start_with_the_current_epoch_second() {
        let generator = ContinuingIdGenerator::default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let id = format!("{:032x}", generator.new_trace_id());
        let seconds = u64::from_str_radix(&id[..8], 16).unwrap();
        assert!(seconds.abs_diff(now) <= 2, "{id} vs {now:x}");
    }

    #[test]
    fn a_continued_trace_id_is_used_once_then_ids_are_fresh_again() {
        let generator = ContinuingIdGenerator::default();
        let alb = TraceId::from_hex("5f84c7a1a006649127e371903a2de979").unwrap();
        let inside = ContinuingIdGenerator::continuing(Some(alb), || generator.new_trace_id());
        assert_eq!(inside, alb);
        assert_ne!(generator.new_trace_id(), alb);
        // Set but not consumed (the SDK had a parent): cleared, never leaks to the next span.
        ContinuingIdGenerator::continuing(Some(alb), || ());
        assert_ne!(generator.new_trace_id(), alb);
    }

    fn decide(sampler: &OriginSampler, parent: &Context, trace_id: TraceId) -> SamplingDecision {
        sampler
            .should_sample(Some(parent), trace_id, "x", &SpanKind::Server, &[], &[])
            .decision
    }

    #[test]
    fn upstream_decisions_are_followed_and_open_ones_use_the_ratio() {
        let never = OriginSampler::new(0.0);
        let always = OriginSampler::new(1.0);
        let id = TraceId::from_hex("5f84c7a1a006649127e371903a2de979").unwrap();
        let open = Context::new();
        assert_eq!(decide(&never, &open, id), SamplingDecision::Drop);
        assert_eq!(
            decide(&always, &open, id),
            SamplingDecision::RecordAndSample
        );
        let yes = Context::new().with_value(Decided(true));
        let no = Context::new().with_value(Decided(false));
        assert_eq!(decide(&never, &yes, id), SamplingDecision::RecordAndSample);
        assert_eq!(decide(&always, &no, id), SamplingDecision::Drop);
        // A remote parent without a decision (the flags were stripped of "deferred") is open.
        let remote = Context::new().with_remote_span_context(SpanContext::new(
            id,
            SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
            TraceFlags::default(),
            true,
            TraceState::NONE,
        ));
        assert_eq!(
            decide(&always, &remote, id),
            SamplingDecision::RecordAndSample
        );
    }
}
