variable "produce_mb_per_s" {
  description = "Produce rate of the whole cluster, MB/s (10^6 bytes) of record batches as producers send them (after compression)."
  type        = number
  validation {
    condition     = var.produce_mb_per_s > 0 && var.produce_mb_per_s <= 100000
    error_message = "produce_mb_per_s must be above 0 and at most 100000 (MB/s of produced record batches)."
  }
}

variable "consume_mb_per_s" {
  description = "Consume rate of the whole cluster, MB/s, all consumer groups together. Null: produce_mb_per_s x consumer_fanout."
  type        = number
  default     = null
  validation {
    condition     = var.consume_mb_per_s == null || try(var.consume_mb_per_s >= 0 && var.consume_mb_per_s <= 1000000, false)
    error_message = "consume_mb_per_s must be null or between 0 and 1000000 MB/s."
  }
}

variable "consumer_fanout" {
  description = "Consumer groups reading every record (each reads the whole produce stream once)."
  type        = number
  default     = 1
  validation {
    condition     = var.consumer_fanout >= 0 && var.consumer_fanout <= 1000 && floor(var.consumer_fanout) == var.consumer_fanout
    error_message = "consumer_fanout must be a whole number of consumer groups between 0 and 1000."
  }
}

variable "lagging_read_fraction" {
  description = "Share of consumed bytes read behind the brokers' local hot segments (catch-up, replays), i.e. from object storage through the block cache."
  type        = number
  default     = 0.1
  validation {
    condition     = var.lagging_read_fraction >= 0 && var.lagging_read_fraction <= 1
    error_message = "lagging_read_fraction is a share: between 0 and 1."
  }
}

variable "retention_hours" {
  description = "How long records are kept (topics' retention.ms), in hours."
  type        = number
  default     = 168
  validation {
    condition     = var.retention_hours > 0 && var.retention_hours <= 87600
    error_message = "retention_hours must be above 0 and at most 87600 (ten years)."
  }
}

variable "partitions" {
  description = "Partitions of all topics together."
  type        = number
  validation {
    condition     = var.partitions >= 1 && var.partitions <= 200000 && floor(var.partitions) == var.partitions
    error_message = "partitions must be a whole number between 1 and 200000."
  }
}

variable "zones" {
  description = "Availability zones the brokers spread over (clients use client.rack for zone-local reads)."
  type        = number
  default     = 3
  validation {
    condition     = contains([1, 2, 3, 4, 5, 6], var.zones)
    error_message = "zones must be a whole number between 1 and 6."
  }
}

variable "zone_local_reads" {
  description = "Consumers set client.rack, so each zone reads each produced byte once from object storage instead of crossing zones."
  type        = bool
  default     = true
}

variable "broker_target_mb_in_per_s" {
  description = "Produce MB/s one broker should take at the target load (the HPA's per-broker target). Replace with a figure measured on your instance type."
  type        = number
  default     = 50
  validation {
    condition     = var.broker_target_mb_in_per_s > 0 && var.broker_target_mb_in_per_s <= 2000
    error_message = "broker_target_mb_in_per_s must be above 0 and at most 2000."
  }
}

variable "broker_target_mb_out_per_s" {
  description = "Consume MB/s one broker should serve at the target load."
  type        = number
  default     = 150
  validation {
    condition     = var.broker_target_mb_out_per_s > 0 && var.broker_target_mb_out_per_s <= 10000
    error_message = "broker_target_mb_out_per_s must be above 0 and at most 10000."
  }
}

variable "max_partitions_per_broker" {
  description = "Most partitions one broker should lead."
  type        = number
  default     = 2000
  validation {
    condition     = var.max_partitions_per_broker >= 1 && floor(var.max_partitions_per_broker) == var.max_partitions_per_broker
    error_message = "max_partitions_per_broker must be a whole number of at least 1."
  }
}

variable "min_brokers" {
  description = "Fewest brokers whatever the load (at least one per zone is added on top of this rule)."
  type        = number
  default     = 3
  validation {
    condition     = var.min_brokers >= 1 && floor(var.min_brokers) == var.min_brokers
    error_message = "min_brokers must be a whole number of at least 1."
  }
}

variable "wal_flush_ms" {
  description = "Brokers' --wal-flush-ms: one WAL PUT per broker per interval (more when --wal-flush-bytes fill sooner)."
  type        = number
  default     = 100
  validation {
    condition     = var.wal_flush_ms >= 1 && var.wal_flush_ms <= 60000
    error_message = "wal_flush_ms must be between 1 and 60000 ms."
  }
}

variable "wal_flush_bytes" {
  description = "Brokers' --wal-flush-bytes."
  type        = number
  default     = 8388608
  validation {
    condition     = var.wal_flush_bytes >= 1024
    error_message = "wal_flush_bytes must be at least 1024."
  }
}

variable "upload_interval_s" {
  description = "Brokers' --upload-interval-ms in seconds: each partition with new data uploads a segment (log + index objects) this often."
  type        = number
  default     = 60
  validation {
    condition     = var.upload_interval_s >= 1
    error_message = "upload_interval_s must be at least 1 second."
  }
}

variable "segment_mb" {
  description = "segment.bytes in MB: a partition also uploads when its segment reaches this size."
  type        = number
  default     = 1073.741824
  validation {
    condition     = var.segment_mb >= 1
    error_message = "segment_mb must be at least 1 MB."
  }
}

variable "cache_seconds" {
  description = "Seconds of each broker's produce stream its block cache should hold for readers a little behind."
  type        = number
  default     = 30
  validation {
    condition     = var.cache_seconds >= 0 && var.cache_seconds <= 3600
    error_message = "cache_seconds must be between 0 and 3600."
  }
}

variable "price_put_per_1000" {
  description = "USD per 1,000 PUT/COPY/POST/LIST requests (S3 Standard list price, us-east-1)."
  type        = number
  default     = 0.005
  validation {
    condition     = var.price_put_per_1000 >= 0
    error_message = "price_put_per_1000 must not be negative."
  }
}

variable "price_get_per_1000" {
  description = "USD per 1,000 GET/SELECT requests (S3 Standard list price, us-east-1)."
  type        = number
  default     = 0.0004
  validation {
    condition     = var.price_get_per_1000 >= 0
    error_message = "price_get_per_1000 must not be negative."
  }
}

variable "price_gb_month" {
  description = "USD per GB-month stored (S3 Standard list price, us-east-1, first 50 TB)."
  type        = number
  default     = 0.023
  validation {
    condition     = var.price_gb_month >= 0
    error_message = "price_gb_month must not be negative."
  }
}
