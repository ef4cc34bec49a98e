#!/usr/bin/env bash
# Observability suite: the PrometheusRule (promtool check and unit tests of every alert) and the Grafana
# dashboard (Grafana document shape, every query checked by promtool, the SLI panels evaluated at idle,
# and the metric contract with origin/src).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
ensure_apt prometheus promtool
ensure_python_tools
python -c 'import promql_parser' 2>/dev/null || die "promql-parser is missing from .tools/venv (requirements-tools.txt)"
exec pytest -q -p no:cacheprovider observability/tests
