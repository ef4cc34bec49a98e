//! The load client: one keep-alive HTTP/1.1 connection per worker, over TCP or TLS. The load
//! tester measures the origin with it and the fault suite drives its load with it.
//!
//! The requests this tool sends are fixed (`GET`/`POST /api/counter`, no body), so each is
//! rendered once and written with a single `write`; answers are framed in place
//! ([`crate::response`]) in a buffer the connection reuses. No allocation, channel or task
//! hand-off per request: measured on the 2-core bench machine, hyper's client connection cost
//! ~13 µs of CPU per request against `wrk`'s ~8 µs, and every cycle the client spends is a
//! cycle the server under test does not get. Bodies may be `Content-Length` or chunked; a
//! `Connection: close` answer (or any error) ends the connection and the worker reconnects.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Uri;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::response::{parse_answer, Frame};

/// The API path every scenario exercises, relative to the base URL.
pub const COUNTER_PATH: &str = "/api/counter";
const USER_AGENT: &str = concat!("counter-loadtest/", env!("CARGO_PKG_VERSION"));
/// Read buffer of a connection; answers here are a few hundred bytes.
const READ_BUFFER: usize = 16 * 1024;
/// Largest answer (head + body) accepted; the counter API never comes close.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Where the load goes: parsed and resolved once, shared by every connection.
pub struct Endpoint {
    pub base: String,
    addrs: Vec<SocketAddr>,
    host: String,
    prefix: String,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    get: Arc<[u8]>,
    post: Arc<[u8]>,
    /// `Some` when every POST carries its own `Idempotency-Key` (as the page's clicks do): this
    /// run's prefix, and how many connections have been opened (a reconnected connection must
    /// not reuse the keys of the one it replaces: a repeated key is answered, not counted).
    keys: Option<(Arc<str>, Arc<std::sync::atomic::AtomicU64>)>,
}

#[derive(Debug)]
pub enum EndpointError {
    Url(String),
    Resolve(String),
    Tls(String),
}

impl std::fmt::Display for EndpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointError::Url(m) => write!(f, "invalid URL: {m}"),
            EndpointError::Resolve(m) => write!(f, "cannot resolve host: {m}"),
            EndpointError::Tls(m) => write!(f, "TLS setup failed: {m}"),
        }
    }
}

impl std::error::Error for EndpointError {}

impl Endpoint {
    /// `base` is `http://host[:port][/prefix]` or `https://…`; requests go to `prefix/api/counter`.
    pub async fn resolve(base: &str) -> Result<Self, EndpointError> {
        let uri: Uri = base
            .parse()
            .map_err(|e| EndpointError::Url(format!("{base}: {e}")))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(EndpointError::Url(format!(
                    "{base}: scheme must be http or https"
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| EndpointError::Url(format!("{base}: no host")))?;
        if uri.query().is_some() {
            return Err(EndpointError::Url(format!(
                "{base}: a query string is not allowed"
            )));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let prefix = uri.path().trim_end_matches('/').to_string();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| EndpointError::Resolve(format!("{host}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(EndpointError::Resolve(format!("{host}: no addresses")));
        }
        let tls = if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| EndpointError::Tls(format!("{host}: {e}")))?;
            Some((tls_config()?, name))
        } else {
            None
        };
        let authority = authority.as_str().to_string();
        let path = format!("{prefix}{COUNTER_PATH}");
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            addrs,
            get: render("GET", &path, &authority).into(),
            post: render("POST", &path, &authority).into(),
            host: authority,
            prefix,
            tls,
            keys: None,
        })
    }

    /// Every POST on connections opened from now on carries a new `Idempotency-Key`, unique to
    /// this process, this call and the request: the keyed (transactional) write path.
    pub fn with_idempotency_keys(mut self) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let run: Arc<str> = format!("lt-{}-{started:x}", std::process::id()).into();
        self.keys = Some((run, Arc::default()));
        self
    }

    /// The same requests (Host, prefix, TLS name from the base URL) spread over `addrs` instead
    /// of the resolved addresses: connection `i` goes to `addrs[i % addrs.len()]`. For several
    /// origins measured as one service. An empty list keeps the resolved addresses.
    pub fn with_addrs(mut self, addrs: Vec<SocketAddr>) -> Self {
        if !addrs.is_empty() {
            self.addrs = addrs;
        }
        self
    }

    /// A `GET` of another path under the base URL (readiness, metrics).
    pub fn get_request(&self, path: &str) -> Vec<u8> {
        render("GET", &format!("{}{path}", self.prefix), &self.host)
    }

    /// True when every address the host resolved to is on this machine.
    pub fn is_loopback(&self) -> bool {
        self.addrs.iter().all(|a| a.ip().is_loopback())
    }

    /// Opens connection number `index`; connections are spread over the resolved addresses
    /// (a CDN name resolves to several edge servers).
    pub async fn connect(&self, index: usize) -> Result<Connection, RequestError> {
        self.open(index).await.map_err(|_| RequestError::Connect)
    }

    /// As `connect`, keeping the cause, for the one place a person reads it: the connections
    /// opened before the run.
    pub async fn open(&self, index: usize) -> Result<Connection, ConnectError> {
        let addr = self.addrs[index % self.addrs.len()];
        let tcp = TcpStream::connect(addr).await.map_err(|e| ConnectError {
            addr,
            cause: e.to_string(),
        })?;
        // Small requests and answers: never wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((config, name)) => Box::new(
                tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| ConnectError {
                        addr,
                        cause: format!("TLS handshake: {e}"),
                    })?,
            ),
        };
        let keyed = self.keys.as_ref().map(|(run, opened)| {
            let nth = opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // The POST without its blank line, then `Idempotency-Key: <run>-<nth>-<seq>`.
            let head = &self.post[..self.post.len() - 2];
            KeyedPost {
                head: head.to_vec(),
                prefix: format!("Idempotency-Key: {run}-{nth}-"),
                seq: 0,
                request: Vec::with_capacity(head.len() + 96),
            }
        });
        Ok(Connection {
            io,
            buf: vec![0; READ_BUFFER],
            filled: 0,
            get: Arc::clone(&self.get),
            post: Arc::clone(&self.post),
            keyed,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            reusable: true,
            last_status: 0,
        })
    }
}

/// Why a connection could not be opened, for people: the address and the system's reason.
#[derive(Debug, Clone)]
pub struct ConnectError {
    pub addr: SocketAddr,
    pub cause: String,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.addr, self.cause)
    }
}

/// Only the headers the exchange needs: the server under test parses every one (`User-Agent` and
/// `Accept` cost the bare hyper server 19% more instructions per request, measured with
/// callgrind). `User-Agent` stays so that load-test traffic is recognisable in the origin's
/// traces and the CDN's logs; the API answers JSON whatever the `Accept`.
fn render(method: &str, path: &str, host: &str) -> Vec<u8> {
    let content_length = if method == "POST" {
        "Content-Length: 0\r\n"
    } else {
        ""
    };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n{content_length}\r\n"
    )
    .into_bytes()
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, EndpointError> {
    let mut roots = rustls::RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    for cert in loaded.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(EndpointError::Tls(
            "no system CA certificates found (install ca-certificates)".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EndpointError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What a request does to the counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Read,
    Write,
}

impl Op {
    pub const ALL: [Op; 2] = [Op::Read, Op::Write];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn label(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
        }
    }
}

/// Why a request produced no usable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestError {
    /// The connection could not be opened (nothing was sent).
    Connect,
    /// The connection failed or closed while the request was in flight, or the answer was not
    /// valid HTTP/1.1.
    Transport,
    /// No complete answer within the per-request timeout.
    Timeout,
    /// A 2xx answer whose body is not `{"value": N}`.
    BadBody,
    /// A non-2xx status.
    Status(u16),
}

impl RequestError {
    /// True when a write behind this error may have been counted by the server: it reached the
    /// server and we never learnt the outcome. A 5xx is uncertain because the origin answers 503
    /// also for an ambiguous store failure, and a proxy's 502/504 says nothing about the origin.
    pub fn write_may_have_counted(self) -> bool {
        match self {
            RequestError::Transport | RequestError::Timeout | RequestError::BadBody => true,
            RequestError::Status(s) => s >= 500,
            RequestError::Connect => false,
        }
    }

    pub fn label(self) -> String {
        match self {
            RequestError::Connect => "connect".into(),
            RequestError::Transport => "transport".into(),
            RequestError::Timeout => "timeout".into(),
            RequestError::BadBody => "bad_body".into(),
            RequestError::Status(s) => format!("status_{s}"),
        }
    }
}

/// A plain or TLS byte stream.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection's keyed POSTs: the request rendered anew for each key.
struct KeyedPost {
    head: Vec<u8>,
    prefix: String,
    seq: u64,
    request: Vec<u8>,
}

impl KeyedPost {
    fn next(&mut self) -> Vec<u8> {
        let mut request = std::mem::take(&mut self.request);
        request.clear();
        request.extend_from_slice(&self.head);
        request.extend_from_slice(self.prefix.as_bytes());
        request.extend_from_slice(self.seq.to_string().as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        self.seq += 1;
        request
    }
}

/// One open keep-alive connection. Any error leaves it unusable: the caller reconnects.
pub struct Connection {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    filled: usize,
    get: Arc<[u8]>,
    post: Arc<[u8]>,
    keyed: Option<KeyedPost>,
    timer: Pin<Box<tokio::time::Sleep>>,
    reusable: bool,
    last_status: u16,
}

impl Connection {
    /// Sends one counter request and reads the whole answer; on `Ok`, the value it carried.
    pub async fn exchange(&mut self, op: Op, deadline: Instant) -> Result<i64, RequestError> {
        let answer = match (op, self.keyed.as_mut()) {
            (Op::Write, Some(keyed)) => {
                let request = keyed.next();
                let answer = self.send(&request, deadline).await;
                if let Some(keyed) = self.keyed.as_mut() {
                    keyed.request = request; // its buffer, for the next key
                }
                answer?
            }
            (Op::Read, _) => self.send(&Arc::clone(&self.get), deadline).await?,
            (Op::Write, None) => self.send(&Arc::clone(&self.post), deadline).await?,
        };
        if !(200..300).contains(&answer.status) {
            return Err(RequestError::Status(answer.status));
        }
        parse_value(&self.buf[answer.body]).ok_or(RequestError::BadBody)
    }

    /// Sends any pre-rendered request; the body is returned as text.
    pub async fn fetch(
        &mut self,
        request: &[u8],
        deadline: Instant,
    ) -> Result<(u16, String), RequestError> {
        let answer = self.send(request, deadline).await?;
        Ok((
            answer.status,
            String::from_utf8_lossy(&self.buf[answer.body]).into_owned(),
        ))
    }

    /// Writes `request` and reads one answer. Errors mean the connection must be dropped.
    async fn send(&mut self, request: &[u8], deadline: Instant) -> Result<Frame, RequestError> {
        // The timer is re-armed only when it would fire late or already fired for an earlier
        // request, not for every request: a timer-wheel update per request is measurable CPU.
        if self.timer.deadline() > deadline.into() || self.timer.is_elapsed() {
            self.timer.as_mut().reset(deadline.into());
        }
        let Connection {
            io,
            buf,
            filled,
            timer,
            ..
        } = self;
        let exchange = async {
            io.write_all(request)
                .await
                .map_err(|_| RequestError::Transport)?;
            loop {
                if *filled > 0 {
                    match parse_answer(&mut buf[..*filled], false) {
                        Ok(Some(answer)) => return Ok(answer),
                        Ok(None) => {}
                        Err(_) => return Err(RequestError::Transport),
                    }
                }
                if *filled == buf.len() {
                    if buf.len() >= MAX_RESPONSE {
                        return Err(RequestError::Transport);
                    }
                    buf.resize(buf.len() * 2, 0);
                }
                match io.read(&mut buf[*filled..]).await {
                    Ok(0) | Err(_) => return Err(RequestError::Transport),
                    Ok(n) => *filled += n,
                }
            }
        };
        tokio::pin!(exchange);
        let answer = loop {
            tokio::select! {
                biased;
                answer = &mut exchange => break answer?,
                () = timer.as_mut() => {
                    if Instant::now() >= deadline {
                        return Err(RequestError::Timeout);
                    }
                    timer.as_mut().reset(deadline.into());
                }
            }
        };
        // No pipelining: bytes after the answer mean the stream is out of step.
        if answer.consumed != *filled {
            return Err(RequestError::Transport);
        }
        *filled = 0;
        self.reusable = !answer.close;
        self.last_status = answer.status;
        Ok(answer)
    }

    /// False once the server said it closes the connection: open a new one.
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// The status of the last complete answer on this connection.
    pub fn last_status(&self) -> u16 {
        self.last_status
    }
}

/// The `N` of a `{"value": N}` body, without a JSON parser on the hot path; anything that is not
/// exactly one such integer field (JSON whitespace allowed around every token) is rejected.
pub fn parse_value(body: &[u8]) -> Option<i64> {
    let rest = skip_space(body).strip_prefix(b"{")?;
    let rest = skip_space(rest).strip_prefix(b"\"value\"")?;
    let rest = skip_space(rest).strip_prefix(b":")?;
    let rest = skip_space(rest);
    let (negative, rest) = match rest.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || !skip_space(skip_space(&rest[digits..]).strip_prefix(b"}")?).is_empty() {
        return None;
    }
    // Accumulated negatively so that i64::MIN parses; overflow is a rejection.
    let magnitude = rest[..digits].iter().try_fold(0i64, |n, &d| {
        n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))
    })?;
    if negative {
        Some(magnitude)
    } else {
        magnitude.checked_neg()
    }
}

/// `bytes` after its leading JSON whitespace.
fn skip_space(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &bytes[n..]
}

/// Default bound on one request when no flag says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_counter_body() {
        assert_eq!(parse_value(br#"{"value":42}"#), Some(42));
        assert_eq!(
            parse_value(br#"{ "value" : 9007199254740993 }"#),
            Some(9_007_199_254_740_993)
        );
        assert_eq!(parse_value(b"{\"value\":-3}\n"), Some(-3));
        assert_eq!(parse_value(b"\r\n\t{\"value\":\n0}"), Some(0));
        assert_eq!(
            parse_value(br#"{"value":-9223372036854775808}"#),
            Some(i64::MIN)
        );
        assert_eq!(
            parse_value(br#"{"value":9223372036854775807}"#),
            Some(i64::MAX)
        );
    }

    #[test]
    fn rejects_anything_else() {
        for body in [
            &br#"{"value":"42"}"#[..],
            br#"{"value":4.2}"#,
            br#"{"value":42,"x":1}"#,
            br#"{"error":"overloaded"}"#,
            br#"{"value":}"#,
            b"",
            br#"{"value":99999999999999999999}"#,
            br#"{"value":9223372036854775808}"#,
            br#"{"value":-}"#,
            br#"{"value":--1}"#,
            br#"{"value":+1}"#,
            br#"{"value":1}}"#,
            br#"{"value":1} x"#,
            br#"{"value":1 2}"#,
            br#"["value",1]"#,
        ] {
            assert_eq!(parse_value(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[tokio::test]
    async fn connections_spread_over_explicit_addresses() {
        let listeners = [
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        ];
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        // The base URL names a port nobody listens on: only the explicit addresses are used.
        let endpoint = Endpoint::resolve(&format!("http://{}/prefix", crate::free_addr().unwrap()))
            .await
            .unwrap()
            .with_addrs(addrs.clone());
        for i in 0..4 {
            let _connection = endpoint.open(i).await.unwrap();
            let (_, peer) = listeners[i % 2].accept().await.unwrap();
            assert!(peer.ip().is_loopback());
        }
        assert!(endpoint
            .get_request("/readyz")
            .starts_with(b"GET /prefix/readyz HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn keyed_posts_carry_a_new_key_each_even_across_reconnects() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::resolve(&format!("http://{}", listener.local_addr().unwrap()))
            .await
            .unwrap()
            .with_idempotency_keys();
        // Answers every request on each accepted connection and reports its key header.
        let (keys_tx, mut keys) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let keys_tx = keys_tx.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let mut key = None;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(k) = line.strip_prefix("Idempotency-Key: ") {
                            key = Some(k.to_string());
                        }
                        if line.is_empty() {
                            let _ = keys_tx.send(key.take());
                            let body = b"{\"value\":1}";
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                                body.len()
                            );
                            write.write_all(head.as_bytes()).await.unwrap();
                            write.write_all(body).await.unwrap();
                        }
                    }
                });
            }
        });
        let deadline = || Instant::now() + Duration::from_secs(5);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2 {
            // A second connection with the same index: a reconnect.
            let mut connection = endpoint.open(0).await.unwrap();
            for _ in 0..3 {
                assert_eq!(connection.exchange(Op::Write, deadline()).await.unwrap(), 1);
                let key = keys.recv().await.unwrap().expect("a POST carries a key");
                assert!(key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic()));
                assert!(seen.insert(key), "keys are never repeated");
            }
            connection.exchange(Op::Read, deadline()).await.unwrap();
            assert_eq!(keys.recv().await.unwrap(), None, "a GET carries no key");
        }
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn only_failures_that_may_have_reached_the_server_are_uncertain() {
        assert!(!RequestError::Connect.write_may_have_counted());
        assert!(!RequestError::Status(429).write_may_have_counted());
        assert!(RequestError::Status(503).write_may_have_counted());
        assert!(RequestError::Timeout.write_may_have_counted());
        assert!(RequestError::Transport.write_may_have_counted());
    }
}
