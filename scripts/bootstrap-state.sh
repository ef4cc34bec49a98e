#!/usr/bin/env bash
# Step 1 of the deployment (terraform/README.md): apply terraform/bootstrap with administrator
# credentials and move its state into the bucket it just created.
#   scripts/bootstrap-state.sh OWNER/NAME [-var NAME=VALUE]…
# e.g. scripts/bootstrap-state.sh my-org/counter-service -var create_github_oidc_provider=false
#
# The variables are written to terraform/bootstrap/terraform.tfvars (Terraform loads it by itself),
# which you commit: every later run of this layer (a rerun, CI's plan, scripts/teardown.sh
# --bootstrap) then uses the same values instead of silently falling back to the defaults (a
# default create_github_oidc_provider=true plans to create a provider the account already has).
# Without -var arguments an existing terraform.tfvars is kept.
#
# Whether the state is already in the bucket is asked of S3 (the bucket name follows from the
# variables and the account), not of the local .terraform/ directory, which a fresh clone lacks.
# First run: the bucket does not exist yet, so the apply runs on a local backend (a
# local_override.tf, ignored by Git); the outputs are read *before* the override is removed (with
# it gone, `terraform output` would look for a backend that is not initialised), then
# `init -migrate-state` copies the state into s3://<bucket>/bootstrap/terraform.tfstate.
set -euo pipefail

die() { echo "bootstrap-state: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 OWNER/NAME [-var NAME=VALUE]…"
repository=$1
shift
[[ $repository =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "'$repository' is not OWNER/NAME"
for tool in terraform aws; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required on PATH (terraform: the version in terraform/.terraform-version)"
done

dir="$(cd "$(dirname "$0")/.." && pwd)/terraform/bootstrap"
tfvars="$dir/terraform.tfvars"
tf() { terraform -chdir="$dir" "$@"; }

# --- the variables, persisted --------------------------------------------------------------------
hcl_value() {
  # Booleans and numbers stay bare; everything else is an HCL string.
  if [[ $1 =~ ^(true|false|-?[0-9]+(\.[0-9]+)?)$ ]]; then printf '%s' "$1"; else printf '"%s"' "${1//\"/\\\"}"; fi
}
if [ $# -gt 0 ] || [ ! -f "$tfvars" ]; then
  lines=("# Written by scripts/bootstrap-state.sh; commit it (CI and scripts/teardown.sh read it)."
         "github_repository = \"$repository\"")
  while [ $# -gt 0 ]; do
    [ "$1" = -var ] && [ $# -ge 2 ] || die "only '-var NAME=VALUE' arguments are accepted, got '$1'"
    [[ $2 =~ ^([a-z_][a-z0-9_]*)=(.*)$ ]] || die "'$2' is not NAME=VALUE"
    [ "${BASH_REMATCH[1]}" != github_repository ] || die "the repository is the first argument"
    lines+=("${BASH_REMATCH[1]} = $(hcl_value "${BASH_REMATCH[2]}")")
    shift 2
  done
  printf '%s\n' "${lines[@]}" >"$tfvars"
fi
grep -qx "github_repository = \"$repository\"" "$tfvars" ||
  die "$tfvars was written for another repository; pass -var arguments to rewrite it"

tfvar() { sed -n "s/^$1 = \"\\(.*\\)\"\$/\\1/p" "$tfvars"; }
region=$(tfvar aws_region)
region=${region:-eu-west-2}
bucket=$(tfvar state_bucket_name)
if [ -z "$bucket" ]; then
  project=$(tfvar project)
  account=$(aws sts get-caller-identity --query Account --output text) || die "no AWS credentials"
  bucket="${project:-counter-service}-tfstate-$account-$region"
fi

# --- already migrated: apply against the bucket ----------------------------------------------------
if out=$(aws s3api head-object --region "$region" --bucket "$bucket" --key bootstrap/terraform.tfstate 2>&1 >/dev/null); then
  echo "state already in s3://$bucket/bootstrap/terraform.tfstate: applying against it" >&2
  tf init -input=false -reconfigure -backend-config="bucket=$bucket" -backend-config="region=$region"
  tf apply -input=false
  exit 0
fi

# --- first run: local backend, then migrate ----------------------------------------------------------
# Only "not found" means a first run; a 403 or a network error must not start a second, local state.
grep -qE '\(404\)|Not Found|NoSuchKey|NoSuchBucket' <<<"$out" || die "cannot tell whether s3://$bucket/bootstrap/terraform.tfstate exists: $out"
override="$dir/local_override.tf"
printf 'terraform {\n  backend "local" {}\n}\n' >"$override"
trap 'rm -f "$override"' EXIT

tf init -input=false -reconfigure
tf apply -input=false
# Read while the local backend is still configured.
bucket=$(tf output -raw state_bucket)
region=$(tf output -raw aws_region)
[ -n "$bucket" ] && [ -n "$region" ] || die "the apply produced no state_bucket/aws_region output"

rm -f "$override"
trap - EXIT
tf init -input=false -migrate-state -force-copy \
  -backend-config="bucket=$bucket" -backend-config="region=$region"
echo "bootstrap state is in s3://$bucket/bootstrap/terraform.tfstate (the local terraform.tfstate is the pre-migration copy; keep it until you are sure)" >&2
echo "commit terraform/bootstrap/terraform.tfvars (CI's plan and scripts/teardown.sh --bootstrap read it)" >&2
echo "next: scripts/configure-repository.sh" >&2
