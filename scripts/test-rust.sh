#!/usr/bin/env bash
# Rust suite: the origin's unit and integration tests against a real PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
start_test_postgres
cargo test --workspace --locked
