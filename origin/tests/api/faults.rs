//! Store outages: the origin answers 503 fast, counts nothing, and recovers without a restart.

use std::net::SocketAddr;

use hyper::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{spawn_app, Backend};
use testkit::database::with_database;

/// A TCP proxy in front of PostgreSQL that the test can cut (every connection dropped, new ones
/// refused) and restore on the same port: a real network outage, seen from the origin.
struct CuttableProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let task = tokio::spawn(Self::serve(listener, upstream, up.subscribe()));
        Self {
            addr,
            upstream,
            up,
            task,
        }
    }

    async fn serve(listener: TcpListener, upstream: SocketAddr, up: watch::Receiver<bool>) {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let mut up = up.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut client, mut server) = (client, server);
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = up.wait_for(|up| !*up) => {} // cut: both sockets are dropped
                }
            });
        }
    }

    /// Drops every proxied connection and stops listening (connections are refused).
    fn cut(&mut self) {
        self.up.send_replace(false);
        self.task.abort();
    }

    async fn restore(&mut self) {
        let listener = loop {
            // The port was ours a moment ago; rebinding may need a retry while the old socket closes.
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) => tokio::task::yield_now().await,
            }
        };
        self.up.send_replace(true);
        self.task = tokio::spawn(Self::serve(listener, self.upstream, self.up.subscribe()));
    }
}

fn socket_of(url: &str) -> SocketAddr {
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    host_port
        .parse()
        .expect("TEST_DATABASE_URL with an IP:port host")
}

#[tokio::test]
async fn a_store_outage_answers_503_fast_counts_nothing_and_recovers_without_restart() {
    let database = crate::helpers::fresh_database().await;
    let mut proxy = CuttableProxy::start(socket_of(&database)).await;
    let through_proxy = database.replacen(
        &socket_of(&database).to_string(),
        &proxy.addr.to_string(),
        1,
    );
    let name = database
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let url = with_database(&through_proxy, name);
    let app = spawn_app(
        Backend::Postgres,
        &[
            ("DATABASE_URL", &url),
            ("REQUEST_TIMEOUT_MS", "30000"),
            ("READ_CACHE_TTL_MS", "0"),
        ],
    )
    .await;
    app.await_readiness(StatusCode::OK).await;
    assert_eq!(app.post_counter().await.value(), 1);

    proxy.cut();
    for _ in 0..20 {
        let answer = app.post_counter().await;
        // 503, not 504: the failure is reported as soon as it is known, not at the deadline.
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.text()
        );
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert!(
            !answer.text().to_lowercase().contains("connect"),
            "no cause leaks: {}",
            answer.text()
        );
    }
    let read = app.get("/api/counter").await;
    assert_eq!(read.status, StatusCode::SERVICE_UNAVAILABLE);
    app.await_readiness(StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        app.get("/healthz").await.status,
        StatusCode::OK,
        "liveness never depends on the store"
    );

    proxy.restore().await;
    app.await_readiness(StatusCode::OK).await;
    assert_eq!(
        app.post_counter().await.value(),
        2,
        "nothing from the outage was counted"
    );
    let direct = crate::helpers::pg_connect(&database).await;
    let committed: i64 = direct
        .query_one("SELECT value FROM request_counter_state", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(committed, 2);
}

#[tokio::test]
async fn the_origin_starts_while_the_database_is_down_and_becomes_ready_when_it_is_up() {
    let database = crate::helpers::fresh_database().await;
    let mut proxy = CuttableProxy::start(socket_of(&database)).await;
    let url = database.replacen(
        &socket_of(&database).to_string(),
        &proxy.addr.to_string(),
        1,
    );
    proxy.cut();
    let app = spawn_app(Backend::Postgres, &[("DATABASE_URL", &url)]).await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(
        app.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        app.post_counter().await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    proxy.restore().await;
    app.await_readiness(StatusCode::OK).await;
    assert_eq!(
        app.post_counter().await.value(),
        1,
        "schema created once the database answered"
    );
}

#[tokio::test]
async fn many_origins_starting_at_once_create_the_schema_safely() {
    let database = crate::helpers::fresh_database().await;
    let apps = futures_join_all((0..6).map(|_| {
        let url = database.clone();
        async move { spawn_app(Backend::Postgres, &[("DATABASE_URL", &url)]).await }
    }))
    .await;
    let answers =
        futures_join_all(apps.iter().map(|app| {
            let addr = app.addr;
            async move {
                crate::helpers::send(addr, hyper::Method::POST, "/api/counter", &[], b"").await
            }
        }))
        .await;
    let mut values: Vec<i64> = answers.iter().map(|a| a.value()).collect();
    values.sort();
    assert_eq!(
        values,
        (1..=6).collect::<Vec<_>>(),
        "one table, one row, shared by all"
    );
}

async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
