# Offline checks of the sizing model (no provider): `terraform test` here.

variables {
  produce_mb_per_s = 100
  consumer_fanout  = 2
  partitions       = 600
  zones            = 3
}

run "small_cluster_is_three_brokers_one_per_zone" {
  command = plan

  assert {
    condition     = output.brokers == 3
    error_message = "100 MB/s in, 200 MB/s out, 600 partitions over 3 zones: want 3 brokers, got ${output.brokers}"
  }
  assert {
    condition     = output.consume_mb_per_s == 200
    error_message = "consume rate must default to produce x fan-out (200), got ${output.consume_mb_per_s}"
  }
  assert {
    condition     = output.brokers % var.zones == 0
    error_message = "broker count must be a multiple of the zones"
  }
}

run "requests_and_cost_follow_the_flush_and_upload_intervals" {
  command = plan

  assert {
    # 3 brokers x 10 WAL PUTs/s + 600 partitions x 2 objects / 60 s, over a month.
    condition     = output.object_store_requests_per_month.put == ceil((3 * 10 + 2 * 600 / 60) * 2629800)
    error_message = "PUTs a month: got ${output.object_store_requests_per_month.put}"
  }
  assert {
    condition     = abs(output.monthly_cost_usd.put_requests - output.object_store_requests_per_month.put / 1000 * 0.005) < 0.01
    error_message = "PUT cost must be PUTs / 1000 x $0.005"
  }
  assert {
    # 168 h of 100 MB/s = 60,480 GB at $0.023.
    condition     = output.stored_gb == 60480 && abs(output.monthly_cost_usd.storage - 60480 * 0.023) < 0.01
    error_message = "storage: got ${output.stored_gb} GB, $${output.monthly_cost_usd.storage}"
  }
  assert {
    condition     = output.monthly_cost_usd.total == output.monthly_cost_usd.requests + output.monthly_cost_usd.storage
    error_message = "total must add requests and storage"
  }
}

run "zone_local_reads_cost_gets_per_extra_zone" {
  command = plan

  variables {
    lagging_read_fraction = 0
  }

  assert {
    # Two other zones each read 100 MB/s once, in 1 MiB blocks.
    condition     = output.object_store_requests_per_month.get == ceil(200 * 1000000 / 1048576 * 2629800)
    error_message = "GETs a month with zone-local reads: got ${output.object_store_requests_per_month.get}"
  }
}

run "no_zone_local_reads_and_no_lag_means_no_gets" {
  command = plan

  variables {
    lagging_read_fraction = 0
    zone_local_reads      = false
  }

  assert {
    condition     = output.object_store_requests_per_month.get == 0
    error_message = "without lagging or zone-local reads nothing is read from the bucket"
  }
}

run "large_produce_rate_scales_brokers_by_produce_target" {
  command = plan

  variables {
    produce_mb_per_s = 1000
    consumer_fanout  = 2
  }

  assert {
    condition     = output.brokers_by_limit.produce == 20 && output.brokers == 21
    error_message = "1000 MB/s at 50 MB/s per broker: 20 brokers, rounded up to 21 over 3 zones; got ${output.brokers}"
  }
  assert {
    condition     = output.helm_values.autoscaling.minReplicas == output.brokers && output.helm_values.autoscaling.maxReplicas == 2 * output.brokers
    error_message = "autoscaling bounds must follow the broker count"
  }
}

run "many_partitions_add_brokers" {
  command = plan

  variables {
    produce_mb_per_s = 10
    partitions       = 9000
  }

  assert {
    condition     = output.brokers_by_limit.partitions == 5 && output.brokers == 6
    error_message = "9000 partitions at 2000 per broker: 5, rounded to 6 over 3 zones; got ${output.brokers}"
  }
}

run "resources_are_whole_units" {
  command = plan

  assert {
    condition     = output.broker_cpu_request_millicores % 100 == 0 && output.broker_memory_request_mib % 256 == 0
    error_message = "CPU in 100m steps and memory in 256 MiB steps"
  }
  assert {
    condition     = output.broker_cache_bytes >= 268435456 && output.broker_memory_request_mib * 1048576 > output.broker_cache_bytes
    error_message = "cache at least 256 MiB and within the memory request"
  }
  assert {
    condition     = output.helm_values.broker.config["cache-bytes"] == tostring(output.broker_cache_bytes)
    error_message = "helm values must carry the cache size"
  }
}

run "refuses_zero_produce_rate" {
  command = plan
  variables {
    produce_mb_per_s = 0
  }
  expect_failures = [var.produce_mb_per_s]
}

run "refuses_fractional_partitions" {
  command = plan
  variables {
    partitions = 10.5
  }
  expect_failures = [var.partitions]
}

run "refuses_seven_zones" {
  command = plan
  variables {
    zones = 7
  }
  expect_failures = [var.zones]
}

run "refuses_a_share_above_one" {
  command = plan
  variables {
    lagging_read_fraction = 1.5
  }
  expect_failures = [var.lagging_read_fraction]
}

run "refuses_negative_consume_rate" {
  command = plan
  variables {
    consume_mb_per_s = -1
  }
  expect_failures = [var.consume_mb_per_s]
}
