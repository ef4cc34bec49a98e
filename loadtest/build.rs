//! Stamps the git revision the tool was built from into `--version` and each result's `tool`,
//! so a result file names the exact harness that produced it. The same rule as the origin's
//! build script: `COUNTER_REVISION` when set (a build without `.git`), else `git rev-parse
//! HEAD`, else `unknown`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=COUNTER_REVISION");
    let revision = env::var("COUNTER_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".into());
    assert!(
        revision.len() <= 64
            && revision
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        "COUNTER_REVISION={revision:?}: expected a git revision (letters, digits, '.', '_', '-'; at most 64)"
    );
    println!("cargo:rustc-env=COUNTER_REVISION={revision}");
}

/// `HEAD`'s commit, rebuilt when a commit or checkout moves it (paths found through git, so a
/// linked worktree, whose `.git` is a file, works too).
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
            // A missing file would make cargo rerun this script on every build.
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    Some(revision)
}
