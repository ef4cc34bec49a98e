# shellcheck shell=bash
# Shared helpers for the test and benchmark scripts: install what a fresh machine lacks, or fail
# with a message that says what is missing. Sourced, never run.

# die MESSAGE — stop the whole run with a clear reason (never skip a suite silently).
die() { echo "error: $*" >&2; exit 1; }

# ensure_apt PACKAGE COMMAND — install a Debian package when COMMAND is not on PATH.
ensure_apt() {
  local package=$1 command=$2
  command -v "$command" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "'$command' is missing; install the Debian package '$package' (apt-get install $package)"
  fi
  echo "installing $package (for $command)…" >&2
  if [ ! -f /tmp/.counter-apt-updated ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && touch /tmp/.counter-apt-updated
  fi
  # A package list older than the marker (cleaned, or refreshed by someone else) fails the first
  # try: refresh it once more before giving up.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null; } \
    || die "apt-get install $package failed"
  command -v "$command" >/dev/null 2>&1 || die "'$command' still missing after installing $package"
}

# ensure_venv DIR REQUIREMENTS — a project-local virtualenv with the pinned packages of REQUIREMENTS,
# re-installed only when that file changes.
ensure_venv() {
  local venv=$1 requirements=$2 stamp want
  stamp="$venv/.requirements.sha256"
  command -v python3 >/dev/null 2>&1 || die "python3 is required for the infrastructure checks"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || die "cannot create a virtualenv in $venv"
  fi
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing Python tools ($requirements)…" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" \
      || die "pip install -r $requirements failed"
    echo "$want" >"$stamp"
  fi
}

# ensure_python_tools — the shared tools of requirements-tools.txt in .tools/venv, first on PATH.
ensure_python_tools() {
  local root
  root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
  ensure_venv "$root/.tools/venv" "$root/requirements-tools.txt"
  export PATH="$root/.tools/venv/bin:$PATH"
}

# ensure_checkov — checkov in a virtualenv of its own (see requirements-checkov.txt); exports CHECKOV.
ensure_checkov() {
  local root
  root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
  ensure_venv "$root/.tools/checkov-venv" "$root/requirements-checkov.txt"
  export CHECKOV="$root/.tools/checkov-venv/bin/checkov"
  [ -x "$CHECKOV" ] || die "checkov missing from .tools/checkov-venv"
}

# build_workspace — every debug binary and test of the workspace, in the one build the rust suite's
# `cargo test --workspace` makes. Building a subset (`-p counter-origin --bin …`) resolves other
# features (dev-dependencies drop out), which rebuilds tokio and everything above it: three extra
# dependency builds in a clean clone.
build_workspace() {
  command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
  cargo build --workspace --lib --bins --tests --examples --locked || die "cargo build failed"
}
