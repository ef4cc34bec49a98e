#!/usr/bin/env bash
# `make bench`: release builds of the origin, the bare hyper baseline and the load tester, a
# throwaway PostgreSQL (as the test command starts it), then the side-by-side benchmark
# (`loadtest bench`, loadtest/src/bench.rs). Results go to artifacts/bench/; the exit status is
# non-zero when a performance claim or a write-correctness check fails.
#
# The throwaway PostgreSQL has real commits (TEST_PG_DURABLE=1: fsync and synchronous_commit on,
# as RDS): with fsync=off an unbatched commit is nearly free and the batched/unbatched ratio says
# little. The capacity runs (--db-rtt-ms, --origins; docs/capacity.md) put a latency proxy
# between the origins and PostgreSQL. Defaults: the whole set in about five minutes; e.g.
# `make bench BENCH_ARGS="--rounds 1 --db-rtt-ms 1 --origins 1,4"` for a shorter run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
ensure_apt wrk wrk

cargo build --release --locked -p counter-origin --bin counter-origin --example bare-hyper
cargo build --release --locked -p loadtest
TEST_PG_DURABLE=1 start_test_postgres

out=artifacts/bench
mkdir -p "$out"
target/release/loadtest bench \
  --origin target/release/counter-origin \
  --bare target/release/examples/bare-hyper \
  --wrk "$(command -v wrk)" \
  --database-url "$TEST_DATABASE_URL" \
  --out "$out" "$@"
