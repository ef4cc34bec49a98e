#!/usr/bin/env bash
# Step 1 of the deployment (terraform/README.md): apply terraform/bootstrap with administrator
# credentials and move its state into the bucket it just created.
#   scripts/bootstrap-state.sh OWNER/NAME [terraform apply arguments…]
# e.g. scripts/bootstrap-state.sh my-org/counter-service -var create_github_oidc_provider=false
# The bucket does not exist before the first apply, so that apply runs on a local backend (a
# local_override.tf, ignored by Git); the outputs are read *before* the override is removed (with
# it gone, `terraform output` would look for a backend that is not initialised), then
# `init -migrate-state` copies the state into s3://<bucket>/bootstrap/terraform.tfstate.
# Rerunnable: once the state is in the bucket, it plans and applies against the bucket directly.
set -euo pipefail

die() { echo "bootstrap-state: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 OWNER/NAME [terraform apply arguments…]"
repository=$1
shift
[[ $repository =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "'$repository' is not OWNER/NAME"
command -v terraform >/dev/null 2>&1 || die "terraform $(cat "$(dirname "$0")/../terraform/.terraform-version") is required on PATH"

dir="$(cd "$(dirname "$0")/.." && pwd)/terraform/bootstrap"
tf() { terraform -chdir="$dir" "$@"; }

if [ -f "$dir/.terraform/terraform.tfstate" ] && grep -q '"type": "s3"' "$dir/.terraform/terraform.tfstate"; then
  echo "state already in the bucket: applying against it" >&2
  tf apply -input=false -var "github_repository=$repository" "$@"
  exit 0
fi

override="$dir/local_override.tf"
printf 'terraform {\n  backend "local" {}\n}\n' >"$override"
trap 'rm -f "$override"' EXIT

tf init -input=false -reconfigure
tf apply -input=false -var "github_repository=$repository" "$@"
# Read while the local backend is still configured.
bucket=$(tf output -raw state_bucket)
region=$(tf output -raw aws_region)
[ -n "$bucket" ] && [ -n "$region" ] || die "the apply produced no state_bucket/aws_region output"

rm -f "$override"
trap - EXIT
tf init -input=false -migrate-state -force-copy \
  -backend-config="bucket=$bucket" -backend-config="region=$region"
echo "bootstrap state is in s3://$bucket/bootstrap/terraform.tfstate (the local terraform.tfstate is the pre-migration copy; keep it until you are sure)" >&2
echo "next: scripts/configure-repository.sh" >&2
