# Sizing of a Strata cluster from its workload. Every figure is derived in
# the open below; docs/kubernetes.md#sizing explains the model.

locals {
  mib             = 1048576
  seconds_a_month = 2629800 # 365.25 days / 12

  consume_mb_per_s = coalesce(var.consume_mb_per_s, var.produce_mb_per_s * var.consumer_fanout)

  # Brokers: enough for produce, consume and partitions, at least one per
  # zone, rounded up to a multiple of the zones so that each zone holds as
  # many brokers.
  brokers_for_in         = ceil(var.produce_mb_per_s / var.broker_target_mb_in_per_s)
  brokers_for_out        = ceil(local.consume_mb_per_s / var.broker_target_mb_out_per_s)
  brokers_for_partitions = ceil(var.partitions / var.max_partitions_per_broker)
  brokers_needed         = max(var.min_brokers, var.zones, local.brokers_for_in, local.brokers_for_out, local.brokers_for_partitions)
  brokers                = ceil(local.brokers_needed / var.zones) * var.zones

  in_per_broker_mb         = var.produce_mb_per_s / local.brokers
  out_per_broker_mb        = local.consume_mb_per_s / local.brokers
  partitions_per_broker    = ceil(var.partitions / local.brokers)
  in_per_broker_bytes      = local.in_per_broker_mb * 1000000
  wal_puts_per_broker_sec  = max(1000 / var.wal_flush_ms, local.in_per_broker_bytes / var.wal_flush_bytes)
  wal_buffer_bytes_default = 134217728

  # Resources per broker: a base plus a cost per MB/s (planning figures,
  # conservative next to docs/benchmarks.md; measure your own).
  cpu_millicores = ceil((250 + 10 * local.in_per_broker_mb + 3 * local.out_per_broker_mb + local.partitions_per_broker / 10) / 100) * 100

  # Block cache: the last cache_seconds of the broker's produce stream for
  # every consumer group, at least 256 MiB.
  cache_bytes = max(256 * local.mib, ceil(local.in_per_broker_bytes * var.cache_seconds * max(1, var.consumer_fanout) / local.mib) * local.mib)

  # Memory: cache + WAL buffer + 256 MiB base + 256 KiB per partition led,
  # rounded up to 256 MiB.
  memory_mib = ceil((local.cache_bytes / local.mib + local.wal_buffer_bytes_default / local.mib + 256 + local.partitions_per_broker / 4) / 256) * 256

  # Object store requests a month.
  wal_puts = local.brokers * local.wal_puts_per_broker_sec * local.seconds_a_month
  # Each partition uploads a segment (log + index) every upload interval, or
  # each time it fills a segment when that comes sooner.
  segment_uploads_per_sec = max(var.partitions / var.upload_interval_s, var.produce_mb_per_s / var.segment_mb)
  segment_puts            = 2 * local.segment_uploads_per_sec * local.seconds_a_month
  puts                    = ceil(local.wal_puts + local.segment_puts)
  # Reads from object storage in 1 MiB blocks: lagging readers, plus each
  # other zone reading each produced byte once when reads are zone-local.
  get_mb_per_s = local.consume_mb_per_s * var.lagging_read_fraction + (var.zone_local_reads ? var.produce_mb_per_s * (var.zones - 1) : 0)
  gets         = ceil(local.get_mb_per_s * 1000000 / local.mib * local.seconds_a_month)

  stored_gb = var.produce_mb_per_s * var.retention_hours * 3600 / 1000

  put_cost     = local.puts / 1000 * var.price_put_per_1000
  get_cost     = local.gets / 1000 * var.price_get_per_1000
  storage_cost = local.stored_gb * var.price_gb_month
}
