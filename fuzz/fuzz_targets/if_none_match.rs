//! `If-None-Match` (RFC 9110 §13.1.2, weak comparison) on any header values a client can send.
//!
//! Input: the ETag to compare against (first line), then one header value per line.
#![no_main]

use counter_origin::routes::if_none_match;
use hyper::header::{HeaderMap, HeaderValue, IF_NONE_MATCH};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let etag = lines.next().unwrap_or_default();
    let values: Vec<HeaderValue> = lines
        .filter_map(|l| HeaderValue::from_bytes(l).ok())
        .collect();
    let headers = |values: &mut dyn Iterator<Item = &HeaderValue>| {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(IF_NONE_MATCH, value.clone());
        }
        map
    };
    let matched = if_none_match(&headers(&mut values.iter()), etag);

    assert!(
        !if_none_match(&HeaderMap::new(), etag),
        "no header never matches"
    );
    // Where the list is split across header lines, and in which order, does not matter.
    assert_eq!(
        if_none_match(&headers(&mut values.iter().rev()), etag),
        matched
    );
    // Adding our own tag always matches. The origin's tags are strong and quoted, with no comma
    // inside (`"42"`, `"9f…"`): only such a first line is taken as the tag for this property.
    let ours = etag.len() >= 2
        && etag.starts_with(b"\"")
        && etag.ends_with(b"\"")
        && etag[1..etag.len() - 1]
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) && b != b',');
    if ours {
        let own = HeaderValue::from_bytes(etag).expect("visible ASCII");
        let with_own: Vec<HeaderValue> = values.iter().cloned().chain([own]).collect();
        assert!(if_none_match(&headers(&mut with_own.iter()), etag));
    }
});
