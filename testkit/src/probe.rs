//! One-shot HTTP/1.1 exchanges over a fresh connection (`Connection: close`): readiness waits,
//! metric scrapes, the "still serving?" request after a fault, error bodies to scan for secrets.
//! Unlike the load client these keep every header and accept any framing, the close included;
//! both frame answers with [`crate::response`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::response::{self, parse_answer, parse_head_answer};
use crate::Error;

/// Largest answer a probe reads; the origin's answers are a few KB (the page) at most.
const MAX_ANSWER: usize = 4 * 1024 * 1024;
/// Bound on one readiness poll, so a hung server is retried rather than waited on.
const POLL_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between readiness polls: a poll is a real request, this bounds their rate.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A whole answer, as text.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Everything a client sees, for secret scans.
    pub fn text(&self) -> String {
        let mut text = format!("{}\n", self.status);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\n"));
        }
        text.push_str(&self.body);
        text
    }
}

/// Sends one request (no body; `Content-Length: 0` on a POST) and reads the whole answer,
/// within `timeout`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Answer, Error> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::io(format!("connect {addr}"), e))?;
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| Error::io(format!("write to {addr}"), e))?;
        read_answer(&mut stream, method == "HEAD").await
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        Error::Timeout(format!(
            "{method} {path}: no complete answer within {timeout:?}"
        ))
    })?
}

/// Reads until one answer is complete (by its length, its last chunk or the close; by its head
/// alone for a `HEAD` request).
async fn read_answer(stream: &mut TcpStream, head: bool) -> Result<Answer, Error> {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        if buf.len() == MAX_ANSWER {
            return Err(Error::Http(format!(
                "answer larger than {MAX_ANSWER} bytes"
            )));
        }
        let read = (&mut *stream)
            .take((MAX_ANSWER - buf.len()) as u64)
            .read_buf(&mut buf)
            .await
            .map_err(|e| Error::io("read", e))?;
        let at_eof = read == 0;
        let parsed = if head {
            parse_head_answer(&mut buf)
        } else {
            parse_answer(&mut buf, at_eof)
        };
        match parsed {
            Ok(Some(frame)) => {
                return Ok(Answer {
                    status: frame.status,
                    headers: response::headers(&buf, &frame),
                    body: String::from_utf8_lossy(&buf[frame.body]).into_owned(),
                })
            }
            Ok(None) | Err(response::ParseError::UntilClose) if !at_eof => {}
            Ok(None) if buf.is_empty() => {
                return Err(Error::Http("connection closed without an answer".into()))
            }
            Ok(None) => return Err(Error::Http("truncated answer".into())),
            Err(_) => {
                return Err(Error::Http(format!(
                    "not an HTTP/1 answer: {:?}",
                    String::from_utf8_lossy(&buf[..buf.len().min(64)])
                )))
            }
        }
    }
}

/// Polls `GET path` until it answers `status`, at most `timeout`; returns how long it took.
pub async fn wait_for_status(
    addr: SocketAddr,
    path: &str,
    status: u16,
    timeout: Duration,
) -> Result<Duration, Error> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < timeout {
        match request(addr, "GET", path, &[], POLL_TIMEOUT).await {
            Ok(answer) if answer.status == status => return Ok(started.elapsed()),
            Ok(answer) => last = format!("{} {}", answer.status, answer.body.trim()),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    Err(Error::Timeout(format!(
        "GET {path} on {addr} did not answer {status} within {timeout:?} (last: {last})"
    )))
}

/// The Prometheus text of a metrics listener.
pub async fn scrape(metrics_addr: SocketAddr) -> Result<String, Error> {
    let answer = request(metrics_addr, "GET", "/metrics", &[], Duration::from_secs(5)).await?;
    if answer.status != 200 {
        return Err(Error::Http(format!(
            "GET /metrics on {metrics_addr} answered {}",
            answer.status
        )));
    }
    Ok(answer.body)
}

/// The value of the sample `name{labels…}` in Prometheus text (all given labels must match;
/// others may be present; no labels given matches the first sample of that name).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(inner) => inner.split_once('}')?,
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            let matches = labels.iter().all(|(k, v)| {
                label_text
                    .split(',')
                    .any(|pair| pair.trim() == format!("{k}=\"{v}\""))
            });
            if !matches {
                return None;
            }
            value.split_whitespace().next()?.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const METRICS: &str = "# HELP counter_increments_total x\n\
        counter_increments_total{outcome=\"ambiguous\"} 3\n\
        counter_increments_total{outcome=\"committed\"} 1200\n\
        http_requests_total{endpoint=\"/api/counter\",method=\"POST\",status=\"408\"} 17\n\
        counter_value 99\n\
        counter_value_other 1\n";

    #[test]
    fn reads_labelled_and_plain_samples() {
        assert_eq!(
            sample(
                METRICS,
                "counter_increments_total",
                &[("outcome", "ambiguous")]
            ),
            Some(3.0)
        );
        assert_eq!(
            sample(
                METRICS,
                "http_requests_total",
                &[("status", "408"), ("method", "POST")]
            ),
            Some(17.0)
        );
        assert_eq!(sample(METRICS, "counter_value", &[]), Some(99.0));
        assert_eq!(
            sample(METRICS, "counter_increments_total", &[("outcome", "shed")]),
            None
        );
    }

    /// A server that answers every connection with `answer`, sent in two writes, then closes.
    async fn serve_once(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let (first, rest) = answer.split_at(answer.len() / 2);
            stream.write_all(first).await.unwrap();
            stream.flush().await.unwrap();
            stream.write_all(rest).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn reads_answers_framed_by_length_chunks_or_the_close() {
        let timeout = Duration::from_secs(5);
        let cases: [(&'static [u8], u16, &str); 3] = [
            (
                b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 13\r\n\r\n{\"error\":\"x\"}",
                503,
                "{\"error\":\"x\"}",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
                200,
                "abcde",
            ),
            (b"HTTP/1.0 200 OK\r\nretry-after: 1\r\n\r\nuntil the close", 200, "until the close"),
        ];
        for (bytes, status, body) in cases {
            let answer = request(serve_once(bytes).await, "GET", "/", &[], timeout)
                .await
                .unwrap();
            assert_eq!((answer.status, answer.body.as_str()), (status, body));
        }
        let answer = request(serve_once(cases[0].0).await, "POST", "/", &[], timeout)
            .await
            .unwrap();
        assert_eq!(answer.header("Retry-After"), Some("1"));
        // The length of a HEAD answer describes a body that never comes.
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n";
        let answer = request(serve_once(head).await, "HEAD", "/", &[], timeout)
            .await
            .unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, ""));
    }

    #[tokio::test]
    async fn garbage_and_silence_are_errors() {
        let timeout = Duration::from_secs(5);
        let garbage = request(
            serve_once(b"\x00\x00\x12\x04").await,
            "GET",
            "/",
            &[],
            timeout,
        )
        .await;
        assert!(matches!(garbage, Err(Error::Http(_))), "{garbage:?}");
        let nothing = request(serve_once(b"").await, "GET", "/", &[], timeout).await;
        assert!(matches!(nothing, Err(Error::Http(_))), "{nothing:?}");
        let truncated = request(
            serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc").await,
            "GET",
            "/",
            &[],
            timeout,
        )
        .await;
        assert!(matches!(truncated, Err(Error::Http(_))), "{truncated:?}");
    }
}
