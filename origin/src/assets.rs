//! The page and its assets, embedded from `static/` at build time (see `build.rs`).

#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    pub path: &'static str,
    pub body: &'static [u8],
    pub content_type: &'static str,
    /// Strong ETag from the content hash.
    pub etag: &'static str,
}

impl Asset {
    /// Content-hashed files under `/assets/` never change: the edge and browsers keep them a year.
    pub fn is_immutable(&self) -> bool {
        self.path.starts_with("/assets/")
    }
}

pub static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset served at `path`; `/` is the page.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}
