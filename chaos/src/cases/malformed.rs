//! A raw-socket corpus of malformed requests. Each one must get a correct `4xx` (or, where the
//! bytes are a valid request after all, its normal answer) or a closed connection — never a
//! `5xx`, a `2xx` for garbage, a hang or a panic — and the origin must keep serving: a normal
//! request on a new connection after every case, and nothing counted by any of them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Context;
use crate::report::{ms, Checks};
use testkit::origin::{self, OriginSpec};
use testkit::probe;
use testkit::response::parse_answer;

/// The origin's header-read timeout in this case: partial requests are cut off after it.
const HEADER_TIMEOUT_MS: u64 = 1000;
/// A case whose connection neither answers nor closes within this is a hang.
const HANG_AFTER: Duration = Duration::from_millis(HEADER_TIMEOUT_MS + 2000);

/// What a case may get back.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// Statuses that are correct answers (all 4xx unless the bytes are a valid request).
    pub statuses: &'static [u16],
    /// Answers to wait for before judging (pipelined requests get several).
    pub answers: usize,
    /// Closing without any answer is correct (the request cannot even be answered).
    pub may_close: bool,
    /// The bytes start an HTTP/2 connection: the answer is HTTP/2 frames, not HTTP/1.
    pub http2: bool,
    /// The connection must be closed after the answer (RFC 9112 §6.3 for ambiguous framing).
    pub must_close: bool,
}

const fn refused(statuses: &'static [u16]) -> Expect {
    Expect {
        statuses,
        answers: 1,
        may_close: true,
        http2: false,
        must_close: false,
    }
}

const fn answered(statuses: &'static [u16]) -> Expect {
    Expect {
        statuses,
        answers: 1,
        may_close: false,
        http2: false,
        must_close: false,
    }
}

pub struct Sample {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub expect: Expect,
}

fn sample(name: &'static str, bytes: impl Into<Vec<u8>>, expect: Expect) -> Sample {
    Sample {
        name,
        bytes: bytes.into(),
        expect,
    }
}

/// The corpus. Statuses follow RFC 9110/9112: 400 for what cannot be parsed, 431 for oversized
/// heads, 413 for oversized bodies, 404/405 for well-formed requests to nowhere.
pub fn corpus() -> Vec<Sample> {
    const BAD: &[u16] = &[400];
    const HEAD_TOO_BIG: &[u16] = &[431, 400];
    let get = |extra: &str| format!("GET /api/counter HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    let post = |extra: &str| format!("POST /api/counter HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    let mut garbage = Vec::with_capacity(4096);
    let mut state: u32 = 0x9e37_79b9;
    for _ in 0..4096 {
        // xorshift: the same "random" bytes on every run.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        garbage.push(state as u8);
    }
    let mut tls_hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ];
    tls_hello.extend_from_slice(&[0u8; 160]);
    vec![
        // Request lines.
        sample("not http", "THIS IS NOT HTTP\r\n\r\n", refused(BAD)),
        sample("empty lines only", "\r\n\r\n\r\n\r\n", refused(BAD)),
        sample("method only", "GET\r\n\r\n", refused(BAD)),
        sample("http/0.9 simple request", "GET /\r\n", refused(BAD)),
        sample(
            "http/0.9 version",
            "GET / HTTP/0.9\r\n\r\n",
            refused(&[400, 505]),
        ),
        sample(
            "unknown version",
            "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
            refused(&[400, 505]),
        ),
        sample(
            "http/2 version on http/1",
            "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            refused(&[400, 505]),
        ),
        sample(
            "extra token in request line",
            "GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
            refused(BAD),
        ),
        sample(
            "double space",
            "GET  /api/counter HTTP/1.1\r\nHost: x\r\n\r\n",
            refused(BAD),
        ),
        sample(
            "control byte in method",
            "G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
            refused(BAD),
        ),
        sample(
            "NUL in target",
            "GET /api\0/counter HTTP/1.1\r\nHost: x\r\n\r\n",
            refused(BAD),
        ),
        sample(
            "invalid UTF-8 in target",
            b"GET /\xff\xfe\xfd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            refused(&[400, 404]),
        ),
        sample(
            "target without a slash",
            "GET api/counter HTTP/1.1\r\nHost: x\r\n\r\n",
            refused(BAD),
        ),
        sample(
            "absurd method",
            format!(
                "{} /api/counter HTTP/1.1\r\nHost: x\r\n\r\n",
                "X".repeat(8000)
            ),
            refused(&[405, 400, 431]),
        ),
        sample(
            "unknown method on the API",
            "BREW /api/counter HTTP/1.1\r\nHost: x\r\n\r\n",
            answered(&[405]),
        ),
        sample(
            "DELETE on the API",
            "DELETE /api/counter HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            answered(&[405]),
        ),
        sample(
            "CONNECT",
            "CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: 127.0.0.1:5432\r\n\r\n",
            refused(&[400, 404, 405]),
        ),
        sample(
            "asterisk target on GET",
            "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
            refused(&[400, 404]),
        ),
        sample(
            "path traversal",
            "GET /assets/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
            answered(&[404]),
        ),
        sample(
            "encoded path traversal",
            "GET /assets/..%2f..%2fCargo.toml HTTP/1.1\r\nHost: x\r\n\r\n",
            answered(&[404]),
        ),
        sample(
            "huge target",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000)),
            refused(&[414, 431, 400]),
        ),
        // Headers.
        sample(
            "one huge header",
            get(&format!("X-Big: {}\r\n", "a".repeat(64 * 1024))),
            refused(HEAD_TOO_BIG),
        ),
        sample(
            "too many headers",
            get(&(0..200)
                .map(|i| format!("X-H{i}: v\r\n"))
                .collect::<String>()),
            refused(HEAD_TOO_BIG),
        ),
        sample(
            "huge header name",
            get(&format!("{}: v\r\n", "N".repeat(20_000))),
            refused(HEAD_TOO_BIG),
        ),
        sample("header without colon", get("NoColonHere\r\n"), refused(BAD)),
        sample("space before colon", get("Host : y\r\n"), refused(BAD)),
        sample("NUL in header value", get("X-A: a\0b\r\n"), refused(BAD)),
        sample(
            "obsolete line folding",
            get("X-A: a\r\n  folded\r\n"),
            refused(BAD),
        ),
        sample(
            "bare CR",
            "GET /api/counter HTTP/1.1\rHost: x\r\r",
            refused(BAD),
        ),
        sample("duplicate Host", get("Host: y\r\n"), refused(BAD)),
        sample(
            "no Host on HTTP/1.1",
            "GET /api/counter HTTP/1.1\r\n\r\n",
            refused(BAD),
        ),
        sample(
            "invalid UTF-8 in If-None-Match",
            [
                // The head without its blank line, then a header line of raw bytes.
                get("").strip_suffix("\r\n").unwrap_or_default().as_bytes(),
                b"If-None-Match: \"\xff\xfe\", W/\"\r\n\r\n",
            ]
            .concat(),
            answered(&[200]),
        ),
        // Bodies and framing (request smuggling shapes).
        sample(
            "conflicting Content-Length",
            post("Content-Length: 1\r\nContent-Length: 2\r\n") + "ab",
            refused(BAD),
        ),
        sample(
            "Content-Length not a number",
            post("Content-Length: abc\r\n"),
            refused(BAD),
        ),
        sample(
            "negative Content-Length",
            post("Content-Length: -1\r\n"),
            refused(BAD),
        ),
        sample(
            "Content-Length overflow",
            post("Content-Length: 99999999999999999999999\r\n"),
            refused(BAD),
        ),
        // Transfer-Encoding wins (RFC 9112 §6.3): the server may serve it but must close the
        // connection afterwards. A GET, so a served one counts nothing.
        sample(
            "Content-Length with Transfer-Encoding",
            get("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\n",
            Expect {
                must_close: true,
                ..refused(&[200, 400])
            },
        ),
        sample(
            "Transfer-Encoding not chunked last",
            post("Transfer-Encoding: chunked, gzip\r\n") + "0\r\n\r\n",
            refused(BAD),
        ),
        sample(
            "unknown Transfer-Encoding",
            post("Transfer-Encoding: xchunked\r\n"),
            refused(BAD),
        ),
        sample(
            "invalid chunk size",
            post("Transfer-Encoding: chunked\r\n") + "zz\r\nab\r\n0\r\n\r\n",
            refused(BAD),
        ),
        sample(
            "chunk size overflow",
            post("Transfer-Encoding: chunked\r\n") + "fffffffffffffffffffff\r\nab\r\n0\r\n\r\n",
            refused(&[400, 413]),
        ),
        sample(
            "declared body too large",
            post("Content-Length: 5000\r\n"),
            refused(&[413]),
        ),
        sample(
            "chunked body too large",
            post("Transfer-Encoding: chunked\r\n")
                + &format!("{:x}\r\n{}\r\n0\r\n\r\n", 4096, "y".repeat(4096)),
            refused(&[413]),
        ),
        // Idempotency keys: 1–128 visible ASCII characters, one header.
        sample(
            "Idempotency-Key too long",
            post(&format!(
                "Idempotency-Key: {}\r\nContent-Length: 0\r\n",
                "k".repeat(129)
            )),
            answered(&[400]),
        ),
        sample(
            "Idempotency-Key with a space",
            post("Idempotency-Key: a b\r\nContent-Length: 0\r\n"),
            answered(&[400]),
        ),
        sample(
            "Idempotency-Key not ASCII",
            [
                post("").strip_suffix("\r\n").unwrap_or_default().as_bytes(),
                b"Idempotency-Key: cl\xc3\xa9\r\nContent-Length: 0\r\n\r\n",
            ]
            .concat(),
            answered(&[400]),
        ),
        sample(
            "Idempotency-Key empty",
            post("Idempotency-Key:\r\nContent-Length: 0\r\n"),
            answered(&[400]),
        ),
        sample(
            "Idempotency-Key twice",
            post("Idempotency-Key: a\r\nIdempotency-Key: b\r\nContent-Length: 0\r\n"),
            answered(&[400]),
        ),
        // Not HTTP/1 at all, and pipelines.
        sample("binary garbage", garbage, refused(BAD)),
        sample(
            "TLS ClientHello on the plaintext port",
            tls_hello,
            refused(BAD),
        ),
        sample(
            "HTTP/2 preface then garbage",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
            Expect {
                http2: true,
                ..refused(&[])
            },
        ),
        sample(
            "pipelined request then garbage",
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE GARBAGE\r\n\r\n",
            Expect {
                answers: 2,
                ..answered(&[200, 400])
            },
        ),
        sample(
            "pipelined request then a truncated one",
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTT",
            Expect {
                answers: 2,
                may_close: true,
                ..answered(&[200, 400, 408])
            },
        ),
        sample(
            "truncated head",
            "GET /api/counter HTTP/1.1\r\nHost: x\r\nX-Unfinished: ",
            refused(&[400, 408]),
        ),
    ]
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
pub fn verdict(expect: &Expect, observed: &Observed) -> Result<(), String> {
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
async fn exchange(addr: SocketAddr, bytes: &[u8], expect: &Expect) -> Observed {
    let started = Instant::now();
    let mut observed = Observed::default();
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        observed.closed = true;
        return observed;
    };
    // The server may close before reading everything (431, 413): a failed write is not a failure.
    let _ = stream.write_all(bytes).await;
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
        if (statuses.len() >= expect.answers && !expect.must_close) || other > 0 && !expect.http2 {
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
    pub name: &'static str,
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

pub async fn run(ctx: &Context, name: &str) -> Result<(Value, Checks), String> {
    let dir = ctx.case_dir(name)?;
    let data = dir.join("embedded-data");
    std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    let data = data.display().to_string();
    let timeout = HEADER_TIMEOUT_MS.to_string();
    let spec = OriginSpec::for_tests(
        &ctx.origin_binary,
        "origin",
        &dir,
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
            .ok_or(format!("GET /api/counter: {}", answer.body))
    };
    let counter_before = counter(origin.addr()).await?;
    let mut results = Vec::new();
    for sample in corpus() {
        let observed = exchange(origin.addr(), &sample.bytes, &sample.expect).await;
        let problem = verdict(&sample.expect, &observed).err();
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
    let checks = judge(&figures);
    Ok((
        serde_json::to_value(&figures).expect("figures serialise"),
        checks,
    ))
}

pub fn judge(f: &Figures) -> Checks {
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
        .map(|r| r.name)
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
    checks.expect("no panic", f.panics.is_empty(), format!("{:?}", f.panics));
    checks
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

    #[test]
    fn the_verdict_accepts_correct_reactions_only() {
        let bad = refused(&[400]);
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
        let valid = answered(&[405]);
        assert!(
            verdict(&valid, &observed(&[], true)).is_err(),
            "a valid request must be answered"
        );
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
    fn the_corpus_is_a_few_dozen_distinct_cases() {
        let corpus = corpus();
        assert!(corpus.len() >= 40, "{}", corpus.len());
        let mut names: Vec<_> = corpus.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), corpus.len(), "names are unique");
    }
}
