//! `counter-origin`: parse the command line, read the configuration, start logging, serve until
//! SIGTERM/SIGINT, drain, exit; or `migrate`: bring the schema to this build's version, set up the
//! application role, exit. What each exit status means is [`EXIT_CODES`].

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use counter_origin::config::{self, Config, StoreConfig};
use counter_origin::store::OpenError;
use counter_origin::{telemetry, StartError};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// `--version`: the crate version, the commit it was built from and when (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("COUNTER_REVISION"),
    ", built ",
    env!("COUNTER_BUILD_TIME"),
    ")"
);

/// Printed by `--help` and documented in docs/configuration.md (a test compares them).
const EXIT_CODES: &[(u8, &str)] = &[
    (
        0,
        "stopped cleanly (SIGTERM or Ctrl-C, after the drain); --help; --version",
    ),
    (
        1,
        "start-up or migrate failure: a port in use, a store that cannot be opened",
    ),
    (
        2,
        "usage or configuration error: an unknown argument, a bad variable",
    ),
    (130, "a second Ctrl-C: stopped at once, without draining"),
];
const FAILED_TO_START: u8 = 1;
const BAD_CONFIGURATION: u8 = 2;
const INTERRUPTED_TWICE: i32 = 130;

#[derive(Parser)]
#[command(
    name = "counter-origin",
    version = VERSION,
    about = "The Counter Service origin: HTTP API, page, probes and metrics.",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// What to run; `serve` when none is named.
#[derive(Subcommand)]
enum Command {
    /// Serve until SIGTERM or Ctrl-C, then drain and stop (the default)
    Serve,
    /// Apply schema migrations, set up the least-privilege role, exit
    Migrate,
}

fn main() -> ExitCode {
    // Unknown arguments exit 2 with a usage line; --help and --version exit 0 (clap's codes).
    let matches = Cli::command()
        .after_help(after_help())
        .term_width(config::HELP_WIDTH)
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Migrate => match configuration() {
            Ok(config) => migrate(config),
            Err(code) => code,
        },
    }
}

fn after_help() -> String {
    let mut text = Config::help_text();
    text.push_str("\nExit status:\n");
    for (code, meaning) in EXIT_CODES {
        text.push_str(&format!("  {code:>3}  {meaning}\n"));
    }
    text
}

/// The configuration, or the exit status of a bad one (the message is printed).
fn configuration() -> Result<Config, ExitCode> {
    Config::from_env().map_err(|error| {
        eprintln!(
            "counter-origin: invalid configuration: {error}\n\
             (counter-origin --help lists every variable)"
        );
        ExitCode::from(BAD_CONFIGURATION)
    })
}

fn serve() -> ExitCode {
    let config = match configuration() {
        Ok(config) => config,
        Err(code) => return code,
    };
    telemetry::logs::init(&config.log_level, config.traces.is_some());
    let runtime = match config.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .expect("tokio runtime");
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    // Handlers first: a SIGTERM that arrives while we start must drain, not kill.
    let mut signals = Signals::install();
    let for_humans = std::io::stdout().is_terminal();
    let drain = config.drain_period;
    let started = config.clone();
    let running = match counter_origin::start(config).await {
        Ok(running) => running,
        Err(error) => {
            let explanation = explain(&error, &started);
            tracing::error!(%error, hint = %explanation, "cannot start");
            eprintln!("counter-origin: cannot start: {explanation}");
            return ExitCode::from(FAILED_TO_START);
        }
    };
    if for_humans {
        eprintln!(
            "counter-origin {}: open {} (metrics: {}/metrics; Ctrl-C stops)",
            env!("CARGO_PKG_VERSION"),
            url_to_open(running.addr),
            url_to_open(running.metrics_addr).trim_end_matches('/'),
        );
    }
    let first = signals.next().await;
    tracing::info!("{} received", first.name());
    if for_humans && !drain.is_zero() {
        eprintln!(
            "counter-origin: draining for {drain:?} before stopping; Ctrl-C again exits at once"
        );
    }
    running.shutdown();
    let stopped = running.stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return ExitCode::SUCCESS,
            // Kubernetes sends SIGTERM once and means "drain"; only a person presses Ctrl-C twice.
            received = signals.next() => if let Received::Interrupt = received {
                tracing::warn!("second SIGINT received: exiting without draining");
                eprintln!("counter-origin: second Ctrl-C: exiting now, without draining");
                std::process::exit(INTERRUPTED_TWICE);
            },
        }
    }
}

/// A start-up failure as a sentence an operator can act on: what failed, then what to do.
fn explain(error: &StartError, config: &Config) -> String {
    match error {
        StartError::Bind { addr, source } => {
            let variable = if *addr == config.listen_addr {
                "LISTEN_ADDR"
            } else {
                "METRICS_ADDR"
            };
            // A suggestion that is neither this port nor the other listener's.
            let taken = [config.listen_addr.port(), config.metrics_addr.port()];
            let free = (1..=2u16)
                .map(|step| addr.port().wrapping_add(step))
                .find(|port| !taken.contains(port))
                .unwrap_or(0);
            let example = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), free);
            match source.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "port {} ({variable}={addr}) is already in use, perhaps by another \
                     counter-origin. Stop that process, or set {variable} to a free address, \
                     e.g. {variable}={example}.",
                    addr.port()
                ),
                std::io::ErrorKind::AddrNotAvailable => format!(
                    "{addr} ({variable}) is not an address of this machine. Use 127.0.0.1 \
                     (this machine only) or 0.0.0.0 (every interface), e.g. {variable}={example}."
                ),
                std::io::ErrorKind::PermissionDenied => format!(
                    "not allowed to listen on {addr} ({variable}): ports below 1024 need \
                     privileges. Use a higher port, e.g. {variable}={example}."
                ),
                _ => format!("cannot listen on {addr} ({variable}): {source}."),
            }
        }
        StartError::Store(OpenError::Url(source)) => {
            let url = match &config.store {
                StoreConfig::Postgres(pg) => pg.url.expose(),
                StoreConfig::Embedded { .. } => "",
            };
            match url.split_once("://").map(|(scheme, _)| scheme) {
                Some(scheme) if scheme != "postgres" && scheme != "postgresql" => format!(
                    "DATABASE_URL is a {scheme}:// URL, but the origin stores the counter only \
                     in PostgreSQL. Give a postgres://user:password@host:5432/database URL, or \
                     unset DATABASE_URL to use the embedded store."
                ),
                _ => format!(
                    "DATABASE_URL is not a PostgreSQL connection string ({source}). Expected \
                     postgres://user:password@host:5432/database?sslmode=require."
                ),
            }
        }
        StartError::Store(OpenError::DataDir { path, source }) => format!(
            "cannot create the embedded store's directory {path}: {source}. Set DATA_DIR to a \
             directory this user can create or write, or set DATABASE_URL to use PostgreSQL."
        ),
        StartError::Store(OpenError::Embedded { path, source }) => format!(
            "cannot open the embedded store {path}: {source}. It must be a SQLite file this \
             user can write, on a file system with free space (a full disk can show as \"disk \
             I/O error\"). Pointing DATA_DIR elsewhere starts a new count from 0."
        ),
        StartError::Store(OpenError::OrphanedJournal { path }) => format!(
            "the embedded store {path} is missing but its -wal/-shm files are there: the \
             database was deleted or moved while a process used it. Starting would hand out \
             counts from 0 again; restore the file, or remove the -wal/-shm files to start over."
        ),
        StartError::Store(OpenError::CaFile { path, reason }) => format!(
            "cannot use DATABASE_CA_FILE={path}: {reason}. It must be a readable PEM bundle of \
             CA certificates (for RDS, the global bundle)."
        ),
        StartError::Traces(source) => format!(
            "cannot start tracing: {source}. Check OTEL_EXPORTER_OTLP_ENDPOINT, or set \
             OTEL_ENABLED=false."
        ),
        other => format!("{other}."),
    }
}

/// The URL a person on this machine opens: an unspecified address (0.0.0.0, ::) is reached
/// through loopback.
fn url_to_open(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/", SocketAddr::new(ip, addr.port()))
}

enum Received {
    Terminate,
    Interrupt,
}

impl Received {
    fn name(&self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        }
    }
}

struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// From here on SIGTERM and SIGINT are queued for [`Signals::next`] instead of killing us.
    fn install() -> Self {
        Self {
            terminate: signal(SignalKind::terminate()).expect("SIGTERM handler"),
            interrupt: signal(SignalKind::interrupt()).expect("SIGINT handler"),
        }
    }

    async fn next(&mut self) -> Received {
        tokio::select! {
            _ = self.terminate.recv() => Received::Terminate,
            _ = self.interrupt.recv() => Received::Interrupt,
        }
    }
}

/// `counter-origin migrate` (see `store::migrate`): one run, one log line, exit 0 or 1.
fn migrate(config: Config) -> ExitCode {
    telemetry::logs::init(&config.log_level, false);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(counter_origin::store::migrate::run(&config)) {
        Ok(report) => {
            tracing::info!(%report, "migration done");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "migration failed");
            eprintln!("counter-origin migrate: {error}");
            ExitCode::from(FAILED_TO_START)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_url_to_open_is_reachable_from_this_machine() {
        let url = |text: &str| url_to_open(text.parse().unwrap());
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080/");
        assert_eq!(url("127.0.0.1:8080"), "http://127.0.0.1:8080/");
        assert_eq!(url("10.0.0.7:80"), "http://10.0.0.7:80/");
    }
}
