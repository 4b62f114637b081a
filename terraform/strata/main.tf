# Strata on EKS: the bucket, a least-privilege IAM policy on the cluster's
# prefix, an IRSA role for the pods' service account, and the Helm release.

data "aws_partition" "current" {}

locals {
  service_account = var.name
  prefix          = trim(var.prefix, "/")
  bucket_arn      = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}"
}

# ------------------------------------------------------------------ bucket

# Access logging, replication and event notifications are left to the
# account's own policies: the bucket holds a stream's data, not an audit trail.
resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_18:access logs go to an account-wide log bucket this module does not know
  #checkov:skip=CKV_AWS_144:cross-region replication is a per-account choice; Strata needs one region
  #checkov:skip=CKV2_AWS_62:no consumer of bucket event notifications
  #checkov:skip=CKV_AWS_21:objects are immutable and deleted by retention on purpose; versions would keep expired data
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != null
  }
}

# Objects are written once (create-only) and deleted by Strata's own GC and
# retention: versioning would only keep deleted data around, and billed.
resource "aws_s3_bucket_versioning" "data" {
  #checkov:skip=CKV_AWS_21:objects are immutable and deleted by retention on purpose; versions would keep expired data
  bucket = aws_s3_bucket.data.id
  versioning_configuration {
    status = "Disabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      local.bucket_arn,
      "${local.bucket_arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  bucket     = aws_s3_bucket.data.id
  policy     = data.aws_iam_policy_document.tls_only.json
  depends_on = [aws_s3_bucket_public_access_block.data]
}

# ------------------------------------------------------------------ IAM

# What a broker does: create-only PUTs, GETs (ranged), HEAD, LIST and
# DELETE (GC, retention), multipart for large segments; under the prefix only.
data "aws_iam_policy_document" "objects" {
  statement {
    sid = "ObjectsUnderPrefix"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${local.bucket_arn}/${local.prefix}/*"]
  }
  statement {
    sid       = "ListPrefix"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.prefix, "${local.prefix}/*"]
    }
  }
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "UseBucketKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_policy" "objects" {
  name        = "${var.name}-objects"
  description = "Strata ${var.name}: objects under s3://${var.bucket_name}/${local.prefix}/"
  policy      = data.aws_iam_policy_document.objects.json
  tags        = var.tags
}

data "aws_iam_policy_document" "irsa_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${local.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  name                 = "${var.name}-irsa"
  description          = "Assumed by the Strata pods' service account ${var.namespace}/${local.service_account}"
  assume_role_policy   = data.aws_iam_policy_document.irsa_trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "irsa_objects" {
  role       = aws_iam_role.irsa.name
  policy_arn = aws_iam_policy.objects.arn
}

# ------------------------------------------------------------------ sizing

module "sizing" {
  source = "../sizing"
  count  = var.workload == null ? 0 : 1

  produce_mb_per_s = var.workload.produce_mb_per_s
  consumer_fanout  = var.workload.consumer_fanout
  partitions       = var.workload.partitions
  retention_hours  = var.workload.retention_hours
  zones            = var.workload.zones
}

# ------------------------------------------------------------------ release

resource "helm_release" "strata" {
  name             = var.name
  namespace        = var.namespace
  create_namespace = true
  chart            = coalesce(var.chart, "${path.module}/../../helm/strata")
  repository       = var.chart_repository
  version          = var.chart_version
  wait             = true
  timeout          = 900

  values = concat(
    [yamlencode({
      fullnameOverride = var.name
      image            = var.image
      serviceAccount = {
        create = true
        name   = local.service_account
      }
      objectStore = {
        bucket = aws_s3_bucket.data.bucket
        prefix = local.prefix
        region = aws_s3_bucket.data.region
        credentials = {
          mode        = "irsa"
          irsaRoleArn = aws_iam_role.irsa.arn
        }
      }
      controller = {
        replicas = var.controllers
      }
    })],
    var.workload == null ? [] : [yamlencode(module.sizing[0].helm_values)],
    var.values,
  )

  depends_on = [
    aws_iam_role_policy_attachment.irsa_objects,
    aws_s3_bucket_public_access_block.data,
    aws_s3_bucket_server_side_encryption_configuration.data,
  ]
}
