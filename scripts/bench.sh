#!/usr/bin/env bash
# `make bench`: release builds of the origin, the bare hyper baseline and the load tester, a
# throwaway PostgreSQL (as the test command starts it), then the side-by-side benchmark
# (`loadtest bench`, loadtest/src/bench.rs). Results go to artifacts/bench/; the exit status is
# non-zero when a performance claim or a write-correctness check fails.
#
# The throwaway PostgreSQL runs with fsync=off. That is fair to both sides of every ratio here:
# the bare server has no database, and the batched/unbatched comparison is about statements per
# increment, which fsync cost would only scale. Real commit latency is for the deployed check
# (loadtest/targets/prod.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
ensure_apt wrk wrk

cargo build --release --locked -p counter-origin --bin counter-origin --example bare-hyper
cargo build --release --locked -p loadtest
start_test_postgres

out=artifacts/bench
mkdir -p "$out"
target/release/loadtest bench \
  --origin target/release/counter-origin \
  --bare target/release/examples/bare-hyper \
  --wrk "$(command -v wrk)" \
  --database-url "$TEST_DATABASE_URL" \
  --out "$out" "$@"
