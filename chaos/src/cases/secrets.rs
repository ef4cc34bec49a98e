//! No secret in logs or answers under failure (docs/design.md §1, §9.2: errors are short, safe; the
//! original returned `str(exc)` to clients). The origin is started against databases that fail
//! in the ways that put credentials closest to an error message, with debug logging and every
//! request logged, and every request carries an `X-Origin-Verify` header (the value CloudFront
//! adds and the ALB matches; the ALB forwards it to the origin):
//! - a server that asks for the password and refuses it (SQLSTATE 28P01);
//! - a server that refuses TLS while the URL requires it;
//! - the real server with `sslmode=require` and a CA that did not sign its certificate;
//! - nothing listening at all.
//!
//! Both secrets are searched, raw and percent-encoded, in the origin's stdout and stderr and in
//! every answer it gave (API, probes, 404, metrics). Positive controls make the scan meaningful:
//! the failure was logged, the redacted URL (user, host) was logged, and the fake server did
//! receive the password (so it was really there to leak).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Env, FaultCase};
use crate::report::Checks;
use crate::Error;
use testkit::origin::{self, OriginSpec};
use testkit::probe;

const USER: &str = "counter_app";

/// A PostgreSQL server that only knows how to say no: it answers an SSLRequest with `N` (no TLS)
/// and a startup message with a cleartext password request, records the password, and refuses
/// it like PostgreSQL does (FATAL 28P01).
struct RefusingServer {
    addr: SocketAddr,
    passwords: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RefusingServer {
    async fn start() -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("bind 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("local address", e))?;
        let passwords = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&passwords);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), refuse(stream, seen)).await;
                });
            }
        });
        Ok(Self {
            addr,
            passwords,
            task,
        })
    }
}

impl Drop for RefusingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn refuse(mut stream: TcpStream, seen: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    const SSL_REQUEST: i32 = 80_877_103;
    loop {
        let length = stream.read_i32().await?;
        let mut body = vec![0u8; (length as usize).saturating_sub(4).min(64 * 1024)];
        stream.read_exact(&mut body).await?;
        if body.len() >= 4
            && i32::from_be_bytes([body[0], body[1], body[2], body[3]]) == SSL_REQUEST
        {
            stream.write_all(b"N").await?;
            continue;
        }
        break; // the startup message
    }
    // AuthenticationCleartextPassword: the client sends the password itself.
    stream.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await?;
    let tag = stream.read_u8().await?;
    let length = stream.read_i32().await?;
    let mut body = vec![0u8; (length as usize).saturating_sub(4).min(64 * 1024)];
    stream.read_exact(&mut body).await?;
    if tag == b'p' {
        let password =
            String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned();
        seen.lock().expect("no panics while locked").push(password);
    }
    let mut fields = Vec::new();
    for (code, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "28P01"),
        (
            b'M',
            "password authentication failed for user \"counter_app\"",
        ),
    ] {
        fields.push(code);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(fields.len() as i32 + 4).to_be_bytes());
    message.extend_from_slice(&fields);
    stream.write_all(&message).await?;
    stream.shutdown().await
}

/// `text` percent-encoded as a URL's userinfo needs it.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where `secret` (raw or percent-encoded) appears in `text`: a few surrounding characters each.
pub fn leaks(text: &str, secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    for form in [secret.to_string(), percent_encode(secret)] {
        let mut from = 0;
        while let Some(at) = text[from..].find(&form) {
            let start = text[..from + at]
                .char_indices()
                .rev()
                .nth(40)
                .map_or(0, |(i, _)| i);
            let end = (from + at + form.len() + 40).min(text.len());
            let end = (end..=text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            found.push(text[start..end].to_string());
            from += at + form.len();
        }
    }
    found
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Scenario {
    pub name: String,
    pub answers_scanned: usize,
    pub log_bytes_scanned: usize,
    pub password_leaks: Vec<String>,
    pub origin_verify_leaks: Vec<String>,
    /// Positive controls.
    pub failure_logged: bool,
    /// The logged cause is the failure this scenario stages (e.g. `UnknownIssuer`: the
    /// certificate really was verified and refused).
    pub expected_cause: String,
    pub expected_cause_logged: bool,
    pub redacted_url_logged: bool,
    /// The fake server's scenario only: it received the password (it was there to leak).
    pub password_reached_the_database: Option<bool>,
    pub answers_503_with_retry_after: bool,
    pub panics: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub scenarios: Vec<Scenario>,
}

/// The two secrets the case plants.
struct Planted {
    password: String,
    origin_verify: String,
}

pub struct Secrets;

impl FaultCase for Secrets {
    type Figures = Figures;

    async fn run(&self, env: &Env<'_>) -> Result<Figures, Error> {
        let unique = format!(
            "{}{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let secrets = Planted {
            // Characters a URL must encode, so both the raw and the encoded form are searched.
            password: format!("pw@{unique}:s3cret/x"),
            origin_verify: format!("xov-{unique}-f3e1a9"),
        };
        let encoded = percent_encode(&secrets.password);
        let refusing = RefusingServer::start().await?;
        let nobody = testkit::free_addr()?;
        let real = env
            .database()?
            .admin_url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('@').nth(1))
            .and_then(|host| host.split('/').next())
            .ok_or_else(|| Error::Setup("TEST_DATABASE_URL has no host:port".into()))?
            .to_string();
        let url = |host: &str, mode: &str| {
            format!("postgres://{USER}:{encoded}@{host}/counter?sslmode={mode}")
        };
        let scenarios = [
            (
                "password refused",
                url(&refusing.addr.to_string(), "disable"),
                "password authentication failed",
                Some(&refusing),
            ),
            (
                "TLS refused by the server",
                url(&refusing.addr.to_string(), "require"),
                "server does not support TLS",
                None,
            ),
            (
                "certificate not trusted",
                url(&real, "require"),
                "invalid peer certificate: UnknownIssuer",
                None,
            ),
            (
                "database unreachable",
                url(&nobody.to_string(), "require"),
                "Connection refused",
                None,
            ),
        ];
        let mut figures = Figures {
            scenarios: Vec::new(),
        };
        for (i, (scenario, database_url, cause, server)) in scenarios.into_iter().enumerate() {
            let spec = env.origin(
                &format!("origin-{i}"),
                &[
                    ("DATABASE_URL", &database_url),
                    ("DATABASE_CONNECT_TIMEOUT_MS", "1000"),
                    ("LOG_LEVEL", "debug"),
                    ("ACCESS_LOG_EVERY", "1"),
                ],
            )?;
            let before = refusing
                .passwords
                .lock()
                .expect("no panics while locked")
                .len();
            let mut result = probe_scenario(&spec, scenario, &secrets).await?;
            result.expected_cause = cause.into();
            result.expected_cause_logged = origin::logs(&spec).contains(cause);
            if server.is_some() {
                let passwords = refusing.passwords.lock().expect("no panics while locked");
                result.password_reached_the_database =
                    Some(passwords[before..].contains(&secrets.password));
            }
            figures.scenarios.push(result);
        }
        Ok(figures)
    }

    fn judge(f: &Figures) -> Checks {
        let mut checks = Checks::default();
        for s in &f.scenarios {
            checks.expect(
            &format!("{}: no secret in logs or answers", s.name),
            s.password_leaks.is_empty() && s.origin_verify_leaks.is_empty(),
            format!(
                "{} log bytes and {} answers scanned; password found {:?}, X-Origin-Verify found {:?}",
                s.log_bytes_scanned, s.answers_scanned, s.password_leaks, s.origin_verify_leaks
            ),
        );
            checks.expect(
            &format!("{}: the failure was logged and answered 503", s.name),
            s.failure_logged
                && s.expected_cause_logged
                && s.redacted_url_logged
                && s.answers_503_with_retry_after,
            format!(
                "failure logged: {} (cause {:?}: {}), redacted URL logged: {}, API answers 503 + Retry-After: {}",
                s.failure_logged,
                s.expected_cause,
                s.expected_cause_logged,
                s.redacted_url_logged,
                s.answers_503_with_retry_after
            ),
        );
            if let Some(reached) = s.password_reached_the_database {
                checks.expect(
                    &format!("{}: the password was sent, to the database only", s.name),
                    reached,
                    format!("the refusing server received the password: {reached}"),
                );
            }
            checks.no_panic(&format!("{}: no panic", s.name), &s.panics);
        }
        checks
    }
}

async fn probe_scenario(
    spec: &OriginSpec,
    name: &str,
    secrets: &Planted,
) -> Result<Scenario, Error> {
    let mut origin = spec.spawn()?;
    origin.wait_for("/healthz", 200).await?;
    // The store checker tries the database at start-up and every 100 ms: wait for its verdict.
    let logged = || async move {
        let logs = origin::logs(spec);
        (logs.contains("store not answering") || logs.contains("store ping timed out"))
            .then_some(())
    };
    let failure_logged = super::poll(Duration::from_secs(15), logged).await.is_some();
    let header = [("X-Origin-Verify", secrets.origin_verify.as_str())];
    let timeout = Duration::from_secs(10);
    let mut answers = Vec::new();
    for (method, path) in [
        ("POST", "/api/counter"),
        ("GET", "/api/counter"),
        ("HEAD", "/api/counter"),
        ("GET", "/readyz"),
        ("GET", "/healthz"),
        ("GET", "/no-such-page"),
        ("DELETE", "/api/counter"),
    ] {
        answers.push(probe::request(origin.addr(), method, path, &header, timeout).await?);
    }
    let metrics =
        probe::request(origin.metrics_addr(), "GET", "/metrics", &header, timeout).await?;
    let exit = origin.terminate(super::STOP_TIMEOUT).await;
    let logs = origin::logs(spec);
    let mut seen = logs.clone();
    for answer in answers.iter().chain([&metrics]) {
        seen.push_str(&answer.text());
    }
    let api = &answers[..2];
    Ok(Scenario {
        name: name.into(),
        answers_scanned: answers.len() + 1,
        log_bytes_scanned: logs.len(),
        password_leaks: leaks(&seen, &secrets.password),
        origin_verify_leaks: leaks(&seen, &secrets.origin_verify),
        failure_logged: failure_logged && exit.is_ok(),
        redacted_url_logged: logs.contains(&format!("{USER}:***@")),
        password_reached_the_database: None,
        answers_503_with_retry_after: api
            .iter()
            .all(|a| a.status == 503 && a.header("retry-after").is_some()),
        panics: origin::panics(spec),
        ..Scenario::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_raw_and_encoded_secrets() {
        let secret = "pw@1:s/x";
        assert_eq!(percent_encode(secret), "pw%401%3As%2Fx");
        assert_eq!(
            leaks("url=postgres://u:pw%401%3As%2Fx@h/db", secret).len(),
            1
        );
        assert_eq!(
            leaks("error: pw@1:s/x refused; again pw@1:s/x", secret).len(),
            2
        );
        assert!(leaks("postgres://u:***@h/db", secret).is_empty());
        assert_eq!(
            leaks("é€ pw@1:s/x é€", secret).len(),
            1,
            "context cut on char boundaries"
        );
    }

    fn good() -> Scenario {
        Scenario {
            name: "password refused".into(),
            failure_logged: true,
            expected_cause_logged: true,
            redacted_url_logged: true,
            password_reached_the_database: Some(true),
            answers_503_with_retry_after: true,
            ..Scenario::default()
        }
    }

    #[test]
    fn a_leak_or_a_meaningless_scan_fails() {
        let passes = |s: &Scenario| {
            Secrets::judge(&Figures {
                scenarios: vec![s.clone()],
            })
            .passed()
        };
        crate::report::assert_each_break_fails(
            good,
            passes,
            breaks![Scenario;
                "password in a log" => |s| s.password_leaks = vec!["…".into()],
                "header value in a log" => |s| s.origin_verify_leaks = vec!["…".into()],
                "failure never logged" => |s| s.failure_logged = false,
                "another failure than staged" => |s| s.expected_cause_logged = false,
                "URL not logged" => |s| s.redacted_url_logged = false,
                "password never sent" => |s| s.password_reached_the_database = Some(false),
                "not a 503" => |s| s.answers_503_with_retry_after = false,
            ],
        );
    }
}
