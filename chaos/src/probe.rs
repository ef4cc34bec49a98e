//! One-shot HTTP/1.1 exchanges over a fresh connection (`Connection: close`): readiness waits,
//! metric scrapes, the "still serving?" request after each malformed case, error bodies to scan
//! for secrets. Deliberately not the load client: these must see every header and body as sent.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer read by a probe; the origin's answers are a few KB (the page) at most.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

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

/// Sends one request and reads the whole answer, within `timeout`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Answer, String> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: chaos.test\r\nConnection: close\r\n");
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
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut bytes = Vec::new();
        (&mut stream)
            .take(MAX_ANSWER as u64)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse(&bytes)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{method} {path}: no complete answer within {timeout:?}"))?
}

/// Parses one complete answer (head and the body up to the close).
pub fn parse(bytes: &[u8]) -> Result<Answer, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if bytes.is_empty() => {
            return Err("connection closed without an answer".into())
        }
        Ok(httparse::Status::Partial) => return Err("truncated answer".into()),
        Err(e) => return Err(format!("not an HTTP/1 answer: {e}")),
    };
    let chunked = response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let body = if chunked {
        dechunk(&bytes[head..])?
    } else {
        bytes[head..].to_vec()
    };
    Ok(Answer {
        status: response.code.unwrap_or(0),
        headers: response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The data of a complete chunked body (HAProxy's stats page is sent chunked).
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunked body")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(data);
        }
        if rest.len() < size {
            return Err("truncated chunk".into());
        }
        data.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

/// Polls `GET path` until it answers `status`, at most `timeout`.
pub async fn wait_for_status(
    addr: SocketAddr,
    path: &str,
    status: u16,
    timeout: Duration,
) -> Result<Duration, String> {
    let started = std::time::Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < timeout {
        match request(addr, "GET", path, &[], Duration::from_secs(2)).await {
            Ok(answer) if answer.status == status => return Ok(started.elapsed()),
            Ok(answer) => last = format!("{} {}", answer.status, answer.body.trim()),
            Err(error) => last = error,
        }
        // A poll, not a guess: each attempt is a real request; this bounds their rate.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!(
        "GET {path} on {addr} did not answer {status} within {timeout:?} (last: {last})"
    ))
}

/// The Prometheus text of a metrics listener.
pub async fn scrape(metrics_addr: SocketAddr) -> Result<String, String> {
    let answer = request(metrics_addr, "GET", "/metrics", &[], Duration::from_secs(5)).await?;
    if answer.status != 200 {
        return Err(format!("/metrics answered {}", answer.status));
    }
    Ok(answer.body)
}

/// The value of the sample `name{labels…}` (all given labels must match; others may be present).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(inner) => {
                    let (labels, value) = inner.split_once('}')?;
                    (labels, value)
                }
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

/// A loopback address nobody listens on right now (the kernel's choice, released at once; on
/// loopback nothing else races for it between here and the bind).
pub fn free_addr() -> Result<SocketAddr, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn parses_an_answer_and_refuses_garbage() {
        let answer =
            parse(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\r\n{\"error\":\"x\"}")
                .unwrap();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.header("Retry-After"), Some("1"));
        assert_eq!(answer.body, "{\"error\":\"x\"}");
        let chunked = parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(chunked.body, "abcde");
        assert!(parse(b"").is_err());
        assert!(parse(b"\x00\x00\x12\x04").is_err());
    }
}
