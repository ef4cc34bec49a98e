//! RDS IAM authentication (`DATABASE_AUTH=iam`): each new connection's password is an auth token,
//! a SigV4-presigned `rds-db:connect` URL signed with the pod's AWS credentials, as the AWS SDKs'
//! RDS token generators make it (aws-sdk-rds, botocore's `generate_db_auth_token`).
//!
//! Signing is a few HMACs over cached credentials: nothing touches the network per connection,
//! let alone per request. A background task fetches credentials from the SDK's default chain (EKS
//! Pod Identity, web identity, environment) and fetches them again ahead of their expiry; a new
//! connection waits for usable credentials only as long as the pool's create timeout
//! (`DATABASE_CONNECT_TIMEOUT_MS`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::sync::watch;

use crate::config::{AwsCredentials, IamAuth};

/// How long a token is valid (RDS accepts at most 15 minutes).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// Credentials are fetched again this long before they expire, so a connection never waits for them.
const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
/// Credentials without an expiry (static keys) are still re-read this often.
const REFRESH_EVERY: Duration = Duration::from_secs(15 * 60);
/// Retry pace after a failed fetch: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_LAST: Duration = Duration::from_secs(30);

/// An RDS auth token. It is a password: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(String);

impl AuthToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(** redacted **)")
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("signing the RDS auth token: {0}")]
    Signing(String),
}

/// What a token is for: the endpoint and user of the connection, the region of the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScope {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub region: String,
}

/// Query values are encoded as SigV4 encodes them (and as botocore does): all but `A-Za-z0-9-_.~`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl TokenScope {
    /// The token: `host:port/?Action=connect&DBUser=…&X-Amz-…`, presigned for `rds-db` at `time`.
    pub fn sign(
        &self,
        credentials: &Credentials,
        time: SystemTime,
    ) -> Result<AuthToken, TokenError> {
        let failed = |e: &dyn std::error::Error| TokenError::Signing(e.to_string());
        let identity = credentials.clone().into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(TOKEN_LIFETIME);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("rds-db")
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let query = format!(
            "Action=connect&DBUser={}",
            utf8_percent_encode(&self.user, QUERY_VALUE)
        );
        let url = format!("https://{}:{}/?{query}", self.host, self.port);
        let request =
            SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
                .map_err(|e| failed(&e))?;
        let (instructions, _signature) =
            sign(request, &params).map_err(|e| failed(&e))?.into_parts();
        let mut token = format!("{}:{}/?{query}", self.host, self.port);
        // The signature last, as botocore and the other SDKs place it (order does not matter to
        // RDS, but then tokens compare equal as text).
        let (signature, rest): (Vec<_>, Vec<_>) = instructions
            .params()
            .iter()
            .partition(|(name, _)| *name == "X-Amz-Signature");
        for (name, value) in rest.into_iter().chain(signature) {
            token.push('&');
            token.push_str(name);
            token.push('=');
            token.extend(utf8_percent_encode(value, QUERY_VALUE));
        }
        Ok(AuthToken(token))
    }
}

/// Signs tokens for new connections from credentials kept fresh in the background.
#[derive(Clone)]
pub struct TokenSource {
    scope: TokenScope,
    credentials: watch::Receiver<Option<Credentials>>,
    /// `Some` only for [`AwsCredentials::Fixed`].
    fixed_time: Option<SystemTime>,
}

impl TokenSource {
    /// Starts fetching credentials (in a task that ends when the last clone of the source is
    /// dropped). Must be called inside the tokio runtime.
    pub fn start(scope: TokenScope, auth: &IamAuth) -> Self {
        match &auth.credentials {
            AwsCredentials::Fixed {
                credentials,
                signing_time,
            } => {
                let (_, receiver) = watch::channel(Some(credentials.clone()));
                Self {
                    scope,
                    credentials: receiver,
                    fixed_time: Some(*signing_time),
                }
            }
            AwsCredentials::DefaultChain => {
                let (sender, receiver) = watch::channel(None);
                let region = auth.region.clone();
                tokio::spawn(async move {
                    let sdk = super::aws::sdk_config(&region).await;
                    match sdk.credentials_provider() {
                        Some(provider) => keep_fresh(provider, sender).await,
                        None => tracing::error!(
                            "RDS IAM auth: the AWS SDK found no credentials provider"
                        ),
                    }
                });
                Self {
                    scope,
                    credentials: receiver,
                    fixed_time: None,
                }
            }
        }
    }

    pub fn scope(&self) -> &TokenScope {
        &self.scope
    }

    /// A token for a connection made now. Waits while no unexpired credentials are at hand (only
    /// before the first fetch, or when refreshing has failed past their expiry); the caller bounds
    /// the wait.
    pub async fn token(&self) -> Result<AuthToken, TokenError> {
        let now = || self.fixed_time.unwrap_or_else(SystemTime::now);
        let mut credentials = self.credentials.clone();
        let usable = credentials
            .wait_for(|c| {
                c.as_ref()
                    .is_some_and(|c| c.expiry().is_none_or(|e| e > now()))
            })
            .await
            .map_err(|_| TokenError::Signing("the credentials task ended".into()))?
            .clone()
            .expect("waited for Some");
        self.scope.sign(&usable, now())
    }
}

/// Fetches credentials from the default chain, then again `REFRESH_AHEAD` before they expire.
/// A failure is logged once (and its recovery), then retried with backoff while the last good
/// credentials stay in use until they expire. So are credentials that arrive already expired or
/// expiring within `REFRESH_AHEAD` (a stale provider, or this machine's clock ahead of AWS's: the
/// two look the same from here), which would otherwise leave connections waiting with no log line.
async fn keep_fresh(provider: impl ProvideCredentials, sender: watch::Sender<Option<Credentials>>) {
    let mut retry = RETRY_FIRST;
    let mut failing = false;
    loop {
        let fetched = provider.provide_credentials().await;
        let now = SystemTime::now();
        // Time left on credentials that are not good for the whole refresh margin.
        let short = fetched.as_ref().ok().and_then(|c| {
            let expiry = c.expiry()?;
            match expiry.duration_since(now) {
                Ok(left) if left > REFRESH_AHEAD => None,
                Ok(left) => Some(format!("expire in {}s", left.as_secs())),
                Err(e) => Some(format!("expired {}s ago", e.duration().as_secs())),
            }
        });
        let wait = match (fetched, short) {
            (Ok(credentials), None) => {
                if failing {
                    tracing::info!("RDS IAM auth: AWS credentials available again");
                    failing = false;
                }
                retry = RETRY_FIRST;
                let wait = credentials
                    .expiry()
                    .and_then(|expiry| expiry.duration_since(now).ok())
                    .map_or(REFRESH_EVERY, |left| {
                        left.saturating_sub(REFRESH_AHEAD).max(RETRY_FIRST)
                    });
                sender.send_replace(Some(credentials));
                wait
            }
            (Ok(credentials), Some(short)) => {
                if !failing {
                    tracing::error!(
                        "RDS IAM auth: the AWS credentials just fetched {short}, within the {}s \
                         refresh margin: is this machine's clock right? New database connections \
                         wait once they have expired; fetching again",
                        REFRESH_AHEAD.as_secs()
                    );
                    failing = true;
                }
                // Still usable until they expire, if they have not.
                sender.send_replace(Some(credentials));
                let wait = retry;
                retry = (retry * 2).min(RETRY_LAST);
                wait
            }
            (Err(error), _) => {
                if !failing {
                    tracing::error!(
                        error = %crate::store::describe(&error),
                        "RDS IAM auth: cannot get AWS credentials; new database connections wait for them"
                    );
                    failing = true;
                }
                let wait = retry;
                retry = (retry * 2).min(RETRY_LAST);
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = sender.closed() => return,
        }
    }
}

/// The deadpool connector for IAM mode: a fresh token as the password of every new connection.
pub(crate) struct IamConnect<T> {
    pub tls: T,
    pub tokens: TokenSource,
}

type PgConnectResult =
    Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>;

impl<T> deadpool_postgres::Connect for IamConnect<T>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
{
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> Pin<Box<dyn Future<Output = PgConnectResult> + Send + '_>> {
        let mut pg_config = pg_config.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            // Without credentials this waits; the pool's create timeout ends the attempt and the
            // credentials task has logged why.
            let token = match self.tokens.token().await {
                Ok(token) => token,
                Err(error) => {
                    tracing::error!(%error, "RDS IAM auth");
                    std::future::pending().await
                }
            };
            pg_config.password(token.expose());
            let (client, connection) = pg_config.connect(tls).await?;
            let task = tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::warn!(%error, "database connection ended");
                }
            });
            Ok((client, task))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> TokenScope {
        TokenScope {
            host: "db.example.eu-west-1.rds.amazonaws.com".into(),
            port: 5432,
            user: "counter_app".into(),
            region: "eu-west-1".into(),
        }
    }

    #[test]
    fn a_token_is_a_presigned_connect_url_for_the_user_valid_fifteen_minutes() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let token = scope().sign(&credentials, time).unwrap();
        let text = token.expose();
        assert!(
            text.starts_with(
                "db.example.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=counter_app&"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "X-Amz-Credential=AKIDEXAMPLE%2F20231114%2Feu-west-1%2Frds-db%2Faws4_request"
            ),
            "{text}"
        );
        assert!(text.contains("X-Amz-Expires=900"), "{text}");
        assert!(!format!("{token:?}").contains("AKID"), "Debug must redact");
        let other_region = TokenScope {
            region: "us-east-1".into(),
            ..scope()
        };
        assert_ne!(other_region.sign(&credentials, time).unwrap(), token);
    }

    /// Answers each fetch with the next scripted result, and counts the fetches.
    #[derive(Debug)]
    struct Scripted {
        answers: std::sync::Mutex<std::collections::VecDeque<Result<Credentials, String>>>,
        calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl ProvideCredentials for Scripted {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let next = self
                .answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("a scripted answer");
            aws_credential_types::provider::future::ProvideCredentials::ready(
                next.map_err(
                    aws_credential_types::provider::error::CredentialsError::provider_error,
                ),
            )
        }
    }

    fn expiring_in(key: &str, left: Duration) -> Credentials {
        Credentials::new(key, "secret", None, Some(SystemTime::now() + left), "test")
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_are_fetched_again_ahead_of_expiry_and_a_failure_keeps_the_last_good_ones()
    {
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let provider = Scripted {
            answers: std::sync::Mutex::new(
                [
                    Ok(expiring_in("FIRST", Duration::from_secs(6 * 60))),
                    Err("agent unreachable".to_string()),
                    Ok(expiring_in("SECOND", Duration::from_secs(60 * 60))),
                ]
                .into(),
            ),
            calls: std::sync::Arc::clone(&fetches),
        };
        let calls = || fetches.load(std::sync::atomic::Ordering::SeqCst);
        let (sender, mut receiver) = watch::channel(None);
        tokio::spawn(keep_fresh(provider, sender));
        let key = |r: &watch::Receiver<Option<Credentials>>| {
            r.borrow().as_ref().map(|c| c.access_key_id().to_string())
        };
        receiver.wait_for(Option::is_some).await.unwrap();
        assert_eq!(key(&receiver).as_deref(), Some("FIRST"));
        // Six minutes left, refreshed five ahead: the next fetch comes after one minute.
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(calls(), 1);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(calls(), 2, "fetched again ahead of expiry");
        assert_eq!(
            key(&receiver).as_deref(),
            Some("FIRST"),
            "still valid: kept"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(calls(), 3, "retried after RETRY_FIRST");
        assert_eq!(key(&receiver).as_deref(), Some("SECOND"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_waits_for_unexpired_credentials_as_long_as_the_caller_allows() {
        let expired = Credentials::new(
            "OLD",
            "secret",
            None,
            Some(SystemTime::now() - Duration::from_secs(1)),
            "test",
        );
        let (sender, receiver) = watch::channel(Some(expired));
        let source = TokenSource {
            scope: scope(),
            credentials: receiver,
            fixed_time: None,
        };
        assert!(
            tokio::time::timeout(Duration::from_secs(3), source.token())
                .await
                .is_err(),
            "expired credentials never sign a token"
        );
        sender.send_replace(Some(expiring_in("NEW", Duration::from_secs(3600))));
        let token = tokio::time::timeout(Duration::from_secs(3), source.token())
            .await
            .expect("fresh credentials sign at once")
            .unwrap();
        assert!(token.expose().contains("X-Amz-Credential=NEW%2F"));
    }

    #[tokio::test]
    async fn fixed_credentials_sign_at_the_fixed_time() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("session".into()),
            None,
            "test",
        );
        let signing_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let source = TokenSource::start(
            scope(),
            &IamAuth {
                region: "eu-west-1".into(),
                credentials: AwsCredentials::Fixed {
                    credentials: credentials.clone(),
                    signing_time,
                },
            },
        );
        let token = source.token().await.unwrap();
        assert_eq!(token, scope().sign(&credentials, signing_time).unwrap());
        assert!(token.expose().contains("X-Amz-Security-Token=session"));
    }

    /// Collects what the tests' subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self, containing: &str) -> usize {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .lines()
                .filter(|l| l.contains(containing))
                .count()
        }
    }

    /// Credentials that come already expired, or expiring inside the refresh margin (what a clock
    /// running ahead looks like), are logged once per incident, not silently retried.
    #[tokio::test(start_paused = true)]
    async fn credentials_expired_or_expiring_when_fetched_are_logged_once_per_incident() {
        let log = Captured::default();
        let writer = log.clone();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        );
        let expired = Credentials::new(
            "OLD",
            "secret",
            None,
            Some(SystemTime::now() - Duration::from_secs(30)),
            "test",
        );
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let provider = Scripted {
            answers: std::sync::Mutex::new(
                [
                    Ok(expired.clone()),
                    Ok(expired),
                    Ok(expiring_in("GOOD", Duration::from_secs(3600))),
                    Ok(expiring_in("SHORT", Duration::from_secs(60))),
                    Ok(expiring_in("SHORT", Duration::from_secs(50))),
                    Ok(expiring_in("GOOD", Duration::from_secs(3600))),
                ]
                .into(),
            ),
            calls: std::sync::Arc::clone(&fetches),
        };
        let calls = || fetches.load(std::sync::atomic::Ordering::SeqCst);
        let (sender, _receiver) = watch::channel(None);
        tokio::spawn(keep_fresh(provider, sender));
        let until = |n: usize| async move {
            while calls() < n {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        until(2).await;
        assert_eq!(
            log.lines("expired 30s ago"),
            1,
            "logged once, not per retry"
        );
        until(3).await;
        // The fetch is counted before its answer is handled: wait for the line itself (time is
        // paused, so each sleep returns at once; the bound only stops a test that would hang).
        let logged = |text: &'static str, n: usize| {
            let log = log.clone();
            async move {
                for _ in 0..1_000 {
                    if log.lines(text) >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        };
        logged("available again", 1).await;
        assert_eq!(log.lines("available again"), 1);
        until(5).await;
        assert_eq!(log.lines("credentials just fetched expire in"), 1);
        assert_eq!(log.lines("refresh margin"), 2, "one line per incident");
        until(6).await;
        logged("available again", 2).await;
        assert_eq!(log.lines("available again"), 2);
    }
}
