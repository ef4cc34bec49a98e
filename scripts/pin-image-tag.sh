#!/usr/bin/env bash
# Pin the origin image in the prod overlay: scripts/pin-image-tag.sh IMAGE TAG [OVERLAY_DIR]
#   IMAGE        registry/repository without tag, e.g. 123456789012.dkr.ecr.eu-west-2.amazonaws.com/counter-origin
#   TAG          sha-<40 hex>: the release workflow's immutable tag (never `latest`)
#   OVERLAY_DIR  default manifests/overlays/prod
# Edits only through `kustomize edit set image` (a structured edit of the images: entry, never a
# text substitution), so running it again with the same arguments leaves the file byte-identical.
# Prints "pinned" or "unchanged". Used by .github/workflows/release.yml and by hand for a hotfix.
set -euo pipefail

# The kustomize image name the base Deployment uses; the overlay maps it to IMAGE:TAG.
readonly IMAGE_NAME=counter-origin

die() { echo "pin-image-tag: $*" >&2; exit 1; }

[ $# -ge 2 ] && [ $# -le 3 ] || die "usage: $0 IMAGE TAG [OVERLAY_DIR]"
image=$1 tag=$2 overlay=${3:-manifests/overlays/prod}

[[ $tag =~ ^sha-[0-9a-f]{40}$ ]] || die "tag '$tag' is not sha-<40 lowercase hex> (tags are immutable commit ids)"
[[ $image =~ ^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._/-]*[a-z0-9])?)+$ ]] \
  || die "image '$image' is not registry/repository without a tag or digest"
[ -f "$overlay/kustomization.yaml" ] || die "no kustomization.yaml in '$overlay'"
command -v kustomize >/dev/null 2>&1 \
  || die "kustomize (v5) is required on PATH: 'kustomize edit set image' is the only way this file is edited"

before=$(sha256sum "$overlay/kustomization.yaml")
(cd "$overlay" && kustomize edit set image "$IMAGE_NAME=$image:$tag") || die "kustomize edit set image failed"
if [ "$before" = "$(sha256sum "$overlay/kustomization.yaml")" ]; then
  echo unchanged
else
  echo pinned
fi
