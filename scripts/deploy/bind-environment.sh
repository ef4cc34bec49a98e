#!/usr/bin/env bash
# Write this environment's non-secret bindings into the files Argo CD renders, from Terraform outputs:
#   scripts/deploy/bind-environment.sh INFRA_OUTPUTS_JSON APP_OUTPUTS_JSON REGION REPO_URL [MANIFESTS_DIR]
# INFRA/APP_OUTPUTS_JSON are `terraform output -json` of terraform/infra and terraform/app. Writes
# manifests/overlays/prod/aws.env, manifests/overlays/prod/repository.env (the repository's owner and
# name, for the alerts' runbook links) and manifests/argocd/repository.env in place (each KEY= line must
# already exist there: a missing line means the manifests and this script disagree, and it stops).
# Nothing written is a credential: the database URL carries no password (IAM authentication).
# Used by .github/workflows/bootstrap.yml (deploy stage); tested in .github/tests.
set -euo pipefail

die() { echo "bind-environment: $*" >&2; exit 1; }

[ $# -ge 4 ] && [ $# -le 5 ] || die "usage: $0 INFRA_OUTPUTS_JSON APP_OUTPUTS_JSON REGION REPO_URL [MANIFESTS_DIR]"
infra_json=$1 app_json=$2 region=$3 repo_url=$4 manifests=${5:-manifests}
command -v jq >/dev/null 2>&1 || die "jq is required"
for f in "$infra_json" "$app_json"; do [ -r "$f" ] || die "cannot read $f"; done

# The PostgreSQL role the origin signs in as (DATABASE_APP_ROLE, terraform/app var db_app_role).
readonly APP_ROLE=counter_app

out() {
  local file=$1 key=$2
  jq -er --arg k "$key" '.[$k].value | select(. != null and . != "")' "$file" \
    || die "no value for Terraform output '$key' in $file"
}

# Replace the value of KEY in an env file, keeping the comments that document it.
set_env() {
  local file=$1 key=$2 value=$3
  [ -n "$value" ] || die "empty value for $key"
  grep -q "^$key=" "$file" || die "$file has no $key= line"
  awk -v k="$key" -v v="$value" 'index($0, k "=") == 1 { print k "=" v; next } { print }' "$file" >"$file.new"
  mv "$file.new" "$file"
}

aws_env=$manifests/overlays/prod/aws.env
repository_env=$manifests/argocd/repository.env
links_env=$manifests/overlays/prod/repository.env
for f in "$aws_env" "$repository_env" "$links_env"; do [ -f "$f" ] || die "no $f"; done
# https://github.com/OWNER/NAME(.git) or git@github.com:OWNER/NAME(.git) (argocd-repository.sh url).
[[ $repo_url =~ [:/]([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)$ ]] || die "cannot read OWNER/NAME from '$repo_url'"
repo_owner=${BASH_REMATCH[1]} repo_name=${BASH_REMATCH[2]%.git}

host=$(out "$infra_json" db_endpoint)
port=$(out "$infra_json" db_port)
db=$(out "$infra_json" db_name)

set_env "$aws_env" ALB_SECURITY_GROUP_ID "$(out "$app_json" alb_security_group_id)"
set_env "$aws_env" TARGET_GROUP_NAME "$(out "$app_json" target_group_name)"
set_env "$aws_env" ADOT_COLLECTOR_ROLE_ARN "$(out "$app_json" adot_collector_role_arn)"
set_env "$aws_env" VPC_CIDR "$(out "$infra_json" vpc_cidr)"
set_env "$aws_env" REGION "$region"
set_env "$aws_env" CLUSTER_NAME "$(out "$infra_json" cluster_name)"
# No password: the origin signs an RDS IAM token as counter_app; sslmode=require verifies the chain
# and the host name (rustls), against the RDS CA bundle the deploy stage installs.
set_env "$aws_env" DATABASE_URL "postgres://${APP_ROLE}@${host}:${port}/${db}?sslmode=require"
set_env "$aws_env" DATABASE_MASTER_SECRET_ARN "$(out "$infra_json" db_master_user_secret_arn)"
set_env "$aws_env" ALERTS_TOPIC_ARN "$(out "$app_json" alerts_topic_arn)"
set_env "$aws_env" HEARTBEAT_TOPIC_ARN "$(out "$app_json" heartbeat_topic_arn)"
set_env "$aws_env" ALERTS_TOPIC_REGION "$(out "$app_json" alerts_topic_region)"
set_env "$repository_env" REPO_URL "$repo_url"
set_env "$links_env" REPO_OWNER "$repo_owner"
set_env "$links_env" REPO_NAME "$repo_name"
