#!/usr/bin/env bash
# Argo CD's access to this Git repository, from pipeline secrets (never from Git):
#   scripts/deploy/argocd-repository.sh url    OWNER/NAME [SERVER_URL]   print the URL Argo CD must use
#   scripts/deploy/argocd-repository.sh secret OWNER/NAME [SERVER_URL]   create/update the credential
# Credentials come from the environment, one of:
#   ARGOCD_REPO_SSH_KEY                      a read-only deploy key (private key): URL ssh://git@HOST/OWNER/NAME.git
#   ARGOCD_GITHUB_APP_ID, ARGOCD_GITHUB_APP_INSTALLATION_ID, ARGOCD_GITHUB_APP_PRIVATE_KEY
#                                            a GitHub App with Contents: read: URL https://HOST/OWNER/NAME.git
#   none                                     a public repository: no credential (an old one is removed)
# The Secret `counter-repository` (namespace argocd, label argocd.argoproj.io/secret-type=repository)
# is written with server-side apply: no last-applied-configuration annotation ever holds the key, and
# the key reaches kubectl through a pipe, never an argument.
set -euo pipefail

die() { echo "argocd-repository: $*" >&2; exit 1; }

readonly NAMESPACE=argocd SECRET=counter-repository

[ $# -ge 2 ] && [ $# -le 3 ] || die "usage: $0 url|secret OWNER/NAME [SERVER_URL]"
action=$1 repository=$2 server=${3:-https://github.com}
[[ $repository =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "repository '$repository' is not OWNER/NAME"
[[ $server =~ ^https://[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || die "server '$server' is not https://HOST"
host=${server#https://}

app_vars=(ARGOCD_GITHUB_APP_ID ARGOCD_GITHUB_APP_INSTALLATION_ID ARGOCD_GITHUB_APP_PRIVATE_KEY)
set_app=() missing_app=()
for v in "${app_vars[@]}"; do
  if [ -n "${!v:-}" ]; then set_app+=("$v"); else missing_app+=("$v"); fi
done
if [ -n "${ARGOCD_REPO_SSH_KEY:-}" ] && [ ${#set_app[@]} -gt 0 ]; then
  die "set either ARGOCD_REPO_SSH_KEY or the GitHub App secrets, not both"
elif [ -n "${ARGOCD_REPO_SSH_KEY:-}" ]; then
  mode=ssh url="ssh://git@$host/$repository.git"
elif [ ${#set_app[@]} -eq ${#app_vars[@]} ]; then
  mode=app url="https://$host/$repository.git"
elif [ ${#set_app[@]} -gt 0 ]; then
  die "GitHub App credential incomplete: missing ${missing_app[*]}"
else
  mode=public url="https://$host/$repository.git"
fi

case $action in
  url)
    echo "$url"
    exit 0
    ;;
  secret) ;;
  *) die "unknown action '$action' (url or secret)" ;;
esac

command -v kubectl >/dev/null 2>&1 || die "kubectl is required"

if [ "$mode" = public ]; then
  echo "no repository credential configured: Argo CD reads $url anonymously (public repository)" >&2
  kubectl -n "$NAMESPACE" delete secret "$SECRET" --ignore-not-found
  exit 0
fi

# Assemble the Secret client-side (nothing sent), label it, then apply it server-side.
if [ "$mode" = ssh ]; then
  kubectl -n "$NAMESPACE" create secret generic "$SECRET" --dry-run=client -o yaml \
    --from-literal=type=git --from-literal=url="$url" \
    --from-file=sshPrivateKey=<(printf '%s\n' "$ARGOCD_REPO_SSH_KEY")
else
  kubectl -n "$NAMESPACE" create secret generic "$SECRET" --dry-run=client -o yaml \
    --from-literal=type=git --from-literal=url="$url" \
    --from-literal=githubAppID="$ARGOCD_GITHUB_APP_ID" \
    --from-literal=githubAppInstallationID="$ARGOCD_GITHUB_APP_INSTALLATION_ID" \
    --from-file=githubAppPrivateKey=<(printf '%s\n' "$ARGOCD_GITHUB_APP_PRIVATE_KEY")
fi \
  | kubectl label --local -f - argocd.argoproj.io/secret-type=repository -o yaml \
  | kubectl apply --server-side --field-manager=counter-bootstrap --force-conflicts -f - >/dev/null
echo "Argo CD repository credential ($mode) written for $url" >&2
