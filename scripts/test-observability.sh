#!/usr/bin/env bash
# Observability suite: the PrometheusRule (promtool check and unit tests of every alert) and the Grafana
# dashboard (Grafana's own schema via @grafana/schema and tsc, every query checked by promtool, the SLI and
# top-row panels evaluated at idle, and the metric contract with origin/src), then end to end: a real
# Prometheus scraping the running origin under load must answer every panel query, every recording rule
# and the original system's queries.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
ensure_apt prometheus promtool
command -v prometheus >/dev/null 2>&1 || die "the 'prometheus' binary is missing (Debian package 'prometheus')"
command -v cargo >/dev/null 2>&1 || die "cargo is required to build the origin for the end-to-end test (rustup toolchain)"
build_workspace
export COUNTER_ORIGIN_BIN="$PWD/target/debug/counter-origin"
command -v node >/dev/null 2>&1 || die "node (>= 20) is required to check the dashboard against @grafana/schema"
command -v npm >/dev/null 2>&1 || die "npm is required to install @grafana/schema and typescript (observability/schema)"
(cd observability/schema && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
  || die "npm ci failed in observability/schema/"
ensure_python_tools
python -c 'import promql_parser' 2>/dev/null || die "promql-parser is missing from .tools/venv (requirements-tools.txt)"
exec pytest -q -p no:cacheprovider observability/tests
