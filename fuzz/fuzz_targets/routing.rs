//! Routing: any method and any request target hyper accepts must route without panicking, and
//! the decision must be one the HTTP contract allows (docs/design.md §1).
//!
//! Input: `METHOD SP TARGET` (bytes); inputs hyper itself would refuse are skipped, since they
//! never reach the router.
#![no_main]

use counter_origin::routes::{resolve, Action};
use counter_origin::telemetry::metrics::Endpoint;
use hyper::{Method, Uri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b' ').unwrap_or(data.len());
    let (method, target) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let (Ok(method), Ok(uri)) = (Method::from_bytes(method), Uri::try_from(target)) else {
        return;
    };
    let path = uri.path();
    let route = resolve(&method, path);

    // Unknown paths share one label and one answer: no request creates a new metric series.
    assert_eq!(
        route.endpoint == Endpoint::Other,
        route.action == Action::NotFound,
        "{method} {path}: {route:?}"
    );
    let reads = method == Method::GET || method == Method::HEAD;
    match route.action {
        Action::ReadCounter => assert!(reads && route.endpoint == Endpoint::Counter),
        Action::Increment => assert!(method == Method::POST && route.endpoint == Endpoint::Counter),
        Action::Health => assert!(reads && path == "/healthz"),
        Action::Ready => assert!(reads && path == "/readyz"),
        Action::Version => assert!(reads && path == "/version"),
        // Only GET/HEAD ever reach an asset, and only its own path (`/` is the page).
        Action::Asset(asset) => {
            let own = asset.path == path || (path == "/" && asset.path == "/index.html");
            assert!(reads && own, "{method} {path} served {}", asset.path)
        }
        Action::Options(_) => assert_eq!(method, Method::OPTIONS),
        Action::MethodNotAllowed(allow) => {
            assert!(
                !allow.split(", ").any(|m| m == method.as_str()),
                "{method} is in Allow: {allow}"
            )
        }
        Action::NotFound => {}
    }
    // The decision depends on method and path alone: the same input routes the same way.
    assert_eq!(resolve(&method, path), route);
});
