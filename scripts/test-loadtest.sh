#!/usr/bin/env bash
# Load-test smoke (CI): the harness against a freshly started origin on a throwaway PostgreSQL,
# a few seconds per scenario with the loose targets of loadtest/targets/smoke.toml. It proves on
# every change that the origin serves reads and writes under concurrent load with no errors and
# no write-correctness violation (distinct values, no gaps), and that the harness still works
# (its result files, `compare`).
# The crate's unit and integration tests run in the rust suite (`cargo test --workspace`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
command -v python3 >/dev/null 2>&1 || die "python3 is required (result schema check)"

# Debug builds: they share the rust suite's compiled dependencies; speed is `make bench`'s job.
cargo build --locked -p counter-origin --bin counter-origin -p loadtest -p testkit
start_test_postgres

out=artifacts/loadtest-smoke
rm -rf "$out" && mkdir -p "$out"
# testkit starts the origin on free loopback ports, waits until /readyz answers 200, runs the
# smoke with ORIGIN_URL set, then stops the origin and fails on an unclean exit or a panic.
target/debug/testkit with-origin --origin target/debug/counter-origin --log-dir "$out" \
  --env "DATABASE_URL=$TEST_DATABASE_URL" --env DRAIN_PERIOD_MS=0 \
  -- scripts/lib/loadtest-smoke.sh "$out" \
  || die "load-test smoke failed (origin log: $out/origin.log)"
