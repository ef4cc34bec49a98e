//! `counter-origin`: read the configuration, start logging, run until SIGTERM/SIGINT, drain, exit 0.
//! `counter-origin migrate`: bring the schema to this build's version, set up the application
//! role, exit 0 (1 on failure, with the reason logged).

use std::process::ExitCode;

use counter_origin::{config::Config, telemetry};

fn main() -> ExitCode {
    if std::env::args()
        .skip(1)
        .any(|arg| arg == "--help" || arg == "-h")
    {
        print!("{}", Config::help_text());
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("counter-origin: invalid configuration: {error}");
            return ExitCode::from(2);
        }
    };
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        return migrate(config);
    }
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
    runtime.block_on(async {
        // Handlers first: a SIGTERM that arrives while we start must drain, not kill.
        let stop = shutdown_signal();
        let running = match counter_origin::start(config).await {
            Ok(running) => running,
            Err(error) => {
                tracing::error!(%error, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        stop.await;
        running.shutdown();
        running.stopped().await;
        ExitCode::SUCCESS
    })
}

/// Installs the SIGTERM and SIGINT handlers now; the returned future resolves on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
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
            ExitCode::FAILURE
        }
    }
}
