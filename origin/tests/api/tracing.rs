//! Traces (`OTEL_ENABLED=true`) as a collector receives them: an OTLP/gRPC receiver runs inside
//! each test (its own port, so tests share nothing), the origin exports to it, and the spans are
//! read after the origin stopped — which also proves the exporter is flushed on shutdown (the
//! batch processor's own schedule is 5 s, longer than these tests wait).
//!
//! What matters is what X-Ray makes of these spans. The assertions on span kinds, `aws.*`
//! attributes, `db.*` names and annotation keys encode the segment rules of the collector's
//! `awsxrayexporter` **v0.117.0** (pinned by ADOT collector v0.43.3): a parentless INTERNAL span
//! becomes a segment of the service only with `aws.span.kind=LOCAL_ROOT` and `aws.local.service`;
//! the `sql` block and the database node read `db.name`, `db.connection_string`, `db.user` and
//! `db.statement` only; a CLIENT span is a remote node, an INTERNAL one is not; the cause comes
//! from `exception` events; with the `exporter.xray.allowDot` gate on (its default) annotation
//! keys keep their dots, which X-Ray filters cannot match. A newer exporter may need new rules.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::{Method, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::helpers::{send, spawn_app, Backend, RowLock, TestApp};

/// An OTLP trace receiver on a loopback port, keeping every export request.
struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[derive(Clone)]
struct Receiver(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let service = TraceServiceServer::new(Receiver(Arc::clone(&received)));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Self { addr, received }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn export_requests(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Every span received, with its resource's attributes.
    fn spans(&self) -> Vec<Received> {
        let mut out = Vec::new();
        for request in self.received.lock().unwrap().iter() {
            for resource_spans in &request.resource_spans {
                let resource = attributes(
                    &resource_spans
                        .resource
                        .as_ref()
                        .map(|r| r.attributes.clone())
                        .unwrap_or_default(),
                );
                for scope in &resource_spans.scope_spans {
                    for span in &scope.spans {
                        out.push(Received {
                            span: span.clone(),
                            attributes: attributes(&span.attributes),
                            resource: resource.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Attr {
    Str(String),
    Int(i64),
    Strings(Vec<String>),
    Other,
}

fn attributes(list: &[KeyValue]) -> HashMap<String, Attr> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => Attr::Str(s.clone()),
                Some(any_value::Value::IntValue(i)) => Attr::Int(*i),
                Some(any_value::Value::ArrayValue(list)) => Attr::Strings(
                    list.values
                        .iter()
                        .filter_map(|v| match &v.value {
                            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => Attr::Other,
            };
            (kv.key.clone(), value)
        })
        .collect()
}

#[derive(Clone, Debug)]
struct Received {
    span: Span,
    attributes: HashMap<String, Attr>,
    resource: HashMap<String, Attr>,
}

impl Received {
    fn str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(Attr::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key) {
            Some(Attr::Int(i)) => Some(*i),
            _ => None,
        }
    }

    fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The keys X-Ray indexes (`aws.xray.annotations`). Each must be an attribute of the span
    /// and a key X-Ray filters can match (letters, digits, underscores).
    fn annotation_keys(&self) -> Vec<String> {
        let Some(Attr::Strings(keys)) = self.attributes.get("aws.xray.annotations") else {
            return Vec::new();
        };
        for key in keys {
            assert!(
                key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "annotation key {key:?} is not filterable in X-Ray"
            );
        }
        keys.clone()
    }

    fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap()
    }

    /// `(trace id, span id)` of each link.
    fn links(&self) -> Vec<(String, String)> {
        self.span
            .links
            .iter()
            .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh X-Ray trace id (`1-<epoch seconds>-<24 hex>`) and its 32-hex OpenTelemetry form.
fn xray_trace_id(random: &str) -> (String, String) {
    let seconds = format!("{:08x}", epoch_seconds());
    (
        format!("1-{seconds}-{random}"),
        format!("{seconds}{random}"),
    )
}

async fn traced_app(backend: Backend, collector: &Collector, ratio: &str) -> TestApp {
    let endpoint = collector.endpoint();
    spawn_app(
        backend,
        &[
            ("OTEL_ENABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_TRACES_SAMPLER_ARG", ratio),
            ("DEPLOYMENT_ENVIRONMENT", "test"),
            ("POD_NAME", "origin-7d9f-abcde"),
            ("NODE_NAME", "ip-10-0-1-23.eu-west-2.compute.internal"),
        ],
    )
    .await
}

async fn request(app: &TestApp, method: Method, path: &str, trace_header: Option<&str>) {
    let mut headers: Vec<(&str, &str)> = trace_header
        .map(|h| vec![("x-amzn-trace-id", h)])
        .unwrap_or_default();
    // As behind CloudFront and the ALB: the viewer first, then CloudFront's edge.
    headers.push(("x-forwarded-for", "203.0.113.7, 130.176.12.34"));
    headers.push(("user-agent", "on-call-test/1.0"));
    let answer = send(app.addr, method, path, &headers, b"").await;
    assert!(answer.status.as_u16() < 500, "{path}: {}", answer.status);
}

/// A batch span becomes a segment named after the service (exporter v0.117.0: INTERNAL kind,
/// no parent, `aws.span.kind=LOCAL_ROOT`, name from `aws.local.service`), and indexes its size
/// and outcome under filterable keys.
fn assert_local_root_of_the_service(batch: &Received) {
    assert_eq!(batch.kind(), SpanKind::Internal);
    assert!(batch.parent_id().is_empty(), "a batch is its own trace");
    assert_eq!(batch.str("aws.span.kind"), Some("LOCAL_ROOT"));
    assert_eq!(batch.str("aws.local.service"), Some("counter-origin"));
    let mut keys = batch.annotation_keys();
    keys.sort();
    assert_eq!(keys, ["counter_batch_outcome", "counter_batch_size"]);
    for key in keys {
        assert!(batch.attributes.contains_key(&key), "{key} is not set");
    }
}

fn server_spans(spans: &[Received]) -> Vec<&Received> {
    spans
        .iter()
        .filter(|s| s.kind() == SpanKind::Server)
        .collect()
}

fn named<'a>(spans: &'a [Received], name: &str) -> Vec<&'a Received> {
    spans.iter().filter(|s| s.span.name == name).collect()
}

#[tokio::test]
async fn request_spans_carry_xray_ids_http_attributes_and_the_resource() {
    let collector = Collector::start().await;
    let mut app = traced_app(Backend::Embedded, &collector, "1").await;
    app.await_readiness(StatusCode::OK).await;
    let before = epoch_seconds();
    request(&app, Method::GET, "/api/counter", None).await;
    request(&app, Method::POST, "/api/counter", None).await;
    request(&app, Method::GET, "/no-such-page", None).await;
    request(&app, Method::GET, "/healthz", None).await;
    request(&app, Method::GET, "/readyz", None).await;
    let after = epoch_seconds();
    app.stop().await;

    let spans = collector.spans();
    let servers = server_spans(&spans);
    let mut names: Vec<&str> = servers.iter().map(|s| s.span.name.as_str()).collect();
    names.sort();
    // Probes are not traced; every other request is, named by method and route label.
    assert_eq!(
        names,
        ["GET /api/counter", "GET other", "POST /api/counter"],
        "{spans:#?}"
    );
    for span in &servers {
        // X-Ray ids: the first 8 hex digits are the trace's start in epoch seconds.
        let seconds = u64::from_str_radix(&span.trace_id()[..8], 16).unwrap();
        assert!(
            (before..=after).contains(&seconds),
            "trace id {} does not start with the epoch second ({before}..={after})",
            span.trace_id()
        );
        assert!(
            span.parent_id().is_empty(),
            "no upstream header: a root span"
        );
        let method = span.span.name.split(' ').next().unwrap();
        assert_eq!(span.str("http.request.method"), Some(method));
        assert_eq!(span.str("server.address"), Some("localhost"));
        // The exporter's http block: client_ip from client.address, user_agent.
        assert_eq!(span.str("client.address"), Some("203.0.113.7"));
        assert_eq!(span.str("user_agent.original"), Some("on-call-test/1.0"));
        let route = span.str("http.route").expect("http.route");
        assert_eq!(span.str("http_route"), Some(route), "indexed copy");
        assert!(span.annotation_keys().contains(&"http_route".to_string()));
        assert_eq!(
            span.resource.get("service.name"),
            Some(&Attr::Str("counter-origin".into()))
        );
        assert_eq!(
            span.resource.get("service.version"),
            Some(&Attr::Str(env!("CARGO_PKG_VERSION").into()))
        );
        assert_eq!(
            span.resource.get("deployment.environment"),
            Some(&Attr::Str("test".into()))
        );
        assert_eq!(
            span.resource.get("k8s.pod.name"),
            Some(&Attr::Str("origin-7d9f-abcde".into()))
        );
        assert_eq!(
            span.resource.get("k8s.node.name"),
            Some(&Attr::Str("ip-10-0-1-23.eu-west-2.compute.internal".into()))
        );
    }
    let get = named(&spans, "GET /api/counter")[0];
    assert_eq!(get.str("http.route"), Some("/api/counter"));
    assert_eq!(get.int("http.response.status_code"), Some(200));
    assert!(
        get.links().is_empty(),
        "a read is in no batch: {:?}",
        get.links()
    );
    let other = named(&spans, "GET other")[0];
    assert_eq!(other.int("http.response.status_code"), Some(404));
    assert_eq!(other.str("url.path"), Some("/no-such-page"));
    assert_ne!(get.trace_id(), other.trace_id(), "one trace per request");

    // The POST links to its batch (size 1), whose statement span is the batch's child.
    let post = named(&spans, "POST /api/counter")[0];
    let batch = named(&spans, "counter.batch");
    assert_eq!(batch.len(), 1, "{spans:#?}");
    let batch = batch[0];
    assert_eq!(batch.int("counter_batch_size"), Some(1));
    assert_eq!(batch.str("counter_batch_outcome"), Some("committed"));
    assert_local_root_of_the_service(batch);
    assert_eq!(post.links(), [(batch.trace_id(), batch.span_id())]);
    let statement = named(&spans, "UPDATE request_counter_state");
    assert_eq!(statement.len(), 1);
    let statement = statement[0];
    // In-process: a local subsegment, not a remote database node.
    assert_eq!(statement.kind(), SpanKind::Internal);
    assert_eq!(statement.str("db.system"), Some("sqlite"));
    assert_eq!(statement.str("db.name"), Some("counter.sqlite3"));
    assert_eq!(
        statement.str("db.statement"),
        Some("UPDATE request_counter_state SET value = value + ?1 WHERE id = ?2 RETURNING value")
    );
    assert_eq!(statement.trace_id(), batch.trace_id());
    assert_eq!(statement.parent_id(), batch.span_id());
}

#[tokio::test]
async fn an_incoming_x_amzn_trace_id_continues_its_trace_and_its_decision() {
    let collector = Collector::start().await;
    // The ratio traces nothing here: only upstream's explicit Sampled=1 can.
    let mut app = traced_app(Backend::Embedded, &collector, "0").await;
    app.await_readiness(StatusCode::OK).await;
    let (sampled, sampled_otel) = xray_trace_id("a006649127e371903a2de979");
    let (open_root, _) = xray_trace_id("b006649127e371903a2de979");
    request(
        &app,
        Method::POST,
        "/api/counter",
        Some(&format!("Root={sampled};Parent=53995c3f42cd8ad8;Sampled=1")),
    )
    .await;
    // What the ALB sends: a trace id, no parent, no decision — left to the ratio (0 here).
    request(
        &app,
        Method::POST,
        "/api/counter",
        Some(&format!("Root={open_root}")),
    )
    .await;
    request(&app, Method::POST, "/api/counter", None).await;
    app.stop().await;

    let spans = collector.spans();
    let servers = server_spans(&spans);
    assert_eq!(servers.len(), 1, "only the Sampled=1 request: {spans:#?}");
    let span = servers[0];
    assert_eq!(
        span.trace_id(),
        sampled_otel,
        "continues the upstream trace"
    );
    assert_eq!(
        span.parent_id(),
        "53995c3f42cd8ad8",
        "child of the upstream segment"
    );
    // Batches exist only for sampled requests: the two unsampled POSTs made none.
    let batches = named(&spans, "counter.batch");
    assert_eq!(batches.len(), 1, "{spans:#?}");
    assert_eq!(
        span.links(),
        [(batches[0].trace_id(), batches[0].span_id())]
    );

    let collector = Collector::start().await;
    let mut app = traced_app(Backend::Embedded, &collector, "1").await;
    app.await_readiness(StatusCode::OK).await;
    let (alb, alb_otel) = xray_trace_id("c006649127e371903a2de979");
    let (refused, refused_otel) = xray_trace_id("d006649127e371903a2de979");
    request(
        &app,
        Method::GET,
        "/api/counter",
        Some(&format!("Root={alb}")),
    )
    .await;
    request(
        &app,
        Method::GET,
        "/api/counter",
        Some(&format!("Root={refused};Parent=53995c3f42cd8ad8;Sampled=0")),
    )
    .await;
    app.stop().await;

    let spans = collector.spans();
    let servers = server_spans(&spans);
    assert_eq!(
        servers.len(),
        1,
        "Sampled=0 is followed even at ratio 1: {spans:#?}"
    );
    assert_eq!(
        servers[0].trace_id(),
        alb_otel,
        "the ALB's trace id is kept"
    );
    assert!(
        servers[0].parent_id().is_empty(),
        "the ALB sends no segment: ours is the first"
    );
    assert!(spans.iter().all(|s| s.trace_id() != refused_otel));
}

#[tokio::test]
async fn batch_spans_carry_their_size_and_each_request_links_to_the_batch_that_carried_it() {
    let collector = Collector::start().await;
    let mut app = traced_app(Backend::Postgres, &collector, "1").await;
    let lock = RowLock::take(&app).await;
    let addr = app.addr;
    let post = move || {
        tokio::spawn(async move { send(addr, Method::POST, "/api/counter", &[], b"").await })
    };
    // One increment's statement blocks on the row lock; five more queue behind it and are
    // committed together once it is released: batches of 1 and 5.
    let first = post();
    lock.await_writer_blocked().await;
    let rest: Vec<_> = (0..5).map(|_| post()).collect();
    app.await_metric("counter_write_queue_depth", 5.0).await;
    // While a statement waits on the lock, the pool shows its connection in use (and the
    // queue's high-water mark has seen the five waiting increments).
    assert!(
        app.metric("counter_store_pool_connections{state=\"in_use\"}")
            .await
            >= 1.0
    );
    assert!(app.metric("counter_store_pool_max_connections").await >= 1.0);
    assert!(app.metric("counter_write_queue_high_water").await >= 5.0);
    lock.release().await;
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    for answer in rest {
        assert_eq!(answer.await.unwrap().status, StatusCode::OK);
    }
    app.stop().await;

    let spans = collector.spans();
    let mut batches = named(&spans, "counter.batch");
    batches.sort_by_key(|b| b.int("counter_batch_size"));
    let sizes: Vec<_> = batches
        .iter()
        .map(|b| b.int("counter_batch_size"))
        .collect();
    assert_eq!(sizes, [Some(1), Some(5)], "{spans:#?}");
    let requests = named(&spans, "POST /api/counter");
    assert_eq!(requests.len(), 6);
    for batch in &batches {
        let members: Vec<_> = requests
            .iter()
            .filter(|r| r.links() == [(batch.trace_id(), batch.span_id())])
            .collect();
        assert_eq!(
            Some(members.len() as i64),
            batch.int("counter_batch_size"),
            "requests linked to the batch of {:?}",
            batch.int("counter_batch_size")
        );
        assert_local_root_of_the_service(batch);
        for member in members {
            // A batch is its own trace; the request finds it by link or by its annotation.
            assert_ne!(member.trace_id(), batch.trace_id());
            let xray = format!("1-{}-{}", &batch.trace_id()[..8], &batch.trace_id()[8..]);
            assert_eq!(member.str("counter_batch_trace_id"), Some(xray.as_str()));
            assert!(member
                .annotation_keys()
                .contains(&"counter_batch_trace_id".to_string()));
        }
        let statements: Vec<_> = named(&spans, "UPDATE request_counter_state")
            .into_iter()
            .filter(|s| s.parent_id() == batch.span_id())
            .collect();
        assert_eq!(statements.len(), 1, "one statement per batch");
        assert_postgres_statement(statements[0], &app);
        assert_eq!(statements[0].trace_id(), batch.trace_id());
    }
}

/// The statement as the exporter needs it for a `sql` block and a database node named
/// `<db.name>@<host>` (the host is parsed from `db.connection_string` as a URL).
fn assert_postgres_statement(statement: &Received, app: &TestApp) {
    let url: tokio_postgres::Config = app.database_url.as_ref().unwrap().parse().unwrap();
    let Some(tokio_postgres::config::Host::Tcp(host)) = url.get_hosts().first() else {
        panic!("the test database is reached over TCP");
    };
    let port = url.get_ports().first().copied().unwrap_or(5432);
    assert_eq!(statement.kind(), SpanKind::Client, "a remote database node");
    assert_eq!(statement.str("db.system"), Some("postgresql"));
    assert_eq!(statement.str("db.name"), url.get_dbname());
    assert_eq!(statement.str("db.user"), url.get_user());
    assert_eq!(
        statement.str("db.connection_string"),
        Some(format!("postgresql://{host}:{port}").as_str()),
        "host and port only"
    );
    assert_eq!(
        statement.str("db.statement"),
        Some("UPDATE request_counter_state SET value = value + $1 WHERE id = $2 RETURNING value")
    );
    if let Some(password) = url.get_password() {
        let password = String::from_utf8_lossy(password);
        for (key, value) in &statement.attributes {
            assert!(
                !format!("{value:?}").contains(password.as_ref()),
                "{key} carries the password"
            );
        }
    }
}

#[tokio::test]
async fn a_failed_statement_carries_an_exception_with_its_sqlstate_and_faults_its_batch() {
    let collector = Collector::start().await;
    let mut app = traced_app(Backend::Postgres, &collector, "1").await;
    app.await_readiness(StatusCode::OK).await;
    // Every UPDATE of the counter now fails in PostgreSQL with check_violation (23514).
    let admin = crate::helpers::pg_connect(app.database_url.as_ref().unwrap()).await;
    admin
        .batch_execute(
            "ALTER TABLE request_counter_state ADD CONSTRAINT refuse_increments CHECK (value < 0) NOT VALID",
        )
        .await
        .unwrap();
    let answer = send(app.addr, Method::POST, "/api/counter", &[], b"").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await;

    let spans = collector.spans();
    let batch = named(&spans, "counter.batch");
    assert_eq!(batch.len(), 1, "{spans:#?}");
    let batch = batch[0];
    assert_local_root_of_the_service(batch);
    assert_eq!(batch.str("counter_batch_outcome"), Some("failed"));
    // An error status on the local root: `service("counter-origin") { fault = true }` finds it.
    assert_eq!(batch.span.status.as_ref().map(|s| s.code), Some(2));
    let statement = named(&spans, "UPDATE request_counter_state");
    assert_eq!(statement.len(), 1);
    let statement = statement[0];
    assert_postgres_statement(statement, &app);
    assert_eq!(statement.span.status.as_ref().map(|s| s.code), Some(2));
    let exception = statement
        .span
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("an exception event: the exporter builds the cause from it");
    let event = attributes(&exception.attributes);
    assert_eq!(
        event.get("exception.type"),
        Some(&Attr::Str("StoreError::Unavailable".into()))
    );
    assert!(
        matches!(event.get("exception.message"), Some(Attr::Str(m)) if m.contains("refuse_increments")),
        "{event:?}"
    );
    assert_eq!(
        event.get("db.response.status_code"),
        Some(&Attr::Str("23514".into()))
    );
}

#[tokio::test]
async fn with_tracing_off_nothing_is_exported() {
    let collector = Collector::start().await;
    let endpoint = collector.endpoint();
    let mut app = spawn_app(
        Backend::Embedded,
        &[
            ("OTEL_ENABLED", "false"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ],
    )
    .await;
    app.await_readiness(StatusCode::OK).await;
    let (root, _) = xray_trace_id("e006649127e371903a2de979");
    let header = format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1");
    request(&app, Method::POST, "/api/counter", Some(&header)).await;
    request(&app, Method::GET, "/api/counter", Some(&header)).await;
    assert!(app.running.as_ref().unwrap().app.traces.is_none());
    app.stop().await;
    assert_eq!(collector.export_requests(), 0);
}
