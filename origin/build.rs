//! Embeds every file under the workspace's `static/` into the binary (one artifact), with its
//! content type and a content hash for the ETag, as a generated table `assets.rs` in OUT_DIR;
//! and stamps the build's identity (`COUNTER_REVISION`, `COUNTER_BUILD_TIME`) for `--version`,
//! `GET /version` and `counter_build_info`.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};
use std::{env, fs};

fn main() {
    build_identity();
    embed_static_files();
}

/// The git revision: `COUNTER_REVISION` when set (the image build has no `.git`, so the pipeline
/// passes its commit), else `git rev-parse HEAD`, else `unknown` (a source tarball). The build
/// time is `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
fn build_identity() {
    println!("cargo:rerun-if-env-changed=COUNTER_REVISION");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let revision = env::var("COUNTER_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".into());
    // It becomes a JSON string, a Prometheus label and part of --version: keep it plain.
    assert!(
        !revision.is_empty()
            && revision.len() <= 64
            && revision
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        "COUNTER_REVISION={revision:?}: expected a git revision (letters, digits, '.', '_', '-'; at most 64)"
    );
    println!("cargo:rustc-env=COUNTER_REVISION={revision}");
    let seconds = match env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => epoch
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SOURCE_DATE_EPOCH={epoch:?}: expected Unix seconds")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs(),
    };
    println!("cargo:rustc-env=COUNTER_BUILD_TIME={}", rfc3339(seconds));
}

/// `HEAD`'s commit, and rerun-if-changed on the files a commit or checkout rewrites (found through
/// git, so a linked worktree, whose `.git` is a file, works too).
fn git_revision() -> Option<String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(&manifest_dir)
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        output.status.success().then(|| text.trim().to_string())
    };
    let revision = git(&["rev-parse", "--verify", "HEAD"])?;
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = manifest_dir.join(path);
            // A file that does not exist would make cargo rerun this script on every build.
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    Some(revision)
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's days-to-civil algorithm).
fn rfc3339(seconds: u64) -> String {
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

fn embed_static_files() {
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
