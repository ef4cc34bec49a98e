#!/usr/bin/env bash
# Rust suite: the origin's unit and integration tests against a real PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
start_test_postgres
# botocore: the independent RDS IAM token implementation the origin's tokens are compared with.
ensure_venv .tools/origin-venv origin/tests/requirements.txt
export TEST_PYTHON=$PWD/.tools/origin-venv/bin/python
cargo test --workspace --locked
