#!/usr/bin/env bash
# Edge suite: the CloudFront function and cache data (Node, runtime-like vm), the page's behaviour
# and build (Node), and the page in headless Chromium against the real origin (embedded store).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh

command -v node >/dev/null 2>&1 || die "node (>= 20) is required for the edge tests"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "node >= 20 is required for the edge tests (found $(node --version))"
command -v npm >/dev/null 2>&1 || die "npm is required to install the edge test dependencies"
command -v cargo >/dev/null 2>&1 || die "cargo is required to build the origin for the browser test"

# Exactly the locked versions; no install scripts (nothing here needs one, and playwright-core
# never downloads a browser: the test drives Debian's chromium).
for dir in edge page; do
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
    || die "npm ci failed in $dir/"
done
ensure_apt chromium chromium

build_workspace
export ORIGIN_BIN="$PWD/target/debug/counter-origin"
export CHROMIUM_PATH
CHROMIUM_PATH=$(command -v chromium)

mkdir -p artifacts
node --test edge/test/*.test.mjs page/test/*.test.mjs
echo "screenshots of each state: $PWD/artifacts/page/" >&2
