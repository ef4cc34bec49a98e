//! Why a case could not reach a verdict. A broken promise is not an error but a failed check;
//! these are the setups that did not happen, and they fail the case all the same.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// The shared test tooling failed: starting an origin, a probe, a fresh database.
    Testkit(testkit::Error),
    /// A file or process operation of the case itself.
    Io { what: String, cause: std::io::Error },
    /// The machine lacks what the case needs (`TEST_DATABASE_URL`, root, file descriptors).
    Setup(String),
    /// A tool the case drives failed or refused its input (pg_ctl, HAProxy, slowhttptest,
    /// cargo fuzz).
    Tool(String),
    /// What the case waits for did not happen within its bound.
    Timeout(String),
    /// The origin answered a request the case depends on (a sentinel POST) wrongly.
    Answer(String),
}

impl Error {
    pub fn io(what: impl fmt::Display, cause: std::io::Error) -> Self {
        Error::Io {
            what: what.to_string(),
            cause,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Testkit(e) => e.fmt(f),
            Error::Io { what, cause } => write!(f, "{what}: {cause}"),
            Error::Setup(s) | Error::Tool(s) | Error::Timeout(s) | Error::Answer(s) => {
                f.write_str(s)
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Testkit(e) => Some(e),
            Error::Io { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

impl From<testkit::Error> for Error {
    fn from(error: testkit::Error) -> Self {
        Error::Testkit(error)
    }
}
