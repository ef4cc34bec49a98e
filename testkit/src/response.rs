//! Framing of one HTTP/1.1 answer in a byte buffer: the only response parser of the test tooling,
//! used by the keep-alive client on the load tester's hot path and by the one-shot probes.
//!
//! It works in place and allocates nothing: the head is parsed with `httparse` (the parser hyper
//! uses), a chunked body is compacted so its data is one contiguous range, and the caller gets
//! ranges into its own buffer. Interim (1xx) answers are skipped.

use std::mem::MaybeUninit;
use std::ops::Range;

const MAX_HEADERS: usize = 64;

/// Where the parts of one complete answer sit in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub status: u16,
    /// The final answer's status line and headers (parse them with [`headers`] when wanted).
    pub head: Range<usize>,
    /// The body's data (chunk framing removed).
    pub body: Range<usize>,
    /// Bytes of the buffer this answer used (head, body, chunk framing).
    pub consumed: usize,
    /// The server closes the connection after this answer.
    pub close: bool,
}

/// Why bytes are not an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not HTTP/1.x, or framing that contradicts itself (two lengths, a bad chunk).
    Malformed,
    /// Neither `Content-Length` nor chunked: the body runs to the close, which a keep-alive
    /// connection cannot use (parse again with `at_eof` once the peer has closed).
    UntilClose,
}

/// Parses one answer from the start of `buf`. `Ok(None)`: more bytes are needed. `at_eof` says
/// the peer has closed, so an answer without a length ends where the bytes end.
pub fn parse_answer(buf: &mut [u8], at_eof: bool) -> Result<Option<Frame>, ParseError> {
    parse(buf, at_eof, false)
}

/// As [`parse_answer`], for the answer to a `HEAD` request: its length headers describe a body
/// that is not sent.
pub fn parse_head_answer(buf: &mut [u8]) -> Result<Option<Frame>, ParseError> {
    parse(buf, false, true)
}

#[inline]
fn parse(buf: &mut [u8], at_eof: bool, bodiless: bool) -> Result<Option<Frame>, ParseError> {
    let mut offset = 0;
    loop {
        // Uninitialised slots: zeroing 64 headers (2 KiB) per answer cost more than the parse of
        // a small answer's three headers.
        let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let head = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            &buf[offset..],
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ParseError::Malformed),
        };
        let status = response.code.ok_or(ParseError::Malformed)?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        // HTTP/1.0 closes unless told otherwise; we never ask it to keep alive.
        let mut close = response.version == Some(0);
        for h in response.headers.iter() {
            // Every value must be text; the common all-ASCII case is checked a word at a time.
            if !h.value.is_ascii() && std::str::from_utf8(h.value).is_err() {
                return Err(ParseError::Malformed);
            }
            if is(h.name, "content-length") {
                let n = content_length(h.value).ok_or(ParseError::Malformed)?;
                if length.is_some_and(|l| l != n) {
                    return Err(ParseError::Malformed);
                }
                length = Some(n);
            } else if is(h.name, "transfer-encoding") {
                chunked = text(h.value)
                    .rsplit(',')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
                if !chunked {
                    return Err(ParseError::Malformed);
                }
            } else if is(h.name, "connection") {
                close |= text(h.value)
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"));
            }
        }
        let head_range = offset..offset + head;
        let start = head_range.end;
        if (100..200).contains(&status) {
            offset = start;
            continue;
        }
        let frame = |body: Range<usize>, consumed| Frame {
            status,
            head: head_range.clone(),
            body,
            consumed,
            close,
        };
        if bodiless || status == 204 || status == 304 {
            return Ok(Some(frame(start..start, start)));
        }
        if chunked {
            return Ok(dechunk(buf, start)?.map(|(end, consumed)| frame(start..end, consumed)));
        }
        let Some(length) = length else {
            if at_eof {
                return Ok(Some(Frame {
                    close: true,
                    ..frame(start..buf.len(), buf.len())
                }));
            }
            return Err(ParseError::UntilClose);
        };
        if buf.len() - start < length {
            return Ok(None);
        }
        return Ok(Some(frame(start..start + length, start + length)));
    }
}

/// Header names compare case-insensitively; most servers send them in lower case, which is
/// checked first (a plain comparison costs a tenth of a case-folding one).
fn is(name: &str, lower: &str) -> bool {
    name == lower || name.eq_ignore_ascii_case(lower)
}

/// A `Content-Length` value. Up to nine plain digits (every answer here) are read directly;
/// anything else goes through the standard parser, which also bounds the overflow.
fn content_length(value: &[u8]) -> Option<usize> {
    if (1..=9).contains(&value.len()) && value.iter().all(u8::is_ascii_digit) {
        return Some(value.iter().fold(0, |n, d| n * 10 + usize::from(d - b'0')));
    }
    text(value).trim().parse().ok()
}

/// A header value already checked to be UTF-8.
fn text(value: &[u8]) -> &str {
    std::str::from_utf8(value).unwrap_or_default()
}

/// The headers of a parsed answer, as text (for probes, never on the hot path).
pub fn headers(buf: &[u8], frame: &Frame) -> Vec<(String, String)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    // The range was parsed once already; it parses again.
    let _ = response.parse(&buf[frame.head.clone()]);
    response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Validates a complete chunked body starting at `start`, then moves the chunk data together.
/// Returns (end of the data, end of the message), or `None` when incomplete.
fn dechunk(buf: &mut [u8], start: usize) -> Result<Option<(usize, usize)>, ParseError> {
    let mut chunks = Vec::new();
    let mut at = start;
    loop {
        let Some(line_end) = find_crlf(&buf[at..]) else {
            return Ok(None);
        };
        let line =
            std::str::from_utf8(&buf[at..at + line_end]).map_err(|_| ParseError::Malformed)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| ParseError::Malformed)?;
        at += line_end + 2;
        if size == 0 {
            // Trailers until an empty line.
            loop {
                let Some(end) = find_crlf(&buf[at..]) else {
                    return Ok(None);
                };
                at += end + 2;
                if end == 0 {
                    break;
                }
            }
            break;
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err(ParseError::Malformed);
        }
        chunks.push(at..at + size);
        at += size + 2;
    }
    let mut end = start;
    for chunk in chunks {
        let len = chunk.len();
        buf.copy_within(chunk, end);
        end += len;
    }
    Ok(Some((end, at)))
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, at_eof: bool) -> (Result<Option<Frame>, ParseError>, Vec<u8>) {
        let mut buf = text.as_bytes().to_vec();
        let frame = parse_answer(&mut buf, at_eof);
        (frame, buf)
    }

    #[test]
    fn frames_a_content_length_answer_and_waits_for_all_of_it() {
        let full = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{\"value\":42}";
        let (frame, buf) = parse(full, false);
        let frame = frame.unwrap().unwrap();
        assert_eq!(
            (frame.status, frame.close, frame.consumed),
            (200, false, full.len())
        );
        assert_eq!(&buf[frame.body.clone()], b"{\"value\":42}");
        assert_eq!(
            headers(&buf, &frame),
            [
                ("content-type".to_string(), "application/json".to_string()),
                ("content-length".to_string(), "12".to_string())
            ]
        );
        for cut in 1..full.len() {
            assert_eq!(parse(&full[..cut], false).0, Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn compacts_chunked_bodies_and_skips_interim_answers() {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                    4;ext=1\r\n{\"va\r\n7\r\nlue\":7}\r\n0\r\nx-trailer: y\r\n\r\n";
        let (frame, buf) = parse(text, false);
        let frame = frame.unwrap().unwrap();
        assert!(frame.close);
        assert_eq!(frame.consumed, text.len());
        assert_eq!(&buf[frame.body.clone()], b"{\"value\":7}");
        assert_eq!(headers(&buf, &frame)[1].0, "Connection");
        assert_eq!(parse(&text[..text.len() - 2], false).0, Ok(None));
    }

    #[test]
    fn a_body_without_length_needs_the_close() {
        let text = "HTTP/1.1 200 OK\r\n\r\nbody";
        assert_eq!(parse(text, false).0, Err(ParseError::UntilClose));
        let (frame, buf) = parse(text, true);
        let frame = frame.unwrap().unwrap();
        assert!(frame.close);
        assert_eq!(&buf[frame.body], b"body");
        // A length still bounds the body at the close: fewer bytes are a truncated answer.
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nbody", true).0,
            Ok(None)
        );
    }

    #[test]
    fn the_answer_to_head_has_no_body_whatever_its_length() {
        let text = "HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n";
        let mut buf = text.as_bytes().to_vec();
        let frame = parse_head_answer(&mut buf).unwrap().unwrap();
        assert_eq!((frame.body.len(), frame.consumed), (0, text.len()));
        assert_eq!(
            parse(text, true).0,
            Ok(None),
            "a GET would wait for the 12 bytes"
        );
    }

    #[test]
    fn refuses_answers_it_cannot_frame() {
        for text in [
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            "garbage\r\n\r\n",
            "\x00\x00\x12\x04",
        ] {
            assert_eq!(parse(text, true).0, Err(ParseError::Malformed), "{text:?}");
        }
        // A header value that is not text, whichever header it is.
        let mut bytes = b"HTTP/1.1 200 OK\r\nx-any: \xff\xfe\r\ncontent-length: 0\r\n\r\n".to_vec();
        assert_eq!(parse_answer(&mut bytes, false), Err(ParseError::Malformed));
        let mut bytes = "HTTP/1.1 200 OK\r\nx-any: é\r\ncontent-length: 0\r\n\r\n"
            .as_bytes()
            .to_vec();
        assert!(
            parse_answer(&mut bytes, false).unwrap().is_some(),
            "UTF-8 is text"
        );
        let (frame, _) = parse(
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 12\r\n\r\n",
            false,
        );
        assert_eq!(frame.unwrap().unwrap().body.len(), 0);
    }
}
