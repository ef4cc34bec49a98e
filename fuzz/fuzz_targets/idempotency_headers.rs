//! `Idempotency-Key` as read from a request's headers: absent is fine, more than one is refused,
//! one is parsed exactly as the key parser says.
//!
//! Input: one header value per line.
#![no_main]

use counter_origin::counter::idempotency::{from_headers, parse, KeyError, HEADER};
use hyper::header::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let values: Vec<HeaderValue> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|&b| b == b'\n')
            .filter_map(|l| HeaderValue::from_bytes(l).ok())
            .collect()
    };
    let mut headers = HeaderMap::new();
    for value in &values {
        headers.append(&HEADER, value.clone());
    }
    let read = from_headers(&headers);
    match values.as_slice() {
        [] => assert_eq!(read, Ok(None)),
        [one] => assert_eq!(read, parse(one.as_bytes()).map(Some)),
        _ => assert_eq!(read, Err(KeyError::Repeated)),
    }
});
