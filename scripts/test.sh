#!/usr/bin/env bash
# The one test command (`make test`): installs or starts everything the suites need, then runs
# every suite in turn and stops at the first failure. `scripts/test.sh rust` runs one suite.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(docs rust loadtest chaos edge observability manifests terraform delivery)
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=("${all[@]}")
for suite in "${suites[@]}"; do
  script="scripts/test-$suite.sh"
  [ -x "$script" ] || { echo "error: no test suite '$suite' ($script)" >&2; exit 2; }
  echo "=== suite: $suite ===" >&2
  "$script"
done
echo "=== all suites passed: ${suites[*]} ===" >&2
