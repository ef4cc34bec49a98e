//! The `Idempotency-Key` request header: what a valid key is, and the background task that
//! forgets keys after their retention.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName};

use crate::store::CounterStore;

pub static HEADER: HeaderName = HeaderName::from_static("idempotency-key");

/// Longest key accepted; a UUID (36) fits with room for client prefixes.
pub const MAX_KEY_LEN: usize = 128;

/// A request's key, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn into_inner(self) -> String {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{}", self.message())]
    Malformed,
    #[error("{}", self.message())]
    Repeated,
}

impl KeyError {
    /// The `400` answer's text.
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => {
                "Idempotency-Key must be 1-128 visible ASCII characters (a UUID is ideal)"
            }
            Self::Repeated => "only one Idempotency-Key header is allowed",
        }
    }
}

/// The key a request carries, if any. Keys are compared byte for byte.
pub fn from_headers(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, KeyError> {
    let mut values = headers.get_all(&HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(KeyError::Repeated);
    }
    parse(value.as_bytes()).map(Some)
}

/// `1..=MAX_KEY_LEN` bytes, each a visible ASCII character (no spaces or controls).
pub fn parse(raw: &[u8]) -> Result<IdempotencyKey, KeyError> {
    let valid = !raw.is_empty()
        && raw.len() <= MAX_KEY_LEN
        && raw.iter().all(|b| (0x21..=0x7e).contains(b));
    if !valid {
        return Err(KeyError::Malformed);
    }
    Ok(IdempotencyKey(
        String::from_utf8(raw.to_vec()).expect("ASCII"),
    ))
}

/// Prunes keys older than `retention`, every `retention / 10` (at most hourly, at least every
/// second). A failure is logged and retried next time: pruning is housekeeping, never urgent.
pub fn spawn_pruner(
    store: Arc<dyn CounterStore>,
    retention: Duration,
) -> tokio::task::JoinHandle<()> {
    let every = (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match store.prune_keys(retention).await {
                Ok(0) => {}
                Ok(pruned) => {
                    tracing::info!(pruned, "forgot idempotency keys past their retention")
                }
                Err(error) => {
                    tracing::warn!(%error, "pruning idempotency keys failed; retrying later")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_and_other_visible_ascii() {
        assert!(parse(b"3f2b8c1e-9d4a-4f6b-8e2a-1c5d7e9f0a1b").is_ok());
        assert!(parse(b"x").is_ok());
        assert!(parse(&[b'k'; MAX_KEY_LEN]).is_ok());
    }

    #[test]
    fn refuses_empty_long_spaced_control_and_non_ascii_keys() {
        for bad in [
            &b""[..],
            &[b'k'; MAX_KEY_LEN + 1],
            b"has space",
            b"tab\there",
            b"caf\xc3\xa9",
            b"nul\0",
        ] {
            assert_eq!(parse(bad), Err(KeyError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn a_repeated_header_is_refused() {
        let mut headers = HeaderMap::new();
        headers.append(&HEADER, "a".parse().unwrap());
        headers.append(&HEADER, "b".parse().unwrap());
        assert_eq!(from_headers(&headers), Err(KeyError::Repeated));
        assert_eq!(from_headers(&HeaderMap::new()), Ok(None));
    }
}
