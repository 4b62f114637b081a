variable "name" {
  description = "Name of the cluster: the Helm release, and the prefix of the IAM role and policy."
  type        = string
  default     = "strata"
  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$", var.name))
    error_message = "name must be a DNS label of at most 32 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "namespace" {
  description = "Kubernetes namespace of the release (created when missing)."
  type        = string
  default     = "strata"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label."
  }
}

variable "bucket_name" {
  description = "Name of the S3 bucket to create."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens."
  }
}

variable "prefix" {
  description = "Key prefix of this cluster inside the bucket; the IAM policy grants nothing outside it."
  type        = string
  default     = "strata"
  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$", var.prefix))
    error_message = "prefix must be non-empty, without leading or trailing slash."
  }
}

variable "kms_key_arn" {
  description = "KMS key for bucket encryption (SSE-KMS); null: SSE-S3 (AES256)."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects (every record of the cluster)."
  type        = bool
  default     = false
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads (of crashed brokers) are aborted."
  type        = number
  default     = 1
  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number of days, at least 1."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (IRSA)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must look like arn:aws:iam::<account>:oidc-provider/<issuer host and path>."
  }
}

variable "oidc_issuer" {
  description = "The OIDC issuer of the EKS cluster without https:// (e.g. oidc.eks.eu-west-1.amazonaws.com/id/ABC...)."
  type        = string
  validation {
    condition     = !startswith(var.oidc_issuer, "https://") && length(var.oidc_issuer) > 0
    error_message = "oidc_issuer must be given without the https:// scheme."
  }
}

variable "chart" {
  description = "Chart to install: a path (default: the chart of this repository) or a chart name with chart_repository."
  type        = string
  default     = null
}

variable "chart_repository" {
  description = "Helm repository URL of the chart; null for a local path."
  type        = string
  default     = null
}

variable "chart_version" {
  description = "Chart version (repository charts only)."
  type        = string
  default     = null
}

variable "image" {
  description = "Image repository and tag of the brokers and controllers."
  type = object({
    repository = string
    tag        = string
  })
}

variable "controllers" {
  description = "Controller voters: 1, 3 or 5."
  type        = number
  default     = 3
  validation {
    condition     = contains([1, 3, 5], var.controllers)
    error_message = "controllers must be 1, 3 or 5."
  }
}

variable "workload" {
  description = "Workload the broker pool is sized for (inputs of the sizing module); null: the chart's defaults."
  type = object({
    produce_mb_per_s = number
    consumer_fanout  = optional(number, 1)
    partitions       = number
    retention_hours  = optional(number, 168)
    zones            = optional(number, 3)
  })
  default = null
}

variable "values" {
  description = "Extra Helm values documents (YAML), applied after the module's own."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of the AWS resources."
  type        = map(string)
  default     = {}
}
