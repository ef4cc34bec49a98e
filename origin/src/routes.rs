//! Method + path → handler, every answer the public listener gives (docs/design.md §1). JSON bodies
//! are built by hand (`itoa`): they are one number, and this is the hottest code in the service.

use std::future::Future as _;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use opentelemetry::context::FutureExt as _;

use crate::app::App;
use crate::assets::{self, Asset};
use crate::counter::{idempotency, IncrementError};
use crate::telemetry::logs;
use crate::telemetry::metrics::{self, Endpoint};
use crate::telemetry::traces::{self, Traces};

pub type Body = Full<Bytes>;

/// A POST needs no body; a small one (e.g. `{}`) is read and ignored, anything larger is refused.
pub const MAX_BODY_BYTES: usize = 1024;

const COUNTER_ALLOW: &str = "GET, HEAD, POST, OPTIONS";
const READ_ONLY_ALLOW: &str = "GET, HEAD, OPTIONS";
/// Seconds a client should wait after a 503 (queue full, store down, draining).
const RETRY_AFTER_S: &str = "1";

/// Same values as the CloudFront response headers policy (`edge/cloudfront.json`), so a local
/// run behaves like production. Sent with the page and its assets.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const PAGE_CACHE_CONTROL: &str = "public, max-age=0, s-maxage=60";
const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
const NO_STORE: &str = "no-store";

/// Which build this process runs (build.rs stamps the revision and time), for an operator's
/// `curl`; the edge does not forward it (`edge/functions/viewer-request.js`).
pub const VERSION_PATH: &str = "/version";
const VERSION_BODY: &str = concat!(
    "{\"version\":\"",
    env!("CARGO_PKG_VERSION"),
    "\",\"revision\":\"",
    env!("COUNTER_REVISION"),
    "\",\"build_time\":\"",
    env!("COUNTER_BUILD_TIME"),
    "\"}"
);

/// Serves one request and records it (metrics, sampled access log).
pub async fn handle(app: &App, request: Request<Incoming>) -> Response<Body> {
    match app.traces.as_deref() {
        None => serve(app, request).await.1,
        // Boxed: the untraced future stays as small as it was.
        Some(traces) => Box::pin(serve_traced(traces, app, request)).await,
    }
}

/// [`serve`] inside the request's span (`OTEL_ENABLED=true`). Its context is current while the
/// handler runs, so the batcher links the span and log lines carry the trace id.
async fn serve_traced(traces: &Traces, app: &App, request: Request<Incoming>) -> Response<Body> {
    let Some(context) = traces.start_request(&request) else {
        return serve(app, request).await.1;
    };
    let method = metrics::Method::of(request.method());
    let (endpoint, response) = serve(app, request).with_context(context.clone()).await;
    traces::end_request(&context, method, endpoint, response.status().as_u16());
    response
}

async fn serve(app: &App, request: Request<Incoming>) -> (Endpoint, Response<Body>) {
    let started = Instant::now();
    let method = metrics::Method::of(request.method());
    let sampled = logs::sample_access_log(app.config.access_log_every);
    // Copied only for a sampled line: no allocation on the hot path otherwise.
    let path_for_log = sampled.then(|| truncated(request.uri().path()));
    let (endpoint, response) = route(app, request, started + app.config.request_timeout).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    app.metrics
        .observe_request(method, endpoint, status, elapsed);
    if sampled || status >= 500 {
        tracing::info!(
            target: "access",
            method = method.label(),
            endpoint = endpoint.label(),
            // Unsampled 5xx lines have no path copy (the endpoint label says where).
            path = path_for_log.as_deref(),
            status,
            micros = elapsed.as_micros() as u64,
        );
    }
    (endpoint, response)
}

/// What a request asks for, decided from its method and path alone: the router's whole decision,
/// kept free of I/O so it can be tested exhaustively and fuzzed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ReadCounter,
    Increment,
    Health,
    Ready,
    Version,
    Asset(&'static Asset),
    /// `204` listing the allowed methods.
    Options(&'static str),
    /// `405` with `Allow`.
    MethodNotAllowed(&'static str),
    NotFound,
}

/// Routes by exact path (query strings never matter) and method.
pub fn resolve(method: &Method, path: &str) -> Route {
    let (endpoint, asset) = match path {
        "/api/counter" => (Endpoint::Counter, None),
        "/healthz" => (Endpoint::Healthz, None),
        "/readyz" => (Endpoint::Readyz, None),
        // Labelled with the assets: a constant answer built into the binary.
        VERSION_PATH => (Endpoint::Static, None),
        _ => match assets::find(path) {
            Some(asset) => (Endpoint::Static, Some(asset)),
            None => {
                return Route {
                    endpoint: Endpoint::Other,
                    action: Action::NotFound,
                }
            }
        },
    };
    let allow = if endpoint == Endpoint::Counter {
        COUNTER_ALLOW
    } else {
        READ_ONLY_ALLOW
    };
    let action = match (method, endpoint) {
        (&Method::GET | &Method::HEAD, Endpoint::Counter) => Action::ReadCounter,
        (&Method::POST, Endpoint::Counter) => Action::Increment,
        (&Method::GET | &Method::HEAD, Endpoint::Healthz) => Action::Health,
        (&Method::GET | &Method::HEAD, Endpoint::Readyz) => Action::Ready,
        (&Method::GET | &Method::HEAD, _) if path == VERSION_PATH => Action::Version,
        (&Method::GET | &Method::HEAD, _) => asset.map_or(Action::NotFound, Action::Asset),
        (&Method::OPTIONS, _) => Action::Options(allow),
        _ => Action::MethodNotAllowed(allow),
    };
    Route { endpoint, action }
}

/// RFC 9112 §3.2: an HTTP/1.1 request carries exactly one `Host`; HTTP/1.0 at most one; HTTP/2
/// names its authority in the request line and may omit it.
pub fn host_is_valid(headers: &HeaderMap, version: Version) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    let first = hosts.next();
    hosts.next().is_none() && (first.is_some() || version != Version::HTTP_11)
}

async fn route(
    app: &App,
    request: Request<Incoming>,
    deadline: Instant,
) -> (Endpoint, Response<Body>) {
    let Route { endpoint, action } = resolve(request.method(), request.uri().path());
    if !host_is_valid(request.headers(), request.version()) {
        return (
            endpoint,
            error(
                StatusCode::BAD_REQUEST,
                "exactly one Host header is required",
            ),
        );
    }
    let response = match action {
        Action::ReadCounter => read_counter(app, &request, deadline).await,
        Action::Increment => increment_counter(app, request, deadline).await,
        Action::Health => probe(StatusCode::OK, r#"{"status":"ok"}"#),
        Action::Ready => match app.readiness.check() {
            Ok(()) => probe(StatusCode::OK, r#"{"status":"ready"}"#),
            Err(not_ready) => {
                let mut response = probe(StatusCode::SERVICE_UNAVAILABLE, not_ready.body());
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
                response
            }
        },
        Action::Version => {
            let mut response = json(StatusCode::OK, Bytes::from_static(VERSION_BODY.as_bytes()));
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
            response
        }
        Action::Asset(asset) => serve_asset(asset, &request),
        Action::Options(allow) => options(allow),
        Action::MethodNotAllowed(allow) => method_not_allowed(allow),
        Action::NotFound => error(StatusCode::NOT_FOUND, "not found"),
    };
    (endpoint, response)
}

async fn read_counter(app: &App, request: &Request<Incoming>, deadline: Instant) -> Response<Body> {
    // A cache hit is ready at the first poll: answer it without arming a deadline timer (creating
    // one touches the runtime handle every core shares); only a miss waits, bounded.
    let read = app.cache.get();
    tokio::pin!(read);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(read.as_mut().poll(cx))).await;
    let outcome = match first {
        std::task::Poll::Ready(outcome) => Ok(outcome),
        std::task::Poll::Pending => tokio::time::timeout_at(deadline.into(), read).await,
    };
    let value = match outcome {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => {
            tracing::warn!(%error, "read failed");
            return unavailable("store unavailable");
        }
        Err(_) => return error(StatusCode::GATEWAY_TIMEOUT, "deadline exceeded"),
    };
    let (body, etag) = read_answer(value);
    let (status, body) = if if_none_match(request.headers(), etag.as_bytes()) {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else {
        (StatusCode::OK, body)
    };
    let mut response = json(status, body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, app.read_cache_control.clone());
    headers.insert(header::ETAG, etag);
    response
}

async fn increment_counter(
    app: &App,
    request: Request<Incoming>,
    deadline: Instant,
) -> Response<Body> {
    let key = match idempotency::from_headers(request.headers()) {
        Ok(key) => key,
        Err(invalid) => return error(StatusCode::BAD_REQUEST, invalid.message()),
    };
    if let Err(response) = discard_body(request.into_body(), deadline).await {
        return response;
    }
    match app.batcher.increment(deadline, &app.metrics, key).await {
        Ok(value) => {
            let mut response = json(StatusCode::OK, value_body(value));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
            response
        }
        Err(IncrementError::Overloaded) => unavailable("overloaded: too many increments waiting; retry shortly"),
        Err(IncrementError::ShuttingDown) => unavailable("shutting down; retry shortly"),
        Err(IncrementError::Unavailable) => unavailable("store unavailable; not counted"),
        Err(IncrementError::Ambiguous) => {
            unavailable("store connection lost; the increment may have been counted (retry with the same Idempotency-Key)")
        }
        Err(IncrementError::DeadlineExceeded) => error(StatusCode::GATEWAY_TIMEOUT, "deadline exceeded; not counted"),
    }
}

/// Reads and drops a POST body, refusing oversized ones before reading them when declared.
async fn discard_body(body: Incoming, deadline: Instant) -> Result<(), Response<Body>> {
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        ));
    }
    if body.is_end_stream() {
        return Ok(());
    }
    match tokio::time::timeout_at(
        deadline.into(),
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )),
        Ok(Err(_)) => Err(error(StatusCode::BAD_REQUEST, "malformed request body")),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        )),
    }
}

fn serve_asset(asset: &'static Asset, request: &Request<Incoming>) -> Response<Body> {
    let etag = HeaderValue::from_static(asset.etag);
    let not_modified = if_none_match(request.headers(), etag.as_bytes());
    let mut response = Response::new(if not_modified {
        Body::default()
    } else {
        Body::new(Bytes::from_static(asset.body))
    });
    if not_modified {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::ETAG, etag);
    let cache_control = if asset.is_immutable() {
        IMMUTABLE_CACHE_CONTROL
    } else {
        PAGE_CACHE_CONTROL
    };
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The `Cache-Control` of `GET /api/counter`: the edge keeps it `s-maxage` seconds, may serve it
/// one more second while refreshing, and up to a minute while the origin fails.
///
/// Leaked once at start-up so each response copies a static header instead of bumping a
/// reference count that every core shares.
pub fn read_cache_control(edge_ttl_s: u64) -> HeaderValue {
    let value = format!(
        "public, max-age=0, s-maxage={edge_ttl_s}, stale-while-revalidate=1, stale-if-error=60"
    );
    HeaderValue::from_static(Box::leak(value.into_boxed_str()))
}

/// The body and ETag of a read of `value`, remembered per thread: between two commits every read
/// answers the same value, and building them (two allocations, two formattings) was a tenth of a
/// cached GET's own instructions. Clones share the bytes.
fn read_answer(value: i64) -> (Bytes, HeaderValue) {
    use std::cell::RefCell;
    thread_local!(static LAST: RefCell<Option<(i64, Bytes, HeaderValue)>> = const { RefCell::new(None) });
    LAST.with_borrow_mut(|last| match last {
        Some((seen, body, etag)) if *seen == value => (body.clone(), etag.clone()),
        _ => {
            let (body, etag) = (value_body(value), etag_of(value));
            *last = Some((value, body.clone(), etag.clone()));
            (body, etag)
        }
    })
}

fn value_body(value: i64) -> Bytes {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(value);
    let mut body = BytesMut::with_capacity(10 + digits.len());
    body.put_slice(b"{\"value\":");
    body.put_slice(digits.as_bytes());
    body.put_u8(b'}');
    body.freeze()
}

fn etag_of(value: i64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(value);
    let mut etag = BytesMut::with_capacity(digits.len() + 2);
    etag.put_u8(b'"');
    etag.put_slice(digits.as_bytes());
    etag.put_u8(b'"');
    HeaderValue::from_maybe_shared(etag.freeze())
        .expect("digits and quotes are a valid header value")
}

/// `If-None-Match` with `*` or a list of tags matches `etag`; weak comparison, as RFC 9110 asks
/// for this header.
pub fn if_none_match(headers: &HeaderMap, etag: &[u8]) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().any(|value| {
        value.as_bytes().split(|&b| b == b',').any(|candidate| {
            let candidate = candidate.trim_ascii();
            let candidate = candidate.strip_prefix(b"W/").unwrap_or(candidate);
            candidate == b"*" || candidate == etag
        })
    })
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if status != StatusCode::OK && status != StatusCode::NOT_MODIFIED {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    }
    response
}

/// Errors are short fixed sentences: never a cause, SQL or anything from the request.
fn error(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut body = BytesMut::with_capacity(message.len() + 12);
    body.put_slice(b"{\"error\":\"");
    body.put_slice(message.as_bytes());
    body.put_slice(b"\"}");
    json(status, body.freeze())
}

/// The answer to a request on a connection whose earlier answers are not being read (an HTTP/2
/// client that opened its flow-control window to nothing): the server holds no more for it.
pub fn unsent_answers_pending() -> Response<Body> {
    unavailable("too many answers on this connection are waiting to be read")
}

fn unavailable(message: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
    response
}

fn probe(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = json(status, Bytes::from_static(body.as_bytes()));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    response
}

fn options(allow: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn truncated(path: &str) -> String {
    const MAX: usize = 256;
    match path.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &path[..cut]),
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_method_resolves_as_the_contract_says() {
        use Action::*;
        let cases: &[(&str, Method, Endpoint, Action)] = &[
            ("/api/counter", Method::GET, Endpoint::Counter, ReadCounter),
            ("/api/counter", Method::HEAD, Endpoint::Counter, ReadCounter),
            ("/api/counter", Method::POST, Endpoint::Counter, Increment),
            (
                "/api/counter",
                Method::OPTIONS,
                Endpoint::Counter,
                Options(COUNTER_ALLOW),
            ),
            (
                "/api/counter",
                Method::DELETE,
                Endpoint::Counter,
                MethodNotAllowed(COUNTER_ALLOW),
            ),
            ("/healthz", Method::GET, Endpoint::Healthz, Health),
            (
                "/healthz",
                Method::POST,
                Endpoint::Healthz,
                MethodNotAllowed(READ_ONLY_ALLOW),
            ),
            ("/readyz", Method::HEAD, Endpoint::Readyz, Ready),
            (
                "/readyz",
                Method::OPTIONS,
                Endpoint::Readyz,
                Options(READ_ONLY_ALLOW),
            ),
            ("/version", Method::GET, Endpoint::Static, Version),
            ("/version", Method::HEAD, Endpoint::Static, Version),
            (
                "/version",
                Method::POST,
                Endpoint::Static,
                MethodNotAllowed(READ_ONLY_ALLOW),
            ),
            ("/version/", Method::GET, Endpoint::Other, NotFound),
            ("/metrics", Method::GET, Endpoint::Other, NotFound),
            ("/api/counter/", Method::GET, Endpoint::Other, NotFound),
            ("/API/COUNTER", Method::POST, Endpoint::Other, NotFound),
            ("", Method::GET, Endpoint::Other, NotFound),
        ];
        for (path, method, endpoint, action) in cases {
            assert_eq!(
                resolve(method, path),
                Route {
                    endpoint: *endpoint,
                    action: *action
                },
                "{method} {path}"
            );
        }
        let page = assets::find("/index.html").expect("static/index.html");
        assert_eq!(resolve(&Method::GET, "/").action, Asset(page));
        assert_eq!(
            resolve(&Method::POST, "/").action,
            MethodNotAllowed(READ_ONLY_ALLOW)
        );
    }

    #[test]
    fn http11_needs_exactly_one_host() {
        let hosts = |n: usize| {
            let mut headers = HeaderMap::new();
            for _ in 0..n {
                headers.append(header::HOST, HeaderValue::from_static("x"));
            }
            headers
        };
        assert!(host_is_valid(&hosts(1), Version::HTTP_11));
        assert!(!host_is_valid(&hosts(0), Version::HTTP_11));
        assert!(!host_is_valid(&hosts(2), Version::HTTP_11));
        assert!(host_is_valid(&hosts(0), Version::HTTP_10));
        assert!(!host_is_valid(&hosts(2), Version::HTTP_10));
        assert!(host_is_valid(&hosts(0), Version::HTTP_2));
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            headers
        };
        assert!(if_none_match(&with("\"7\""), b"\"7\""));
        assert!(if_none_match(&with("W/\"7\""), b"\"7\""));
        assert!(if_none_match(&with("\"1\", \"7\""), b"\"7\""));
        assert!(if_none_match(&with("*"), b"\"7\""));
        assert!(!if_none_match(&with("\"70\""), b"\"7\""));
        assert!(!if_none_match(&HeaderMap::new(), b"\"7\""));
    }
}
