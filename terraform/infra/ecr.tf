# The origin's image repository. Tags are immutable: `sha-<git sha>` always names the same bytes,
# which is what makes `git revert` of the tag commit a real rollback.

resource "aws_ecr_repository" "origin" {
  name                 = var.ecr_repository_name
  image_tag_mutability = "IMMUTABLE"

  # Only scripts/teardown.sh sets var.teardown: then destroy deletes the images with the repository.
  force_delete = var.teardown

  image_scanning_configuration {
    scan_on_push = true
  }

  # AWS-managed KMS key: encryption at rest with no key to administer.
  encryption_configuration {
    encryption_type = "KMS"
  }
}

# NOTE: no rule for untagged images: the per-architecture manifests of a multi-arch image are
# untagged children of the tagged index, and expiring them would break pulls of that arch. The
# release builds without attestation manifests (release.yml: provenance/sbom false), so nothing
# untagged accumulates besides those children.
resource "aws_ecr_lifecycle_policy" "origin" {
  repository = aws_ecr_repository.origin.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Keep the last ${var.ecr_keep_release_images} release images (sha- tags)"
        selection = {
          tagStatus     = "tagged"
          tagPrefixList = ["sha-"]
          countType     = "imageCountMoreThan"
          countNumber   = var.ecr_keep_release_images
        }
        action = {
          type = "expire"
        }
      },
    ]
  })
}
