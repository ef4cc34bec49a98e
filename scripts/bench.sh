#!/usr/bin/env bash
# `make bench`: release builds of the origin, the bare hyper baseline and the load tester, a
# throwaway PostgreSQL (as the test command starts it), then the benchmark (`loadtest bench`,
# loadtest/src/bench.rs): issue 18's claims side by side with wrk and the harness, the database
# round trips and several origins on one row. Results go to artifacts/bench/; the exit status is
# non-zero when a claim or a write-correctness check fails.
#
# The throwaway PostgreSQL has real commits (TEST_PG_DURABLE=1: fsync and synchronous_commit on,
# as RDS): with fsync=off an unbatched commit is nearly free and the batched/unbatched ratio says
# little. The capacity runs (--db-rtt-ms, --origins; docs/capacity.md) put a latency proxy
# between the origins and PostgreSQL. Defaults: the whole set in about five minutes after the
# builds; e.g. `make bench BENCH_ARGS="--rounds 1 --db-rtt-ms 0,1 --origins 1,4"` for a shorter run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
ensure_apt wrk wrk

# One invocation for every binary: separate `-p` subsets resolve different features and rebuild
# the dependencies they share.
cargo build --release --locked -p counter-origin -p loadtest \
  --bin counter-origin --bin loadtest --example bare-hyper
# Exports TEST_DATABASE_URL, TEST_PG_DATA_DIR (PostgreSQL's CPU from /proc, pg_test_fsync beside
# it) and TEST_PG_BIN_DIR (pg_test_fsync), which `loadtest bench` reads.
TEST_PG_DURABLE=1 start_test_postgres

out=artifacts/bench
# The servers' logs are appended to (restarts keep their history): start from an empty directory.
rm -rf "$out" && mkdir -p "$out"
target/release/loadtest bench \
  --origin target/release/counter-origin \
  --bare target/release/examples/bare-hyper \
  --wrk "$(command -v wrk)" \
  --database-url "$TEST_DATABASE_URL" \
  --out "$out" "$@"
