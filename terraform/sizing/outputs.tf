output "brokers" {
  description = "Brokers for the workload at the per-broker targets (a multiple of the zones)."
  value       = local.brokers
}

output "brokers_by_limit" {
  description = "Brokers each limit asks for: produce, consume, partitions."
  value = {
    produce    = local.brokers_for_in
    consume    = local.brokers_for_out
    partitions = local.brokers_for_partitions
  }
}

output "broker_cpu_request_millicores" {
  description = "CPU request of one broker, millicores."
  value       = local.cpu_millicores
}

output "broker_memory_request_mib" {
  description = "Memory request (and limit) of one broker, MiB."
  value       = local.memory_mib
}

output "broker_cache_bytes" {
  description = "--cache-bytes of one broker."
  value       = local.cache_bytes
}

output "consume_mb_per_s" {
  description = "Consume rate used (given, or produce x fan-out)."
  value       = local.consume_mb_per_s
}

output "object_store_requests_per_month" {
  description = "Object store requests a month: PUTs (WAL objects and segments) and GETs (1 MiB block reads)."
  value = {
    put = local.puts
    get = local.gets
  }
}

output "stored_gb" {
  description = "Data kept in the bucket at steady state (produce rate x retention), GB."
  value       = local.stored_gb
}

output "monthly_cost_usd" {
  description = "Monthly object storage cost at the given list prices: requests and storage (transfer inside the region is free on S3)."
  value = {
    put_requests = local.put_cost
    get_requests = local.get_cost
    requests     = local.put_cost + local.get_cost
    storage      = local.storage_cost
    total        = local.put_cost + local.get_cost + local.storage_cost
  }
}

output "helm_values" {
  description = "Values for helm/strata from this sizing (broker resources, cache, autoscaling bounds)."
  value = {
    broker = {
      replicas = local.brokers
      resources = {
        requests = {
          cpu    = "${local.cpu_millicores}m"
          memory = "${local.memory_mib}Mi"
        }
        limits = {
          memory = "${local.memory_mib}Mi"
        }
      }
      config = {
        "cache-bytes" = tostring(local.cache_bytes)
      }
    }
    autoscaling = {
      minReplicas = local.brokers
      maxReplicas = local.brokers * 2
      bytesIn = {
        targetPerBroker = "${floor(var.broker_target_mb_in_per_s * 1000000)}"
      }
    }
  }
}
