#!/usr/bin/env python3
"""Turn a scripts/bench results folder into docs/benchmarks.md.

usage: report.py RESULTS_DIR OUT_FILE

RESULTS_DIR holds meta.env (key=value lines about the machine and the run)
and, per run, NAME.rN.json (strata-loadgen's output), NAME.rN.proc.json
(broker peak RSS after the run), NAME.rN.stderr and NAME.rN.broker.log.
Standard library only.
"""

import glob
import json
import os
import re
import statistics
import sys

TARGET_MB_S = 150.0

WORKLOADS = [
    ("produce-p1-acks1", "Produce, 1 partition, acks=1, max rate"),
    ("produce-p16-acks1", "Produce, 16 partitions, acks=1, max rate"),
    ("produce-p1-acksall", "Produce, 1 partition, acks=all, max rate"),
    ("produce-p16-acksall", "Produce, 16 partitions, acks=all, max rate"),
    ("consume-p16", "Consume the 16-partition acks=1 backlog from the beginning"),
    ("fixed-p16-acks1", "Produce at a fixed rate, 16 partitions, acks=1"),
    ("fixed-p16-acksall", "Produce at a fixed rate, 16 partitions, acks=all"),
    ("e2e-p16-acks1", "End to end (produce + concurrent consume) at a fixed rate, 16 partitions, acks=1"),
]

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_meta(results):
    meta = {}
    with open(os.path.join(results, "meta.env")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    return meta


def load_runs(results, name):
    runs = []
    for path in sorted(glob.glob(os.path.join(results, f"{name}.r*.json"))):
        if path.endswith((".proc.json", ".stop.json")):
            continue
        with open(path) as f:
            j = json.load(f)
        base = path[: -len(".json")]
        proc = {}
        if os.path.exists(base + ".proc.json"):
            with open(base + ".proc.json") as f:
                proc = json.load(f)
        stop = {}
        if os.path.exists(base + ".stop.json"):
            with open(base + ".stop.json") as f:
                stop = json.load(f)
        runs.append(metrics(j, proc, stop))
    return runs


def error_total(j):
    e = j["errors"]
    if "produce" in e:
        return e["produce"]["total"] + e["consume"]["count"] + e["not_consumed"]
    return e.get("total", e.get("count", 0))


def metrics(j, proc, stop):
    b = j.get("broker") or {}
    lg = j.get("loadgen") or {}
    mc = j.get("machine") or {}
    mode = j["mode"]
    m = {
        "mb_per_s": j.get("mb_per_s"),
        "mib_per_s": j.get("mib_per_s"),
        "records_per_s": j.get("records_per_s"),
        "broker_cpu_pct": b.get("cpu_pct"),
        "loadgen_cpu_pct": lg.get("cpu_pct"),
        "other_cpu_pct": mc.get("other_pct"),
        "machine_busy_pct": mc.get("busy_pct"),
        "cpus": mc.get("cpus"),
        "steal_pct": mc.get("steal_pct"),
        "peak_rss_mib": proc["vm_hwm_kb"] / 1024 if proc.get("vm_hwm_kb") else None,
        "errors": error_total(j),
        "stop_exit": stop.get("exit_code"),
        "stop_s": stop.get("stop_s"),
    }
    cpu = b.get("cpu_s")
    if mode == "consume":
        mb = j["bytes"] / 1e6
        m["complete"] = j.get("complete")
    else:
        mb = j["mb_per_s"] * j["window_s"]
    m["mb_per_broker_cpu_s"] = mb / cpu if cpu else None
    lat = j.get("latency") if mode == "produce" else j.get("produce_latency")
    if lat:
        for q in ("p50", "p99", "p99_9", "max"):
            m[f"lat_{q}"] = lat.get(f"{q}_ms")
    if mode == "e2e":
        for q in ("p50", "p99", "p99_9", "max"):
            m[f"e2e_{q}"] = j["e2e_latency"].get(f"{q}_ms")
    if j.get("max_send_lag_ms") is not None:
        m["send_lag_ms"] = j["max_send_lag_ms"]
    if (j.get("config") or {}).get("rate"):
        m["rate"] = j["config"]["rate"]
    return m


ROWS = [
    ("mb_per_s", "MB/s (10^6 B of record values)", 1),
    ("records_per_s", "records/s", 0),
    ("mb_per_broker_cpu_s", "MB per broker CPU-second", 1),
    ("lat_p50", "produce latency p50 (ms)", 2),
    ("lat_p99", "produce latency p99 (ms)", 2),
    ("lat_p99_9", "produce latency p99.9 (ms)", 2),
    ("lat_max", "produce latency max (ms)", 2),
    ("e2e_p50", "end-to-end latency p50 (ms)", 2),
    ("e2e_p99", "end-to-end latency p99 (ms)", 2),
    ("e2e_p99_9", "end-to-end latency p99.9 (ms)", 2),
    ("e2e_max", "end-to-end latency max (ms)", 2),
    ("send_lag_ms", "load generator behind schedule, max (ms)", 2),
    ("broker_cpu_pct", "broker CPU (% of one core)", 0),
    ("loadgen_cpu_pct", "load generator CPU (% of one core)", 0),
    ("other_cpu_pct", "other processes CPU (% of one core)", 0),
    ("steal_pct", "CPU stolen by the hypervisor (% of one core)", 0),
    ("machine_busy_pct", "whole machine CPU (% of one core; 200 = both cores busy)", 0),
    ("peak_rss_mib", "broker peak RSS (MiB)", 0),
    ("errors", "client errors", 0),
]


def fmt(v, digits):
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def values(runs, key):
    return [r[key] for r in runs if r.get(key) is not None]


def med(runs, key):
    v = values(runs, key)
    return statistics.median(v) if v else None


def spread(runs, key, digits):
    v = values(runs, key)
    if not v:
        return "–"
    if len(v) == 1:
        return fmt(v[0], digits)
    return f"{fmt(min(v), digits)} – {fmt(max(v), digits)}"


def table(runs):
    out = ["| metric | median | min – max | runs |", "|---|---:|---:|---|"]
    for key, label, digits in ROWS:
        v = values(runs, key)
        if not v:
            continue
        out.append(
            f"| {label} | {fmt(statistics.median(v), digits)} | {spread(runs, key, digits)} "
            f"| {', '.join(fmt(x, digits) for x in v)} |"
        )
    return "\n".join(out)


def broker_log_findings(results):
    lines = {}
    for path in glob.glob(os.path.join(results, "*.broker.log")):
        with open(path, errors="replace") as f:
            for line in f:
                line = ANSI.sub("", line).strip()
                if " WARN " in line or " ERROR " in line or "panicked" in line:
                    # Drop the timestamp so repeats group together.
                    key = re.sub(r"^\S+\s+", "", line)
                    lines[key] = lines.get(key, 0) + 1
    return lines


def client_warnings(results):
    lines = {}
    for path in glob.glob(os.path.join(results, "*.stderr")):
        with open(path, errors="replace") as f:
            for line in f:
                line = line.strip()
                if line:
                    lines[line] = lines.get(line, 0) + 1
    return lines


def noisy_count(runs):
    return sum(1 for rs in runs.values() for r in rs if (r.get("other_cpu_pct") or 0) > 10)


def bottleneck(r, disk_mb_s, acks_all, writes=True):
    b, lg, mb = med(r, "broker_cpu_pct"), med(r, "loadgen_cpu_pct"), med(r, "mb_per_s")
    busy, other = med(r, "machine_busy_pct"), med(r, "other_cpu_pct")
    cpus = med(r, "cpus") or 2
    if b is None or lg is None:
        return "no CPU samples"
    notes = []
    if b >= 90:
        notes.append("broker core saturated")
    if lg >= 90:
        notes.append("load-generator core saturated")
    if busy is not None and busy >= 90 * cpus:
        notes.append(f"whole machine busy ({busy:.0f}% of {100 * cpus}%, {other:.0f}% of it outside "
                     "the broker and the load generator): CPU-bound as a whole")
    if writes and disk_mb_s and mb and mb >= 0.8 * disk_mb_s:
        notes.append(f"at {100 * mb / disk_mb_s:.0f}% of the disk's fdatasync bandwidth")
    if not notes:
        notes.append("no core saturated: waiting on I/O" + (" / durability" if acks_all else "")
                     + " or on the request pipeline")
    return "; ".join(notes)


def main():
    results, out = sys.argv[1], sys.argv[2]
    meta = load_meta(results)
    runs = {name: load_runs(results, name) for name, _ in WORKLOADS}
    disk = float(meta["disk_seq_write_mb_s"]) if meta.get("disk_seq_write_mb_s") else None
    quick = meta.get("quick") == "1"
    reps = meta.get("reps", "?")
    rate = meta.get("fixed_rate", "?")

    doc = []
    w = doc.append
    w("# Benchmarks")
    w("")
    w(f"Measured by `scripts/bench`{' --quick' if quick else ''} on {meta['date']}; "
      f"the whole run took {int(meta.get('total_s', 0)) // 60} min {int(meta.get('total_s', 0)) % 60} s"
      + (f", {int(meta['quiet_wait_s']) // 60} min {int(meta['quiet_wait_s']) % 60} s of it waiting for "
         "other processes to leave the machine quiet" if int(meta.get("quiet_wait_s") or 0) else "")
      + ". "
      "This file is written by that script: rerun it rather than editing numbers by hand.")
    w("")
    if quick:
        w("> **Quick run** (1 repetition, 10 s per run): a smoke check, not numbers to compare.")
        w("")

    all_err = sum(r["errors"] for rs in runs.values() for r in rs)
    bad_stop = [r for rs in runs.values() for r in rs if r.get("stop_exit") not in (None, 0)]
    incomplete = [r for r in runs["consume-p16"] if r.get("complete") is False]
    noisy = [r for rs in runs.values() for r in rs if (r.get("other_cpu_pct") or 0) > 10]
    if noisy:
        worst = max(r["other_cpu_pct"] for r in noisy)
        w(f"> **Noise:** in {noisy_count(runs)} of {sum(len(rs) for rs in runs.values())} runs other processes "
          f"on this shared machine used more than 10% of a core (worst {worst:.0f}%); "
          "see the 'other processes CPU' rows.")
        w("")
    if all_err or bad_stop or incomplete:
        w(f"> **Warning:** {all_err} client errors, {len(bad_stop)} unclean broker stops and "
          f"{len(incomplete)} incomplete consume runs in this run; see the tables and the raw results.")
        w("")

    # ------------------------------------------------------------ target
    p16 = runs["produce-p16-acks1"]
    w("## Target")
    w("")
    if p16:
        m, lo = med(p16, "mb_per_s"), min(values(p16, "mb_per_s"))
        mib = med(p16, "mib_per_s")
        met = m >= TARGET_MB_S
        every = lo >= TARGET_MB_S
        w(f"Issue target on this 2-core machine: acks=1 produce with 16 partitions at "
          f"**≥ {TARGET_MB_S:.0f} MB/s**.")
        w("")
        w(f"**{'Met' if met else 'Not met'}**: median {m:.1f} MB/s ({mib:.1f} MiB/s) over {len(p16)} runs, "
          f"slowest run {lo:.1f} MB/s"
          + (" — met in every run." if every else (" — but not in every run." if met else ".")))
    else:
        w("No acks=1 16-partition run in this result set: target not evaluated.")
    w("")

    # ------------------------------------------------------------ summary
    w("## Summary (medians)")
    w("")
    w("| workload | MB/s | min – max | records/s | p99 latency (ms) | broker CPU % | MB per broker CPU-s | peak RSS (MiB) |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, title in WORKLOADS:
        r = runs[name]
        if not r:
            continue
        p99 = med(r, "e2e_p99") if name.startswith("e2e") else med(r, "lat_p99")
        if name.startswith("e2e"):
            label = f"{title} (p99 is end to end)"
        elif name.startswith("fixed"):
            label = f"{title} ({rate} rec/s)"
        else:
            label = title
        w(f"| {label} | {fmt(med(r, 'mb_per_s'), 1)} | {spread(r, 'mb_per_s', 1)} | "
          f"{fmt(med(r, 'records_per_s'), 0)} | {fmt(p99, 2)} | {fmt(med(r, 'broker_cpu_pct'), 0)} | "
          f"{fmt(med(r, 'mb_per_broker_cpu_s'), 1)} | {fmt(med(r, 'peak_rss_mib'), 0)} |")
    w("")
    w("Max-rate latencies are measured from the moment librdkafka accepted the record, so they "
      "mostly show how full the client's queue was; read latency from the fixed-rate rows. "
      "There, 'load generator behind schedule' is the longest the sending loop fell behind; "
      "records it sent late still count from their intended time, so a stall of the load generator "
      "itself makes the latency worse, never better.")
    w("")

    # ------------------------------------------------------------ machine
    w("## Machine and versions")
    w("")
    w(f"- CPU: {meta.get('cpu_model')} — {meta.get('cpus')} cores"
      + (f" (virtual machine, {meta['hypervisor']})" if meta.get("hypervisor") else ""))
    w(f"- RAM: {meta.get('mem_total')}")
    w(f"- Kernel: {meta.get('kernel')}")
    w(f"- Data directory filesystem: {meta.get('data_fs')}")
    w(f"- Disk, sequential write with fdatasync: **{meta.get('disk_seq_write_mb_s')} MB/s** median of "
      f"3 before the workloads ({meta.get('disk_seq_write_runs', '').replace(' ', ', ')} MB/s), "
      f"{meta.get('disk_seq_write_after_mb_s', '–')} MB/s after them (`{meta.get('disk_tool')}`); "
      f"one 4 KiB O_DSYNC write: {meta.get('disk_sync_write_us')} µs. A virtual disk: its speed "
      "varies with the host, and a flush may not reach physical media.")
    dirty = meta.get("git_dirty", "0")
    w(f"- Broker: {meta.get('strata_version')}, commit {meta.get('git_commit')}"
      + (f" plus {dirty} uncommitted changed files" if dirty not in ("", "0") else "")
      + f"; release binary sha256 {meta.get('strata_sha256', '?')}…, copied at the start so every run used the same one")
    w(f"- Load generator: {meta.get('loadgen_version')} (`benches/loadgen`), librdkafka {meta.get('librdkafka')}")
    w(f"- {meta.get('rustc')}")
    w("")

    # ------------------------------------------------------------ method
    w("## Method")
    w("")
    w(f"- Each workload ran {reps} times, repetitions interleaved across workloads; tables give the "
      "median and the spread (min – max) of the runs. Every produce run starts a fresh broker "
      "with an empty data directory on the filesystem above.")
    w(f"- Each run: {meta.get('warmup_s')} s warm-up (sent, not counted), then {meta.get('duration_s')} s measured. "
      "Throughput counts records acknowledged inside the measured window.")
    w("- Broker pinned to core 0 and load generator to core 1 (`taskset`); both on this one machine, over loopback.")
    w("- Broker: `strata serve` with its defaults apart from the listeners and `--data-dir`, so its "
      "object store is the default `file://<data-dir>/objects` on the same disk (see `strata serve --help`).")
    w("- Producer: one librdkafka producer instance, 1024-byte incompressible record values, no key "
      "(librdkafka's sticky partitioner), `linger.ms=5`, `batch.size=1000000`, no compression, "
      "idempotence off. acks=all is answered only once the broker has made the batch durable "
      "(DESIGN.md, data path).")
    w(f"- Fixed-rate runs send at {rate} records/s, 50% of the median acks=1 16-partition max rate. "
      "Latency runs from each record's *intended* send time, so a stall counts against every record "
      "that should have been sent during it (no coordinated omission).")
    w("- End to end: the consumer (same process) reads the partitions while they are written; "
      "latency is from the intended send time, stamped in the value, to receipt by the consumer.")
    w("- Consume: every partition assigned from the beginning (no group), reading the backlog of "
      "the acks=1 16-partition run just before it on the same broker; the data is still in the page cache.")
    w("- MB = 10^6 bytes of record values (keys, headers and protocol framing not counted). "
      "Broker CPU = utime + stime from `/proc/PID/stat` over the measured window, as % of one core "
      "(100% = its core saturated). Peak RSS = `VmHWM` from `/proc/PID/status` after the run "
      "(reset before the consume run).")
    w("")

    # ------------------------------------------------------------ detail
    w("## Results per workload")
    for name, title in WORKLOADS:
        r = runs[name]
        if not r:
            continue
        w("")
        w(f"### {title}" + (f" ({rate} records/s)" if name.startswith(("fixed", "e2e")) else ""))
        w("")
        w(table(r))
    w("")

    # ------------------------------------------------------------ where time goes
    w("## Where the time goes")
    w("")
    w(f"Disk bandwidth with fdatasync: {meta.get('disk_seq_write_mb_s')} MB/s. CPU columns are "
      "medians in % of one core over the measured window; 'other processes' is everything on the "
      "machine besides the broker and the load generator (other users' work, and kernel threads "
      "such as page-cache writeback of the broker's own data). Pinning keeps the broker and the "
      "load generator apart, not other processes away from their cores.")
    w("")
    w("| workload | MB/s | broker CPU % | load generator CPU % | other processes CPU % | whole machine % | reading |")
    w("|---|---:|---:|---:|---:|---:|---|")
    for name, title in WORKLOADS:
        r = runs[name]
        if not r or not name.startswith(("produce", "consume")):
            continue
        w(f"| {title} | {fmt(med(r, 'mb_per_s'), 1)} | {fmt(med(r, 'broker_cpu_pct'), 0)} | "
          f"{fmt(med(r, 'loadgen_cpu_pct'), 0)} | {fmt(med(r, 'other_cpu_pct'), 0)} | "
          f"{fmt(med(r, 'machine_busy_pct'), 0)} | {bottleneck(r, disk, 'acksall' in name, name.startswith('produce'))} |")
    w("")
    findings = broker_log_findings(results)
    if findings:
        w("Broker warnings and errors logged during the runs:")
        w("")
        for line, n in sorted(findings.items(), key=lambda kv: -kv[1])[:15]:
            w(f"- {n}× `{line[:300]}`")
    else:
        w("The broker logged no warnings or errors during the runs.")
    warns = client_warnings(results)
    w("")
    if warns:
        w("Load generator messages (stderr):")
        w("")
        for line, n in sorted(warns.items(), key=lambda kv: -kv[1])[:15]:
            w(f"- {n}× `{line[:300]}`")
    else:
        w("The load generator reported no client warnings.")
    w("")

    # ------------------------------------------------------------ peer
    w("## Peer comparison (Tansu)")
    w("")
    w("The tables above are Strata alone, measured by `scripts/bench` with Debian's librdkafka 2.0.2. Strata side by side with Tansu 0.6.0 (memory://, sqlite:// and S3), same machine, same client (librdkafka 2.16), same pinning and workloads, with every number as a ratio, is the section [Strata and Tansu side by side](#strata-and-tansu-side-by-side) below, written by `scripts/bench compare`.")
    w("")

    # ------------------------------------------------------------ reproduce
    w("## How to reproduce")
    w("")
    w("```sh")
    w("apt-get install -y librdkafka-dev pkg-config   # system librdkafka for the load generator")
    w("scripts/bench            # full run: ~11 min of runs, plus any wait for a quiet machine;")
    w("                         # rewrites its part of docs/benchmarks.md")
    w("scripts/bench --quick    # 1 repetition, 10 s runs; report goes to the results folder")
    w("scripts/bench compare    # Strata and Tansu 0.6.0 side by side (~35 min; the first run also")
    w("                         # builds Tansu, ~25 min); rewrites the compare section below")
    w("```")
    w("")
    w("`scripts/bench --help` lists the options (repetitions, durations, data directory). "
      "Raw JSON for every run, broker logs and this machine's details are kept in "
      "`$CARGO_TARGET_DIR/bench-results/<UTC time>/`. The load generator works against any "
      "Kafka-compatible broker on its own:")
    w("")
    w("```sh")
    w("cargo build --release --manifest-path benches/loadgen/Cargo.toml")
    w("strata-loadgen -b 127.0.0.1:9092 produce --topic t --partitions 16 --acks 1 --duration-s 20")
    w("strata-loadgen -b 127.0.0.1:9092 produce --topic t --partitions 16 --acks all --rate 50000")
    w("strata-loadgen -b 127.0.0.1:9092 consume --topic t")
    w("strata-loadgen -b 127.0.0.1:9092 e2e --topic t2 --partitions 16 --acks 1 --rate 20000")
    w("```")
    w("")

    write_keeping_others(out, "\n".join(doc))


BEGIN = "<!-- generated by scripts/bench: begin (everything up to 'end' is rewritten on each run) -->"
END = "<!-- generated by scripts/bench: end (sections below are kept as they are) -->"
OWN_SECTIONS = {
    "Target", "Summary (medians)", "Machine and versions", "Method", "Results per workload",
    "Where the time goes", "Peer comparison (Tansu)", "How to reproduce",
}


def write_keeping_others(out, generated):
    """Rewrite only the generated block of OUT; keep what others wrote.

    With markers: text before BEGIN and after END stays. Without (a file
    from before the markers): every '## ' section that this script does not
    write is kept, in order, after the generated block.
    """
    before, after = "", ""
    if os.path.exists(out):
        with open(out) as f:
            old = f.read()
        if BEGIN in old and END in old:
            before = old[: old.index(BEGIN)]
            after = old[old.index(END) + len(END):]
        else:
            kept, keep = [], False
            for line in old.splitlines():
                if line.startswith("## "):
                    keep = line[3:].strip() not in OWN_SECTIONS
                elif line.startswith("# "):
                    keep = False
                if keep:
                    kept.append(line)
            if kept:
                after = "\n\n" + "\n".join(kept).strip("\n") + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        f.write(before + BEGIN + "\n" + generated.rstrip("\n") + "\n" + END + (after or "\n"))
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
