#!/usr/bin/env bash
# Fault suite, fast cases (the test command): the origin binary against a throwaway PostgreSQL,
# on loopback only — the cases of `chaos --fast` (Case::selected in chaos/src/cases/mod.rs):
# malformed requests, secrets under failure, the embedded store's disk full and files deleted,
# HTTP/2 zero-window and preface floods, PostgreSQL stopped and restarted under write load,
# SIGKILL under write load, a rolling restart of two origins behind HAProxy.
# The case logic, figures and verdicts live in the chaos crate (chaos/src/cases/); its unit tests
# (each judge fails on figures that break its promise) run in the rust suite. `make chaos` runs
# the longer version plus slow clients and fuzzing. Figures: artifacts/chaos-fast/chaos.json.
# Also the static security check that production verifies the database's certificate.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
. scripts/lib/postgres.sh
command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup toolchain)"
# HAProxy plays the ALB in the rolling-restart case (health checks on /readyz).
ensure_apt haproxy haproxy

ensure_python_tools
pytest -q -p no:cacheprovider chaos/security

build_workspace
start_test_postgres
target/debug/chaos --fast --origin target/debug/counter-origin --haproxy "$(command -v haproxy)" \
  --out artifacts/chaos-fast
