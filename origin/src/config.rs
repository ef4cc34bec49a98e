//! Environment → typed, validated [`Config`] (12-factor).
//!
//! Every variable is declared once in [`VARIABLES`]: parsing, `--help` and the start-up log all
//! read that table, so the documentation cannot drift from what the code accepts.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One environment variable the origin reads.
pub struct Variable {
    pub name: &'static str,
    /// `None` means unset by default.
    pub default: Option<&'static str>,
    pub help: &'static str,
    /// Redacted in logs (it may carry a password).
    pub secret: bool,
}

const fn var(name: &'static str, default: &'static str, help: &'static str) -> Variable {
    Variable {
        name,
        default: Some(default),
        help,
        secret: false,
    }
}

const fn unset(name: &'static str, help: &'static str) -> Variable {
    Variable {
        name,
        default: None,
        help,
        secret: false,
    }
}

pub const VARIABLES: &[Variable] = &[
    var("LISTEN_ADDR", "0.0.0.0:8080", "public listener: API, page, probes"),
    var("METRICS_ADDR", "0.0.0.0:9090", "metrics listener (GET /metrics), never public"),
    Variable {
        name: "DATABASE_URL",
        default: None,
        help: "PostgreSQL URL (postgres://user:pass@host:5432/db?sslmode=require); unset: embedded store. \
               TLS is required unless the URL says sslmode=disable",
        secret: true,
    },
    Variable {
        name: "DATABASE_CA_FILE",
        default: None,
        help: "PEM bundle of CAs that sign the database certificate (e.g. the RDS bundle); unset: system roots",
        secret: false,
    },
    var("DATABASE_POOL_SIZE", "8", "PostgreSQL connections per process (1 writer + readers)"),
    var("DATABASE_CONNECT_TIMEOUT_MS", "3000", "bound on opening one database connection (including the wait for an IAM token)"),
    var("DATABASE_AUTH", "password", "password: the password in DATABASE_URL; iam: an RDS IAM auth token signed per new connection \
         (no password in DATABASE_URL, TLS required, region from AWS_REGION)"),
    unset("AWS_REGION", "region of the RDS instance (DATABASE_AUTH=iam); the AWS SDK reads it too"),
    var("DATABASE_APP_ROLE", "counter_app", "the least-privilege role `counter-origin migrate` creates and grants (the serving pods' user)"),
    unset("DATABASE_MASTER_SECRET_ARN", "migrate only: Secrets Manager secret (JSON username, password) of the master user, \
         fetched at run time; unset: the credentials in DATABASE_URL"),
    var("SCHEMA_MIGRATE_ON_START", "true", "true: start-up applies pending schema migrations; false: never any DDL, \
         unready until `counter-origin migrate` brought the schema to this build's version"),
    var("DATA_DIR", "./data", "directory of the embedded store (used when DATABASE_URL is unset)"),
    var("MAX_BATCH", "512", "most increments committed by one statement; 1 turns batching off"),
    var("WRITE_QUEUE_CAPACITY", "4096", "increments waiting for the writer; beyond it POST answers 503"),
    var("READ_CACHE_TTL_MS", "1000", "how long the origin serves a read from memory; 0 disables the cache"),
    var("EDGE_CACHE_TTL_S", "1", "s-maxage sent on GET /api/counter (the CDN's TTL)"),
    var("STATEMENT_TIMEOUT_MS", "2000", "PostgreSQL statement_timeout; also bounds every store call"),
    var("REQUEST_TIMEOUT_MS", "5000", "per-request deadline (504 once it passes)"),
    var("HEADER_READ_TIMEOUT_MS", "10000", "bound on receiving a request's headers (slow clients)"),
    var("KEEPALIVE_IDLE_TIMEOUT_S", "75", "idle keep-alive connections close after this; keep above the ALB's 60 s"),
    var("MAX_CONNECTIONS", "1024", "open client connections; at the limit a new one evicts an idle, stalled or silent one, else waits in the kernel backlog"),
    var("DRAIN_PERIOD_MS", "5000", "after SIGTERM: readiness 503 but keep serving this long"),
    var("SHUTDOWN_TIMEOUT_MS", "10000", "after the drain: bound on finishing requests and flushing writes"),
    var("READY_CHECK_INTERVAL_MS", "1000", "how often the store is pinged for readiness"),
    var("READY_STALE_AFTER_MS", "5000", "readiness fails when the store has not answered for this long"),
    var("WORKER_THREADS", "0", "tokio worker threads; 0: one per core, 1: a single-threaded runtime"),
    var("LOG_LEVEL", "info", "log filter: a level (off, error, warn, info, debug, trace) or a list of them and target=level directives, e.g. info,counter_origin=debug"),
    var("ACCESS_LOG_EVERY", "100", "log one request in N (0: none, 1: all); 5xx answers are always logged"),
    var("IDEMPOTENCY_KEY_RETENTION_S", "86400", "how long a POST's Idempotency-Key is remembered (retries within it count once)"),
    var("OTEL_ENABLED", "false", "true: X-Ray traces over OTLP/gRPC and trace ids in log lines; false: no tracer, no cost"),
    var("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317", "OTLP/gRPC collector (the ADOT collector); other OTEL_EXPORTER_OTLP_* (headers, timeout, compression) are read by the SDK"),
    unset("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "traces-only collector endpoint; wins over OTEL_EXPORTER_OTLP_ENDPOINT"),
    unset("OTEL_SERVICE_NAME", "service.name of the traces (X-Ray segment name); unset: counter-origin"),
    unset("OTEL_RESOURCE_ATTRIBUTES", "extra resource attributes, key=value,… (percent-encoded values); override the ones below"),
    var("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "the only sampler: follow an incoming Sampled=1/0, else trace OTEL_TRACES_SAMPLER_ARG of requests"),
    var("OTEL_TRACES_SAMPLER_ARG", "0.05", "share of requests traced when no upstream decided (the ALB's X-Amzn-Trace-Id carries none)"),
    var("DEPLOYMENT_ENVIRONMENT", "local", "resource attribute deployment.environment (e.g. production)"),
    unset("POD_NAME", "resource attribute k8s.pod.name (downward API metadata.name)"),
    unset("POD_NAMESPACE", "resource attribute k8s.namespace.name (downward API metadata.namespace)"),
    unset("NODE_NAME", "resource attributes k8s.node.name and host.name (downward API spec.nodeName)"),
];

/// Which store holds the counter.
#[derive(Clone)]
pub enum StoreConfig {
    Embedded {
        data_dir: PathBuf,
        /// `SCHEMA_MIGRATE_ON_START`: false means the process never runs DDL.
        migrate_on_start: bool,
    },
    Postgres(PostgresConfig),
}

#[derive(Clone)]
pub struct PostgresConfig {
    pub url: DatabaseUrl,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub auth: DatabaseAuth,
    /// `SCHEMA_MIGRATE_ON_START`: false means the process never runs DDL.
    pub migrate_on_start: bool,
    /// `DATABASE_APP_ROLE`: the role `migrate` creates and grants.
    pub app_role: String,
    /// `DATABASE_MASTER_SECRET_ARN` (the `migrate` subcommand only).
    pub master_secret_arn: Option<String>,
}

impl PostgresConfig {
    /// Password authentication with the defaults of the table above (tests and tools).
    pub fn new(url: impl Into<String>, tls: TlsMode, ca_file: Option<PathBuf>) -> Self {
        Self {
            url: DatabaseUrl::new(url),
            tls,
            ca_file,
            pool_size: 2,
            connect_timeout: Duration::from_secs(5),
            auth: DatabaseAuth::Password,
            migrate_on_start: true,
            app_role: default_of("DATABASE_APP_ROLE").into(),
            master_secret_arn: None,
        }
    }
}

/// A database URL. It may hold a password, so `Debug` and `Display` show it redacted; only
/// [`DatabaseUrl::expose`] gives the text, for the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The driver's configuration. `sslmode=verify-full` is what `require` does here (chain and
    /// host name are always verified), but tokio-postgres parses only disable/prefer/require, so it
    /// reads as `require`; callers set the TLS mode from [`TlsMode`] anyway.
    pub fn driver_config(&self) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
        use std::str::FromStr;
        tokio_postgres::Config::from_str(&self.0.replace("sslmode=verify-full", "sslmode=require"))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// How the origin signs in to PostgreSQL (`DATABASE_AUTH`).
#[derive(Clone, Debug)]
pub enum DatabaseAuth {
    /// The password in `DATABASE_URL` (or none, for trust/peer setups).
    Password,
    /// An RDS IAM auth token per new connection.
    Iam(IamAuth),
}

#[derive(Clone, Debug)]
pub struct IamAuth {
    /// `AWS_REGION`: the region in the token's signing scope.
    pub region: String,
    pub credentials: AwsCredentials,
}

/// Where IAM tokens get their credentials and signing time.
#[derive(Clone, Debug)]
pub enum AwsCredentials {
    /// The AWS SDK's default chain (EKS Pod Identity, web identity, environment, …) and the clock.
    /// The only source a variable can select.
    DefaultChain,
    /// Fixed credentials and a fixed signing time, so a test can compare a token with another
    /// implementation's and set it as a test server's password. Only code sets this.
    Fixed {
        credentials: aws_credential_types::Credentials,
        signing_time: std::time::SystemTime,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// `sslmode=disable`: plaintext, only when the URL asks for it explicitly.
    Disable,
    /// The default: TLS with chain and host-name verification.
    Require,
}

#[derive(Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub store: StoreConfig,
    pub max_batch: usize,
    pub write_queue_capacity: usize,
    pub read_cache_ttl: Duration,
    pub edge_cache_ttl_s: u64,
    pub statement_timeout: Duration,
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    pub keepalive_idle_timeout: Duration,
    pub max_connections: usize,
    pub drain_period: Duration,
    pub shutdown_timeout: Duration,
    pub ready_check_interval: Duration,
    pub ready_stale_after: Duration,
    pub worker_threads: usize,
    pub log_level: String,
    pub access_log_every: u64,
    pub idempotency_key_retention: Duration,
    /// `None` when `OTEL_ENABLED=false`: nothing about tracing exists then.
    pub traces: Option<TraceConfig>,
}

/// What the tracer needs (`OTEL_ENABLED=true`), read through the same lookup as everything else,
/// so tests configure it without touching the process environment.
#[derive(Clone, Debug)]
pub struct TraceConfig {
    pub endpoint: String,
    /// Traced share of requests whose caller left the decision open, 0.0 ..= 1.0.
    pub sample_ratio: f64,
    /// Resource attributes in increasing precedence: our defaults, then `OTEL_RESOURCE_ATTRIBUTES`,
    /// then `OTEL_SERVICE_NAME`.
    pub resource: Vec<(String, String)>,
}

/// A variable with a value the origin cannot use; the message names it and what it expects.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?}: {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map instead of the environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup: &lookup };
        let store = store_config(&env)?;
        let config = Config {
            listen_addr: env.addr("LISTEN_ADDR")?,
            metrics_addr: env.addr("METRICS_ADDR")?,
            store,
            max_batch: env.number("MAX_BATCH", 1, 65_536)? as usize,
            write_queue_capacity: env.number("WRITE_QUEUE_CAPACITY", 1, 1 << 20)? as usize,
            read_cache_ttl: env.millis("READ_CACHE_TTL_MS", 0)?,
            edge_cache_ttl_s: env.number("EDGE_CACHE_TTL_S", 0, 86_400)?,
            statement_timeout: env.millis("STATEMENT_TIMEOUT_MS", 1)?,
            request_timeout: env.millis("REQUEST_TIMEOUT_MS", 1)?,
            header_read_timeout: env.millis("HEADER_READ_TIMEOUT_MS", 1)?,
            keepalive_idle_timeout: Duration::from_secs(env.number(
                "KEEPALIVE_IDLE_TIMEOUT_S",
                1,
                86_400,
            )?),
            max_connections: env.number("MAX_CONNECTIONS", 1, 1 << 20)? as usize,
            drain_period: env.millis("DRAIN_PERIOD_MS", 0)?,
            shutdown_timeout: env.millis("SHUTDOWN_TIMEOUT_MS", 1)?,
            ready_check_interval: env.millis("READY_CHECK_INTERVAL_MS", 1)?,
            ready_stale_after: env.millis("READY_STALE_AFTER_MS", 1)?,
            worker_threads: env.number("WORKER_THREADS", 0, 1024)? as usize,
            log_level: env.log_filter("LOG_LEVEL")?,
            access_log_every: env.number("ACCESS_LOG_EVERY", 0, u64::MAX)?,
            idempotency_key_retention: Duration::from_secs(env.number(
                "IDEMPOTENCY_KEY_RETENTION_S",
                60,
                31_536_000,
            )?),
            traces: trace_config(&env)?,
        };
        // The same port on both listeners (or any address with the other's port on a wildcard)
        // would fail at bind time as "already in use", blaming another process.
        let (public, metrics) = (config.listen_addr, config.metrics_addr);
        let overlap = public.ip() == metrics.ip()
            || public.ip().is_unspecified()
            || metrics.ip().is_unspecified();
        if public.port() == metrics.port() && public.port() != 0 && overlap {
            return Err(ConfigError {
                name: "METRICS_ADDR",
                value: metrics.to_string(),
                expected: format!(
                    "a port other than LISTEN_ADDR's ({public}): the metrics listener is separate"
                ),
            });
        }
        if config.ready_stale_after <= config.ready_check_interval {
            return Err(ConfigError {
                name: "READY_STALE_AFTER_MS",
                value: config.ready_stale_after.as_millis().to_string(),
                expected: "more than READY_CHECK_INTERVAL_MS".into(),
            });
        }
        Ok(config)
    }

    /// The environment section of `counter-origin --help`: every variable, its default and what
    /// it does, wrapped to [`HELP_WIDTH`] columns.
    pub fn help_text() -> String {
        let mut text = String::from("Environment variables (default in brackets):\n");
        for v in VARIABLES {
            let default = v.default.unwrap_or("unset");
            text.push_str(&format!("  {} [{default}]\n", v.name));
            wrap_into(&mut text, v.help, "      ");
        }
        text
    }
}

/// `--help` fits an 80-column terminal.
pub const HELP_WIDTH: usize = 80;

/// Appends `words` as lines of at most [`HELP_WIDTH`] characters, each starting with `indent`.
pub fn wrap_into(out: &mut String, words: &str, indent: &str) {
    let mut line = String::from(indent);
    for word in words.split_whitespace() {
        let fits = line.chars().count() + 1 + word.chars().count() <= HELP_WIDTH;
        if line.len() > indent.len() && !fits {
            out.push_str(&line);
            out.push('\n');
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// The effective configuration, one `NAME=value` per variable, secrets redacted.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, detail) = match &self.store {
            StoreConfig::Embedded {
                data_dir,
                migrate_on_start,
            } => (
                "embedded",
                format!("{} migrate_on_start={migrate_on_start}", data_dir.display()),
            ),
            StoreConfig::Postgres(pg) => (
                "postgres",
                format!(
                    "{} tls={:?} auth={} migrate_on_start={}",
                    pg.url,
                    pg.tls,
                    match &pg.auth {
                        DatabaseAuth::Password => "password".to_string(),
                        DatabaseAuth::Iam(iam) => format!("iam region={}", iam.region),
                    },
                    pg.migrate_on_start
                ),
            ),
        };
        write!(
            f,
            "store={kind} ({detail}) listen={} metrics={} max_batch={} queue={} read_cache_ttl={:?} \
             edge_ttl={}s statement_timeout={:?} request_timeout={:?} header_read_timeout={:?} \
             keepalive_idle={:?} max_connections={} drain={:?} shutdown_timeout={:?} workers={} \
             access_log_every={} traces={}",
            self.listen_addr,
            self.metrics_addr,
            self.max_batch,
            self.write_queue_capacity,
            self.read_cache_ttl,
            self.edge_cache_ttl_s,
            self.statement_timeout,
            self.request_timeout,
            self.header_read_timeout,
            self.keepalive_idle_timeout,
            self.max_connections,
            self.drain_period,
            self.shutdown_timeout,
            self.worker_threads,
            self.access_log_every,
            self.traces
                .as_ref()
                .map_or_else(|| "off".to_string(), |t| format!("{} ratio={}", t.endpoint, t.sample_ratio)),
        )
    }
}

fn store_config(env: &Env<'_>) -> Result<StoreConfig, ConfigError> {
    let migrate_on_start = env.flag("SCHEMA_MIGRATE_ON_START")?;
    let auth = env.string("DATABASE_AUTH");
    let Some(url) = env.raw("DATABASE_URL") else {
        if auth != "password" {
            return Err(ConfigError {
                name: "DATABASE_AUTH",
                value: auth,
                expected: "password (DATABASE_AUTH=iam needs DATABASE_URL: the embedded store has no sign-in)"
                    .into(),
            });
        }
        return Ok(StoreConfig::Embedded {
            data_dir: PathBuf::from(env.string("DATA_DIR")),
            migrate_on_start,
        });
    };
    let tls = tls_mode(&url)?;
    let auth = match auth.as_str() {
        "password" => DatabaseAuth::Password,
        "iam" => DatabaseAuth::Iam(iam_auth(env, &url, tls)?),
        _ => {
            return Err(ConfigError {
                name: "DATABASE_AUTH",
                value: auth,
                expected: "password or iam".into(),
            })
        }
    };
    let app_role = env.string("DATABASE_APP_ROLE");
    if !is_plain_identifier(&app_role) {
        return Err(ConfigError {
            name: "DATABASE_APP_ROLE",
            value: app_role,
            expected: "a lower-case PostgreSQL identifier: a-z, 0-9 and _, not starting with a digit, at most 63 characters"
                .into(),
        });
    }
    let master_secret_arn = env.raw("DATABASE_MASTER_SECRET_ARN");
    if let Some(arn) = &master_secret_arn {
        if secret_arn_region(arn).is_none() {
            return Err(ConfigError {
                name: "DATABASE_MASTER_SECRET_ARN",
                value: arn.clone(),
                expected: "a Secrets Manager secret ARN, arn:aws:secretsmanager:<region>:<account>:secret:<name>"
                    .into(),
            });
        }
    }
    Ok(StoreConfig::Postgres(PostgresConfig {
        url: DatabaseUrl::new(url),
        tls,
        ca_file: env.raw("DATABASE_CA_FILE").map(PathBuf::from),
        pool_size: env.number("DATABASE_POOL_SIZE", 2, 256)? as usize,
        connect_timeout: env.millis("DATABASE_CONNECT_TIMEOUT_MS", 1)?,
        auth,
        migrate_on_start,
        app_role,
        master_secret_arn,
    }))
}

/// `DATABASE_AUTH=iam`: the token is the password, so the URL must carry none (a stale one would
/// be a secret in a config map for nothing), and RDS accepts tokens over TLS only.
fn iam_auth(env: &Env<'_>, url: &str, tls: TlsMode) -> Result<IamAuth, ConfigError> {
    let invalid = |expected: &str| ConfigError {
        name: "DATABASE_URL",
        value: redact_url(url),
        expected: expected.into(),
    };
    let parsed = DatabaseUrl::new(url)
        .driver_config()
        .map_err(|_| invalid("a postgres:// URL or key=value connection string"))?;
    if parsed.get_password().is_some() {
        return Err(invalid(
            "no password with DATABASE_AUTH=iam: the origin signs an IAM token for each connection",
        ));
    }
    if tls == TlsMode::Disable {
        return Err(invalid(
            "TLS with DATABASE_AUTH=iam (sslmode=require, or leave sslmode out): RDS accepts IAM tokens over TLS only",
        ));
    }
    if parsed.get_user().is_none() {
        return Err(invalid(
            "a user with DATABASE_AUTH=iam (postgres://counter_app@host:5432/db): the token is signed for it",
        ));
    }
    match parsed.get_hosts() {
        [tokio_postgres::config::Host::Tcp(_)] => {}
        _ => {
            return Err(invalid(
                "exactly one TCP host with DATABASE_AUTH=iam: the token is signed for it",
            ))
        }
    }
    let region = env.raw("AWS_REGION").ok_or_else(|| ConfigError {
        name: "AWS_REGION",
        value: String::new(),
        expected: "the RDS instance's region (e.g. eu-west-1) with DATABASE_AUTH=iam".into(),
    })?;
    Ok(IamAuth {
        region,
        credentials: AwsCredentials::DefaultChain,
    })
}

/// `[a-z_][a-z0-9_]{0,62}`: safe to splice into DDL, and the name PostgreSQL would fold to anyway.
fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63
}

/// The region field of `arn:aws:secretsmanager:<region>:<account>:secret:<name>`.
pub fn secret_arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(7, ':');
    let (arn_literal, _partition, service, region, account, kind, name) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (arn_literal == "arn"
        && service == "secretsmanager"
        && !region.is_empty()
        && !account.is_empty()
        && kind == "secret"
        && !name.is_empty())
    .then_some(region)
}

fn trace_config(env: &Env<'_>) -> Result<Option<TraceConfig>, ConfigError> {
    if !env.flag("OTEL_ENABLED")? {
        return Ok(None);
    }
    let sampler = env.string("OTEL_TRACES_SAMPLER");
    if sampler != "parentbased_traceidratio" {
        // Refused rather than ignored: an operator asking for always_on must not silently get 5 %.
        return Err(ConfigError {
            name: "OTEL_TRACES_SAMPLER",
            value: sampler,
            expected: "parentbased_traceidratio (set the share with OTEL_TRACES_SAMPLER_ARG)"
                .into(),
        });
    }
    let ratio = env.string("OTEL_TRACES_SAMPLER_ARG");
    let sample_ratio = match ratio.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => r,
        _ => {
            return Err(ConfigError {
                name: "OTEL_TRACES_SAMPLER_ARG",
                value: ratio,
                expected: "a number from 0 to 1".into(),
            })
        }
    };
    let mut resource: Vec<(String, String)> = vec![
        ("service.name".into(), "counter-origin".into()),
        ("service.version".into(), env!("CARGO_PKG_VERSION").into()),
        (
            "deployment.environment".into(),
            env.string("DEPLOYMENT_ENVIRONMENT"),
        ),
    ];
    for (key, name) in [
        ("k8s.pod.name", "POD_NAME"),
        ("k8s.namespace.name", "POD_NAMESPACE"),
        ("k8s.node.name", "NODE_NAME"),
        ("host.name", "NODE_NAME"),
    ] {
        if let Some(value) = env.raw(name) {
            resource.push((key.into(), value));
        }
    }
    if let Some(list) = env.raw("OTEL_RESOURCE_ATTRIBUTES") {
        resource.extend(resource_attributes(&list).map_err(|expected| ConfigError {
            name: "OTEL_RESOURCE_ATTRIBUTES",
            value: list.clone(),
            expected,
        })?);
    }
    if let Some(name) = env.raw("OTEL_SERVICE_NAME") {
        resource.push(("service.name".into(), name));
    }
    Ok(Some(TraceConfig {
        endpoint: env
            .raw("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .unwrap_or_else(|| env.string("OTEL_EXPORTER_OTLP_ENDPOINT")),
        sample_ratio,
        resource,
    }))
}

/// `key=value,key2=value2` with percent-encoded values (the OpenTelemetry specification's format).
fn resource_attributes(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("key=value pairs separated by commas (no '=' in {pair:?})"))?;
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("valid percent-encoding in the value of {key:?}"))?;
        out.push((key.trim().to_string(), value));
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; also hides `password=`.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let start = scheme_end + 3 + colon + 1;
                out.replace_range(start..scheme_end + 3 + at, "***");
            }
        }
    }
    if let Some(pos) = out.find("password=") {
        let start = pos + "password=".len();
        let end = match out[start..].strip_prefix('\'') {
            // A quoted key=value (libpq): up to the closing quote, past backslash escapes.
            Some(quoted) => {
                let mut escaped = false;
                quoted
                    .char_indices()
                    .find(|&(_, c)| {
                        let closes = c == '\'' && !escaped;
                        escaped = c == '\\' && !escaped;
                        closes
                    })
                    .map_or(out.len(), |(i, _)| start + 1 + i + 1)
            }
            None => out[start..]
                .find(['&', ' '])
                .map_or(out.len(), |e| start + e),
        };
        out.replace_range(start..end, "***");
    }
    out
}

/// TLS unless the URL explicitly disables it. `prefer`/`allow` are refused: they fall back to
/// plaintext silently, which is how credentials leak.
fn tls_mode(url: &str) -> Result<TlsMode, ConfigError> {
    let mode = url
        .split(['?', '&', ' '])
        .find_map(|part| part.strip_prefix("sslmode="))
        .unwrap_or("require");
    match mode {
        "require" | "verify-full" => Ok(TlsMode::Require),
        "disable" => Ok(TlsMode::Disable),
        other => Err(ConfigError {
            name: "DATABASE_URL",
            value: format!("…sslmode={other}…"),
            expected:
                "sslmode=require (default, verified TLS) or sslmode=disable (explicit plaintext)"
                    .into(),
        }),
    }
}

struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    fn string(&self, name: &'static str) -> String {
        self.raw(name)
            .unwrap_or_else(|| default_of(name).to_string())
    }

    fn number(&self, name: &'static str, min: u64, max: u64) -> Result<u64, ConfigError> {
        let value = self.string(name);
        match value.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError {
                name,
                value,
                expected: format!("a whole number from {min} to {max}"),
            }),
        }
    }

    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        let value = self.string(name);
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ConfigError {
                name,
                value,
                expected: "true or false".into(),
            }),
        }
    }

    /// Validated strictly because `EnvFilter` is lenient: it reads `verbose` or `debugg` as a
    /// target name and then logs nothing at all, not even a fatal start-up error.
    fn log_filter(&self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.string(name);
        let directives: Option<Vec<String>> = value.split(',').map(log_directive).collect();
        match directives {
            // Spaces removed: EnvFilter would make them part of a target name.
            Some(directives) => Ok(directives.join(",")),
            None => Err(ConfigError {
                name,
                value,
                expected: format!(
                    "a level ({}) or comma-separated target=level directives, e.g. info,counter_origin=debug",
                    LOG_LEVELS.join(", ")
                ),
            }),
        }
    }

    fn millis(&self, name: &'static str, min: u64) -> Result<Duration, ConfigError> {
        self.number(name, min, 86_400_000)
            .map(Duration::from_millis)
    }

    fn addr(&self, name: &'static str) -> Result<SocketAddr, ConfigError> {
        let value = self.string(name);
        value.parse().map_err(|_| ConfigError {
            name,
            value,
            expected: "an IP address and port, e.g. 0.0.0.0:8080 or [::]:8080".into(),
        })
    }
}

const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `level` or `target=level`, where a target is a Rust path such as `counter_origin::server`;
/// returned without the spaces around its parts.
fn log_directive(directive: &str) -> Option<String> {
    let is_level = |text: &str| LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(text));
    let is_target = |text: &str| {
        text.split("::").all(|segment| {
            let mut chars = segment.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let directive = directive.trim();
    let valid = match directive.split_once('=') {
        None => is_level(directive),
        Some((target, level)) => is_target(target.trim()) && is_level(level.trim()),
    };
    valid.then(|| {
        directive
            .split('=')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("=")
    })
}

fn default_of(name: &str) -> &'static str {
    VARIABLES
        .iter()
        .find(|v| v.name == name)
        .and_then(|v| v.default)
        .unwrap_or_else(|| panic!("{name} has no default in VARIABLES"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_give_the_embedded_store_on_the_documented_ports() {
        let config = parse(&[]).unwrap();
        assert!(matches!(config.store, StoreConfig::Embedded { .. }));
        assert_eq!(config.listen_addr.port(), 8080);
        assert_eq!(config.metrics_addr.port(), 9090);
        assert_eq!(config.keepalive_idle_timeout, Duration::from_secs(75));
    }

    #[test]
    fn a_bad_value_names_the_variable_and_what_is_expected() {
        let err = parse(&[("MAX_BATCH", "lots")]).err().unwrap();
        assert_eq!(err.name, "MAX_BATCH");
        assert!(err.to_string().contains("whole number from 1"), "{err}");
        assert_eq!(
            parse(&[("LISTEN_ADDR", "8080")]).err().unwrap().name,
            "LISTEN_ADDR"
        );
        assert_eq!(
            parse(&[("MAX_BATCH", "0")]).err().unwrap().name,
            "MAX_BATCH"
        );
    }

    #[test]
    fn the_two_listeners_cannot_share_a_port() {
        for (public, metrics) in [
            ("127.0.0.1:18935", "127.0.0.1:18935"),
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("127.0.0.1:9090", "0.0.0.0:9090"),
        ] {
            let err = parse(&[("LISTEN_ADDR", public), ("METRICS_ADDR", metrics)])
                .err()
                .unwrap_or_else(|| panic!("{public} and {metrics} accepted"));
            assert_eq!(err.name, "METRICS_ADDR");
        }
        // Different interfaces may share a port; port 0 means "any free one" for both.
        assert!(parse(&[
            ("LISTEN_ADDR", "127.0.0.1:8080"),
            ("METRICS_ADDR", "127.0.0.2:8080")
        ])
        .is_ok());
        assert!(parse(&[
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("METRICS_ADDR", "127.0.0.1:0")
        ])
        .is_ok());
    }

    #[test]
    fn tls_is_required_unless_explicitly_disabled() {
        let pg = |url: &str| match parse(&[("DATABASE_URL", url)]).map(|c| c.store) {
            Ok(StoreConfig::Postgres(pg)) => Ok(pg.tls),
            Ok(StoreConfig::Embedded { .. }) => unreachable!(),
            Err(e) => Err(e.name),
        };
        assert_eq!(pg("postgres://u@h/db"), Ok(TlsMode::Require));
        assert_eq!(
            pg("postgres://u@h/db?sslmode=disable"),
            Ok(TlsMode::Disable)
        );
        assert_eq!(pg("postgres://u@h/db?sslmode=prefer"), Err("DATABASE_URL"));
        assert_eq!(
            pg("postgres://u@h/db?sslmode=verify-full"),
            Ok(TlsMode::Require)
        );
        let url = DatabaseUrl::new("postgres://u@h/db?sslmode=verify-full");
        assert!(
            url.driver_config().is_ok(),
            "the driver reads verify-full as require"
        );
    }

    #[test]
    fn passwords_never_reach_the_log_line() {
        assert_eq!(
            redact_url("postgres://app:s3cr3t@db:5432/c?sslmode=require"),
            "postgres://app:***@db:5432/c?sslmode=require"
        );
        assert_eq!(
            redact_url("host=db password=s3cr3t user=app"),
            "host=db password=*** user=app"
        );
        // Quoted values may hold spaces and escaped quotes: all of it is hidden.
        assert_eq!(
            redact_url(r"host=db password='a b\'c d' user=app"),
            "host=db password=*** user=app"
        );
        assert_eq!(redact_url("password='unterminated"), "password=***");
        let config = parse(&[("DATABASE_URL", "postgres://app:s3cr3t@db/c")]).unwrap();
        assert!(!config.to_string().contains("s3cr3t"));
    }

    #[test]
    fn tracing_is_off_unless_asked_for() {
        assert!(parse(&[]).unwrap().traces.is_none());
        assert!(parse(&[("OTEL_ENABLED", "false")])
            .unwrap()
            .traces
            .is_none());
        let traces = parse(&[("OTEL_ENABLED", "true")]).unwrap().traces.unwrap();
        assert_eq!(traces.endpoint, "http://localhost:4317");
        assert_eq!(traces.sample_ratio, 0.05);
        assert_eq!(
            parse(&[("OTEL_ENABLED", "yes")]).err().unwrap().name,
            "OTEL_ENABLED"
        );
    }

    #[test]
    fn trace_settings_are_validated_and_follow_the_otel_precedence() {
        let on = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![("OTEL_ENABLED", "true")];
            pairs.extend_from_slice(extra);
            parse(&pairs)
        };
        for (name, value) in [
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_RESOURCE_ATTRIBUTES", "a=%zz"),
        ] {
            assert_eq!(on(&[(name, value)]).err().unwrap().name, name, "{value}");
        }
        let traces = on(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs, team=sre%2Cops,k8s.pod.name=p2",
            ),
            ("POD_NAME", "p1"),
            ("DEPLOYMENT_ENVIRONMENT", "production"),
        ])
        .unwrap()
        .traces
        .unwrap();
        assert_eq!(traces.endpoint, "http://traces:4317");
        // Later entries win when the resource is built.
        let last = |key: &str| {
            traces
                .resource
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(last("service.name"), Some("from-attrs"));
        assert_eq!(last("team"), Some("sre,ops"));
        assert_eq!(last("k8s.pod.name"), Some("p2"));
        assert_eq!(last("deployment.environment"), Some("production"));
        assert_eq!(last("k8s.node.name"), None);
        let named = on(&[
            ("OTEL_SERVICE_NAME", "svc"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=x"),
        ])
        .unwrap()
        .traces
        .unwrap();
        assert_eq!(
            named.resource.last().unwrap(),
            &("service.name".to_string(), "svc".to_string())
        );
    }

    #[test]
    fn iam_mode_needs_a_passwordless_tls_url_with_a_user_and_a_region() {
        let iam = |url: &str, region: Option<&str>| {
            let mut pairs = vec![("DATABASE_URL", url), ("DATABASE_AUTH", "iam")];
            if let Some(region) = region {
                pairs.push(("AWS_REGION", region));
            }
            parse(&pairs)
        };
        let ok = iam(
            "postgres://counter_app@db.example:5432/counter",
            Some("eu-west-1"),
        )
        .unwrap();
        let StoreConfig::Postgres(pg) = &ok.store else {
            panic!("postgres")
        };
        assert!(
            matches!(&pg.auth, DatabaseAuth::Iam(i) if i.region == "eu-west-1"
            && matches!(i.credentials, AwsCredentials::DefaultChain))
        );
        assert_eq!(pg.tls, TlsMode::Require);
        for (url, region, variable, says) in [
            (
                "postgres://counter_app:s3cr3t@db/counter",
                Some("eu-west-1"),
                "DATABASE_URL",
                "no password",
            ),
            (
                "host=db user=counter_app password=s3cr3t",
                Some("eu-west-1"),
                "DATABASE_URL",
                "no password",
            ),
            (
                "postgres://counter_app@db/counter?sslmode=disable",
                Some("eu-west-1"),
                "DATABASE_URL",
                "TLS",
            ),
            (
                "postgres://db/counter",
                Some("eu-west-1"),
                "DATABASE_URL",
                "a user",
            ),
            (
                "postgres://counter_app@db/counter",
                None,
                "AWS_REGION",
                "region",
            ),
        ] {
            let error = iam(url, region)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert_eq!(error.name, variable, "{url}");
            assert!(error.to_string().contains(says), "{error}");
            assert!(
                !error.to_string().contains("s3cr3t"),
                "the message must not quote the password: {error}"
            );
        }
        assert_eq!(
            parse(&[("DATABASE_AUTH", "iam")]).err().unwrap().name,
            "DATABASE_AUTH"
        );
        assert_eq!(
            parse(&[
                ("DATABASE_URL", "postgres://u@h/db"),
                ("DATABASE_AUTH", "kerberos")
            ])
            .err()
            .unwrap()
            .name,
            "DATABASE_AUTH"
        );
    }

    #[test]
    fn migration_settings_are_validated() {
        let pg = |pairs: &[(&str, &str)]| {
            let mut all = vec![("DATABASE_URL", "postgres://u@h/db")];
            all.extend_from_slice(pairs);
            parse(&all)
        };
        let StoreConfig::Postgres(defaults) = pg(&[]).unwrap().store else {
            panic!()
        };
        assert_eq!(defaults.app_role, "counter_app");
        assert!(defaults.migrate_on_start);
        assert!(defaults.master_secret_arn.is_none());
        for role in ["Counter", "1app", "app-role", "a\"b", ""] {
            if role.is_empty() {
                continue; // empty means unset: the default
            }
            assert_eq!(
                pg(&[("DATABASE_APP_ROLE", role)]).err().unwrap().name,
                "DATABASE_APP_ROLE",
                "{role}"
            );
        }
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234-abcd";
        let StoreConfig::Postgres(set) = pg(&[("DATABASE_MASTER_SECRET_ARN", arn)]).unwrap().store
        else {
            panic!()
        };
        assert_eq!(set.master_secret_arn.as_deref(), Some(arn));
        assert_eq!(secret_arn_region(arn), Some("eu-west-1"));
        assert_eq!(
            pg(&[("DATABASE_MASTER_SECRET_ARN", "rds!db-1234")])
                .err()
                .unwrap()
                .name,
            "DATABASE_MASTER_SECRET_ARN"
        );
        assert_eq!(
            pg(&[("SCHEMA_MIGRATE_ON_START", "maybe")])
                .err()
                .unwrap()
                .name,
            "SCHEMA_MIGRATE_ON_START"
        );
        assert!(matches!(
            parse(&[("SCHEMA_MIGRATE_ON_START", "false")])
                .unwrap()
                .store,
            StoreConfig::Embedded {
                migrate_on_start: false,
                ..
            }
        ));
    }

    #[test]
    fn the_database_url_type_redacts_itself() {
        let url = DatabaseUrl::new("postgres://app:s3cr3t@db/c");
        assert_eq!(url.to_string(), "postgres://app:***@db/c");
        assert!(!format!("{url:?}").contains("s3cr3t"));
        assert_eq!(url.expose(), "postgres://app:s3cr3t@db/c");
    }

    #[test]
    fn log_level_takes_levels_and_target_directives_only() {
        for (given, used) in [
            ("info", "info"),
            ("DEBUG", "DEBUG"),
            ("off", "off"),
            ("warn,counter_origin=debug", "warn,counter_origin=debug"),
            (
                "info, counter_origin::server = trace ,access=off",
                "info,counter_origin::server=trace,access=off",
            ),
        ] {
            let config = parse(&[("LOG_LEVEL", given)]).unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(config.log_level, used);
            tracing_subscriber::EnvFilter::try_new(&config.log_level)
                .expect("EnvFilter accepts it");
        }
        for bad in [
            "verbose",
            "debugg",
            "info,",
            "counter_origin",
            "=debug",
            "counter_origin=loud",
            "counter-origin=debug",
            "a::=info",
            "server[request]=debug",
            "3",
        ] {
            let err = parse(&[("LOG_LEVEL", bad)])
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(err.name, "LOG_LEVEL");
            assert!(err.to_string().contains("target=level"), "{err}");
        }
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = Config::help_text();
        for v in VARIABLES {
            assert!(help.contains(v.name), "{} missing from --help", v.name);
        }
        assert!(help.contains("LISTEN_ADDR [0.0.0.0:8080]"));
        for line in help.lines() {
            assert!(
                line.chars().count() <= HELP_WIDTH,
                "wider than {HELP_WIDTH}: {line}"
            );
        }
    }
}
