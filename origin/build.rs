//! Embeds every file under the workspace's `static/` into the binary (one artifact), with its
//! content type and a content hash for the ETag, as a generated table `assets.rs` in OUT_DIR.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let root = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("../static");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    if root.is_dir() {
        collect(&root, &mut files);
    }
    files.sort();

    let mut table = String::from("&[\n");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let url_path = format!(
            "/{}",
            file.strip_prefix(&root)
                .unwrap()
                .to_str()
                .expect("UTF-8 file name")
                .replace('\\', "/")
        );
        let bytes = fs::read(file).unwrap();
        let mut hasher = DefaultHasher::new();
        hasher.write(&bytes);
        let content_type = content_type(file)
            .unwrap_or_else(|| panic!("no content type known for {}", file.display()));
        table.push_str(&format!(
            "    Asset {{ path: {url_path:?}, body: include_bytes!({:?}), content_type: {content_type:?}, etag: \"\\\"{:016x}\\\"\" }},\n",
            file.canonicalize().unwrap(),
            hasher.finish(),
        ));
    }
    table.push(']');
    fs::write(
        Path::new(&env::var("OUT_DIR").unwrap()).join("assets.rs"),
        table,
    )
    .unwrap();
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(&path, files);
        } else if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            files.push(path);
        }
    }
}

fn content_type(path: &Path) -> Option<&'static str> {
    Some(match path.extension()?.to_str()? {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => return None,
    })
}
