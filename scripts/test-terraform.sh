#!/usr/bin/env bash
# Terraform suite: the three layers proven offline. The registry is unreachable here, so
# `terraform init/validate` cannot run; instead: formatting, every file parsed (python-hcl2),
# checkov with zero unexplained findings, and pytest (terraform/tests): cross-reference tests, every
# resource/data block checked against the providers' schemas (from the npm packages below), every
# IAM policy linted with parliament.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh

pinned=$(cat terraform/.terraform-version)
command -v terraform >/dev/null 2>&1 \
  || die "terraform $pinned is required on PATH (HashiCorp's binary; it is not in the package registries)"
# An absent CLI config file makes every terraform command warn; none is needed for fmt.
export TF_CLI_CONFIG_FILE=/dev/null
echo "terraform $(terraform version | head -n1 | cut -d' ' -f2) (layers pin v$pinned)" >&2

# ensure_provider_schemas — the providers' schemas as the CDKTF npm packages ship them (type
# declarations per resource), for terraform/tests/test_provider_schema.py. CDKTF is deprecated:
# these are the last versions; they describe aws 6.25.0, helm 3.1.1, random 3.7.2 (the layers pin those).
ensure_provider_schemas() {
  local dir=$PWD/.tools/provider-schemas spec name tmp
  for spec in provider-aws@21.22.1 provider-helm@12.1.2 provider-random@12.0.1; do
    name=${spec%@*}
    if [ "$(cat "$dir/$name/VERSION" 2>/dev/null)" != "${spec#*@}" ]; then
      command -v npm >/dev/null 2>&1 || die "npm is required to fetch @cdktf/$spec (the offline provider schemas)"
      echo "fetching @cdktf/$spec (provider schema)…" >&2
      tmp=$(mktemp -d /tmp/counter-schema.XXXXXX)
      (cd "$tmp" && npm pack --silent "@cdktf/$spec" >/dev/null) || die "npm pack @cdktf/$spec failed"
      rm -rf "${dir:?}/$name" && mkdir -p "$dir/$name"
      tar -xzf "$tmp"/*.tgz -C "$dir/$name" || die "cannot unpack @cdktf/$spec"
      rm -rf "$tmp"
      echo "${spec#*@}" >"$dir/$name/VERSION"
    fi
  done
  export PROVIDER_SCHEMA_DIR=$dir
}

ensure_python_tools

ensure_checkov

ensure_provider_schemas

echo "--- terraform fmt -check -recursive" >&2
terraform fmt -check -recursive -diff terraform || die "terraform fmt: run 'terraform fmt -recursive terraform'"

echo "--- checkov (terraform, offline)" >&2
"$CHECKOV" --directory terraform --framework terraform --skip-download \
  --compact --quiet || die "checkov found unexplained findings (fix them, or skip in place with a reason)"

echo "--- pytest terraform/tests" >&2
python -m pytest -q -p no:cacheprovider terraform/tests
