#!/usr/bin/env bash
# Docs suite: every relative link and #anchor in every Markdown file resolves (GitHub's heading
# slugs), and every citation of the design document (`docs/design.md §n`) names one of its sections.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
ensure_python_tools
exec python -m pytest -q -p no:cacheprovider docs/tests
