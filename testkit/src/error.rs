//! Why a piece of test tooling could not do its job. Each variant names the operation in words
//! a person acts on ("CREATE DATABASE x", "cannot start target/debug/counter-origin"); callers
//! that keep errors as text (the fault suite's reports) convert with `?` into `String`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file, socket or process operation failed.
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    /// PostgreSQL refused a connection or a statement.
    #[error("{what}: {cause}")]
    Postgres {
        what: String,
        cause: tokio_postgres::Error,
    },
    /// An HTTP exchange produced no answer HTTP/1.1 can frame.
    #[error("{0}")]
    Http(String),
    /// Something awaited did not happen in time (the last thing seen is in the text).
    #[error("{0}")]
    Timeout(String),
    /// A started process exited while it was expected to serve.
    #[error("{name} exited ({status}); see {}", log.display())]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
    },
    /// The environment lacks what the tests need (`TEST_DATABASE_URL`).
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub fn io(what: impl Into<String>, cause: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            cause,
        }
    }

    pub fn postgres(what: impl Into<String>, cause: tokio_postgres::Error) -> Self {
        Error::Postgres {
            what: what.into(),
            cause,
        }
    }
}

/// The fault suite reports errors as text.
impl From<Error> for String {
    fn from(error: Error) -> Self {
        error.to_string()
    }
}
