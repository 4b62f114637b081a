output "bucket" {
  description = "The bucket holding the cluster's data."
  value       = aws_s3_bucket.data.bucket
}

output "irsa_role_arn" {
  description = "IAM role the pods assume."
  value       = aws_iam_role.irsa.arn
}

output "bootstrap_servers" {
  description = "Kafka bootstrap address inside the Kubernetes cluster."
  value       = "${var.name}-bootstrap.${var.namespace}.svc.cluster.local:9092"
}

output "sizing" {
  description = "The sizing module's figures (null without a workload)."
  value = var.workload == null ? null : {
    brokers                         = module.sizing[0].brokers
    object_store_requests_per_month = module.sizing[0].object_store_requests_per_month
    monthly_cost_usd                = module.sizing[0].monthly_cost_usd
  }
}
