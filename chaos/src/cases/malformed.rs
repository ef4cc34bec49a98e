//! A raw-socket corpus of malformed requests. Each one must get a correct `4xx` (or, where the
//! bytes are a valid request after all, its normal answer) or a closed connection — never a
//! `5xx`, a `2xx` for garbage, a hang or a panic — and the origin must keep serving: a normal
//! request on a new connection after every case, and nothing counted by any of them.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Env, FaultCase};
use crate::report::{ms, Checks};
use crate::Error;
use testkit::origin;
use testkit::probe;
use testkit::response::parse_answer;

/// The origin's header-read timeout in this case: partial requests are cut off after it.
const HEADER_TIMEOUT_MS: u64 = 1000;
/// A case whose connection neither answers nor closes within this is a hang.
const HANG_AFTER: Duration = Duration::from_millis(HEADER_TIMEOUT_MS + 2000);

/// The corpus: one file of raw bytes per sample, and a table of what each may get back. Statuses
/// follow RFC 9110/9112: 400 for what cannot be parsed, 431 for oversized heads, 413 for oversized
/// bodies, 404/405 for well-formed requests to nowhere.
const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/malformed");
const EXPECTATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/malformed.json");

/// One sample and what it may get back: a row of the expectations table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub name: String,
    /// Its raw bytes, in the corpus directory.
    pub file: String,
    /// Why the expectation is what it is, where the statuses alone do not say.
    #[serde(default)]
    pub why: Option<String>,
    /// Statuses that are correct answers (all 4xx unless the bytes are a valid request).
    pub statuses: Vec<u16>,
    /// Answers to wait for before judging (pipelined requests get several).
    #[serde(default = "one")]
    pub answers: usize,
    /// Closing without any answer is correct (the request cannot even be answered).
    #[serde(default)]
    pub may_close: bool,
    /// The connection must be closed after the answer (RFC 9112 §6.3 for ambiguous framing).
    #[serde(default)]
    pub must_close: bool,
    /// The bytes start an HTTP/2 connection: the answer is HTTP/2 frames, not HTTP/1.
    #[serde(default)]
    pub http2: bool,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

fn one() -> usize {
    1
}

/// The expectations table, each sample with its bytes.
pub fn corpus() -> Result<Vec<Sample>, Error> {
    let table = std::fs::read_to_string(EXPECTATIONS).map_err(|e| Error::io(EXPECTATIONS, e))?;
    let mut samples: Vec<Sample> =
        serde_json::from_str(&table).map_err(|e| Error::Setup(format!("{EXPECTATIONS}: {e}")))?;
    for sample in &mut samples {
        let path = Path::new(CORPUS_DIR).join(&sample.file);
        sample.bytes = std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(samples)
}

/// What came back on one connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Observed {
    pub statuses: Vec<u16>,
    pub closed: bool,
    /// Bytes that are not an HTTP/1 answer (e.g. HTTP/2 frames).
    pub other_bytes: usize,
    pub hung: bool,
    pub ms: f64,
}

/// Whether `observed` is a correct reaction to a sample expecting `expect`.
pub fn verdict(expect: &Sample, observed: &Observed) -> Result<(), String> {
    if observed.hung {
        return Err(format!(
            "neither answered nor closed within {HANG_AFTER:?} ({:?} so far)",
            observed.statuses
        ));
    }
    if observed.other_bytes > 0 && !expect.http2 {
        return Err(format!(
            "{} bytes that are not an HTTP/1 answer",
            observed.other_bytes
        ));
    }
    if let Some(bad) = observed
        .statuses
        .iter()
        .find(|s| !expect.statuses.contains(s))
    {
        return Err(format!(
            "answered {bad}, expected one of {:?}",
            expect.statuses
        ));
    }
    if observed.statuses.is_empty() && !(expect.may_close && observed.closed) {
        return Err("no answer".into());
    }
    if expect.must_close && !observed.closed {
        return Err("the connection stayed open after an ambiguous request".into());
    }
    Ok(())
}

/// Writes `bytes`, then reads answers until `expect.answers` arrived, the server closed, or the
/// hang bound passed.
async fn exchange(addr: SocketAddr, sample: &Sample) -> Observed {
    let started = Instant::now();
    let mut observed = Observed::default();
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        observed.closed = true;
        return observed;
    };
    // The server may close before reading everything (431, 413): a failed write is not a failure.
    let _ = stream.write_all(&sample.bytes).await;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + HANG_AFTER;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => {
                observed.hung = true;
                break;
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                observed.closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        let (statuses, other) = answers(&buf);
        if (statuses.len() >= sample.answers && !sample.must_close) || other > 0 && !sample.http2 {
            break;
        }
    }
    let (statuses, other) = answers(&buf);
    observed.statuses = statuses;
    observed.other_bytes = other;
    observed.ms = ms(started.elapsed());
    observed
}

/// The statuses of the complete HTTP/1 answers at the start of `buf`, and how many bytes were
/// neither those answers nor the start of one. An answer without a length runs to the end of
/// what was read (HTTP/1.1 ends it at the close).
pub fn answers(buf: &[u8]) -> (Vec<u16>, usize) {
    // Framing compacts chunked bodies in place: work on a copy, `exchange` reads on.
    let mut buf = buf.to_vec();
    let mut statuses = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        match parse_answer(&mut buf[at..], true) {
            Ok(Some(frame)) => {
                statuses.push(frame.status);
                at += frame.consumed;
            }
            Ok(None) => break, // still arriving
            Err(_) => return (statuses, buf.len() - at),
        }
    }
    (statuses, 0)
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub observed: Observed,
    pub problem: Option<String>,
    pub still_serving: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub samples: usize,
    pub answered_4xx: usize,
    pub closed_without_answer: usize,
    pub answered_normally: usize,
    pub failures: Vec<CaseResult>,
    pub counter_before: i64,
    pub counter_after: i64,
    pub panics: Vec<String>,
    pub results: Vec<CaseResult>,
}

pub struct Malformed;

impl FaultCase for Malformed {
    type Figures = Figures;

    async fn run(&self, env: &Env<'_>) -> Result<Figures, Error> {
        let data = env.data_dir("embedded-data")?;
        let timeout = HEADER_TIMEOUT_MS.to_string();
        let spec = env.origin(
            "origin",
            &[
                ("DATA_DIR", &data),
                ("HEADER_READ_TIMEOUT_MS", &timeout),
                // A partial head pipelined behind a complete request sits in hyper's read buffer,
                // where the origin's watchdog cannot see it: it is bounded by the idle timeout, like
                // any idle keep-alive connection (no more than a client gets by idling). Short here
                // so that bound is observed within the case's hang limit.
                ("KEEPALIVE_IDLE_TIMEOUT_S", "1"),
                ("READ_CACHE_TTL_MS", "0"),
                ("ACCESS_LOG_EVERY", "1"),
                ("LOG_LEVEL", "debug"),
            ],
        )?;
        let origin = spec.start_ready().await?;
        let counter = |addr| async move {
            let answer =
                probe::request(addr, "GET", "/api/counter", &[], Duration::from_secs(5)).await?;
            testkit::client::parse_value(answer.body.as_bytes())
                .ok_or_else(|| Error::Answer(format!("GET /api/counter: {}", answer.body)))
        };
        let counter_before = counter(origin.addr()).await?;
        let mut results = Vec::new();
        for sample in corpus()? {
            let observed = exchange(origin.addr(), &sample).await;
            let problem = verdict(&sample, &observed).err();
            let still_serving = matches!(
                probe::request(origin.addr(), "GET", "/healthz", &[], Duration::from_secs(5)).await,
                Ok(answer) if answer.status == 200
            );
            results.push(CaseResult {
                name: sample.name,
                observed,
                problem,
                still_serving,
            });
        }
        let counter_after = counter(origin.addr()).await?;
        let _ = origin.terminate(Duration::from_secs(30)).await;
        let figures = Figures {
            samples: results.len(),
            answered_4xx: results
                .iter()
                .filter(|r| {
                    !r.observed.statuses.is_empty()
                        && r.observed.statuses.iter().all(|s| (400..500).contains(s))
                })
                .count(),
            closed_without_answer: results
                .iter()
                .filter(|r| r.observed.statuses.is_empty())
                .count(),
            answered_normally: results
                .iter()
                .filter(|r| r.observed.statuses.iter().any(|s| (200..400).contains(s)))
                .count(),
            failures: results
                .iter()
                .filter(|r| r.problem.is_some() || !r.still_serving)
                .cloned()
                .collect(),
            counter_before,
            counter_after,
            panics: origin::panics(&spec),
            results,
        };
        Ok(figures)
    }

    fn judge(f: &Figures) -> Checks {
        let mut checks = Checks::default();
        let wrong: Vec<String> = f
            .results
            .iter()
            .filter_map(|r| r.problem.as_ref().map(|p| format!("{}: {p}", r.name)))
            .collect();
        checks.expect(
        "each malformed request gets a correct 4xx or a closed connection",
        f.samples > 0 && wrong.is_empty(),
        format!(
            "{} samples: {} answered 4xx, {} closed without an answer, {} valid after all and served; wrong: {wrong:?}",
            f.samples, f.answered_4xx, f.closed_without_answer, f.answered_normally
        ),
    );
        let down: Vec<&str> = f
            .results
            .iter()
            .filter(|r| !r.still_serving)
            .map(|r| r.name.as_str())
            .collect();
        checks.expect(
            "the origin keeps serving after every sample",
            down.is_empty(),
            format!("GET /healthz failed after {down:?}"),
        );
        checks.expect(
            "nothing counted",
            f.counter_after == f.counter_before,
            format!("counter {} → {}", f.counter_before, f.counter_after),
        );
        checks.no_panic("no panic", &f.panics);
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(statuses: &[u16], closed: bool) -> Observed {
        Observed {
            statuses: statuses.to_vec(),
            closed,
            ..Observed::default()
        }
    }

    fn expect(statuses: &[u16], may_close: bool) -> Sample {
        Sample {
            statuses: statuses.to_vec(),
            answers: 1,
            may_close,
            ..Sample::default()
        }
    }

    #[test]
    fn the_verdict_accepts_correct_reactions_only() {
        let bad = expect(&[400], true);
        assert!(verdict(&bad, &observed(&[400], true)).is_ok());
        assert!(
            verdict(&bad, &observed(&[], true)).is_ok(),
            "closing is a correct refusal"
        );
        assert!(
            verdict(&bad, &observed(&[200], true)).is_err(),
            "garbage served"
        );
        assert!(
            verdict(&bad, &observed(&[500], true)).is_err(),
            "a 5xx for bad input"
        );
        assert!(verdict(
            &bad,
            &Observed {
                hung: true,
                ..Observed::default()
            }
        )
        .is_err());
        assert!(verdict(
            &bad,
            &Observed {
                other_bytes: 9,
                closed: true,
                ..Observed::default()
            }
        )
        .is_err());
        let valid = expect(&[405], false);
        assert!(
            verdict(&valid, &observed(&[], true)).is_err(),
            "a valid request must be answered"
        );
        let ambiguous = Sample {
            must_close: true,
            ..expect(&[200, 400], true)
        };
        assert!(
            verdict(&ambiguous, &observed(&[200], false)).is_err(),
            "ambiguous framing served on a connection kept open"
        );
        assert!(verdict(&ambiguous, &observed(&[200], true)).is_ok());
    }

    #[test]
    fn splits_pipelined_answers_and_spots_non_http_bytes() {
        let two = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(answers(two), (vec![200, 400], 0));
        assert_eq!(
            answers(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nok"),
            (vec![], 0),
            "body incomplete"
        );
        assert_eq!(answers(b"HTTP/1.1 2"), (vec![], 0), "head incomplete");
        assert_eq!(answers(b"\x00\x00\x08\x07\x00").1, 5, "HTTP/2 GOAWAY frame");
    }

    #[test]
    fn every_sample_has_its_bytes_and_every_file_a_row() {
        let corpus = corpus().expect("the corpus loads");
        assert!(corpus.len() >= 40, "{}", corpus.len());
        assert!(corpus
            .iter()
            .all(|s| !s.bytes.is_empty() && (s.http2 || !s.statuses.is_empty())));
        let mut names: Vec<_> = corpus.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), corpus.len(), "names are unique");
        let mut files: Vec<String> = std::fs::read_dir(CORPUS_DIR)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| !f.starts_with('.'))
            .collect();
        files.sort_unstable();
        let mut rows: Vec<String> = corpus.iter().map(|s| s.file.clone()).collect();
        rows.sort_unstable();
        assert_eq!(files, rows, "one row per file, one file per row");
    }
}
