#!/usr/bin/env bash
# `make chaos`: every fault case of the chaos crate, longer than in the test command, plus slow
# clients (slowhttptest) and a bounded cargo-fuzz run of each parser of untrusted input. All
# traffic stays on loopback. Figures: artifacts/chaos/chaos.json (and each case's logs beside it);
# the exit status is non-zero when any promise broke. Extra arguments go to the chaos binary,
# e.g. `make chaos CHAOS_ARGS="rolling-restart"` or `CHAOS_ARGS="--fuzz-seconds 120"`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
ensure_apt haproxy haproxy
ensure_apt slowhttptest slowhttptest
# The sanitizer build of the fuzz targets compiles libFuzzer (C++).
ensure_apt g++ g++
# cargo-fuzz drives the fuzz targets; it needs nightly's -Z flags, which the stable toolchain
# accepts with RUSTC_BOOTSTRAP=1 (no nightly can be fetched here; see the README).
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz…" >&2
  cargo install --locked cargo-fuzz || die "cargo install --locked cargo-fuzz failed"
fi
# 1,000 slow connections per attack, plus the origin's and the load tester's own.
# Only the soft limit is raised: HAProxy sizes its own needs against the hard one.
[ "$(ulimit -Sn)" -ge 4096 ] || ulimit -Sn 4096 2>/dev/null \
  || die "the open-file limit ($(ulimit -Sn), hard $(ulimit -Hn)) is too low for the slow-clients case; allow 4096"
ensure_python_tools
pytest -q -p no:cacheprovider chaos/security

# The origin as it ships (release profile, as `make bench` measures it): the slow-clients case
# compares latencies, and the figures in the README are the production build's.
cargo build --release --locked -p counter-origin --bin counter-origin
# The chaos binary itself in debug, with the same package set as scripts/test-chaos.sh (shared build).
cargo build --locked -p counter-origin -p chaos --bins
start_test_postgres
target/debug/chaos --origin target/release/counter-origin --haproxy "$(command -v haproxy)" \
  --slowhttptest "$(command -v slowhttptest)" --out artifacts/chaos "$@"
