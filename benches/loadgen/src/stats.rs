//! Latency histograms, error tallies and /proc sampling of a process's CPU
//! time and memory (the broker's, given its pid, and our own).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies in microseconds, 1 µs .. 1 h, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// p50/p99/p99.9/max (and mean) in milliseconds.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "mean_ms": round3(h.mean() / 1000.0),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p99_9_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
    })
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Errors by message, so a report shows what failed and not only how often.
#[derive(Default)]
pub struct Errors {
    pub count: u64,
    by_kind: BTreeMap<String, u64>,
}

impl Errors {
    pub fn add(&mut self, what: impl Into<String>) {
        self.count += 1;
        let what = what.into();
        if self.by_kind.len() < 20 || self.by_kind.contains_key(&what) {
            *self.by_kind.entry(what).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &Errors) {
        self.count += other.count;
        for (k, v) in &other.by_kind {
            *self.by_kind.entry(k.clone()).or_default() += v;
        }
    }

    pub fn json(&self) -> Value {
        json!({ "count": self.count, "by_kind": self.by_kind })
    }
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields restart
    // after the last ')'. Field 3 (state) is then index 0, utime (14) is 11.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// A `Vm*` line of /proc/PID/status, in KiB.
pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Reset the peak-RSS mark (VmHWM) so the next reading covers only this run.
pub fn reset_hwm(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Machine-wide CPU time from the first line of /proc/stat, in seconds:
/// (busy = user + nice + system + irq + softirq, steal).
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal (guest is inside user)
    let busy = get(0) + get(1) + get(2) + get(5) + get(6);
    Some((busy / clk_tck(), get(7) / clk_tck()))
}

/// Pressure stall information of the block layer (/proc/pressure/io):
/// microseconds in which (some, all) non-idle tasks waited for I/O. A
/// noisy disk shows here, so a latency outlier can be told from a
/// regression.
pub fn io_pressure_us() -> Option<(f64, f64)> {
    let psi = std::fs::read_to_string("/proc/pressure/io").ok()?;
    let total = |kind: &str| -> Option<f64> {
        psi.lines()
            .find(|l| l.starts_with(kind))?
            .split_whitespace()
            .find_map(|f| f.strip_prefix("total="))?
            .parse()
            .ok()
    };
    Some((total("some")?, total("full")?))
}

/// CPUs of the machine (not of this process's affinity mask).
fn online_cpus() -> usize {
    std::fs::read_to_string("/proc/stat")
        .map(|s| {
            s.lines()
                .filter(|l| {
                    l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit)
                })
                .count()
        })
        .unwrap_or(0)
}

/// CPU time of the broker, of this process and of everything else on the
/// machine over one measurement window.
pub struct Window {
    broker_pid: Option<u32>,
    broker_cpu0: Option<f64>,
    self_cpu0: Option<f64>,
    machine0: Option<(f64, f64)>,
    io0: Option<(f64, f64)>,
    started: std::time::Instant,
}

impl Window {
    pub fn start(broker_pid: Option<u32>) -> Self {
        Window {
            broker_pid,
            broker_cpu0: broker_pid.and_then(cpu_seconds),
            self_cpu0: cpu_seconds(std::process::id()),
            machine0: machine_cpu_seconds(),
            io0: io_pressure_us(),
            started: std::time::Instant::now(),
        }
    }

    /// `(broker, loadgen, machine)` for the window that ends now. CPU
    /// percentages are of one core; machine.other_pct is what neither the
    /// broker nor this process used (other processes, kernel threads).
    pub fn finish(&self) -> (Value, Value, Value) {
        let wall = self.started.elapsed().as_secs_f64();
        let pct = |cpu: f64| round3(100.0 * cpu / wall.max(1e-9));
        let machine1 = machine_cpu_seconds();
        let own = cpu_seconds(std::process::id())
            .zip(self.self_cpu0)
            .map(|(c1, c0)| c1 - c0);
        let broker_cpu = match (self.broker_pid, self.broker_cpu0) {
            (Some(pid), Some(c0)) => cpu_seconds(pid).map(|c1| c1 - c0),
            _ => None,
        };
        let io_pct = self.io0.zip(io_pressure_us()).map(|((s0, f0), (s1, f1))| {
            (pct((s1 - s0) / 1e6), pct((f1 - f0) / 1e6))
        });
        let machine = match (self.machine0, machine1) {
            (Some((b0, s0)), Some((b1, s1))) => {
                let busy = b1 - b0;
                let other = (busy - own.unwrap_or(0.0) - broker_cpu.unwrap_or(0.0)).max(0.0);
                json!({
                    "cpus": online_cpus(),
                    "busy_pct": pct(busy),
                    "other_pct": pct(other),
                    "steal_pct": pct(s1 - s0),
                    "io_some_pct": io_pct.map(|(s, _)| s),
                    "io_full_pct": io_pct.map(|(_, f)| f),
                })
            }
            _ => Value::Null,
        };
        let broker = match (self.broker_pid, self.broker_cpu0) {
            (Some(pid), Some(_)) => {
                let cpu = broker_cpu;
                json!({
                    "pid": pid,
                    "cpu_s": cpu.map(round3),
                    "cpu_pct": cpu.map(pct),
                    "peak_rss_kb": status_kb(pid, "VmHWM"),
                    "rss_kb": status_kb(pid, "VmRSS"),
                    "alive": cpu.is_some(),
                })
            }
            (Some(pid), None) => json!({ "pid": pid, "error": "cannot read /proc/PID/stat" }),
            _ => Value::Null,
        };
        let loadgen = json!({
            "cpu_s": own.map(round3),
            "cpu_pct": own.map(pct),
            "peak_rss_kb": status_kb(std::process::id(), "VmHWM"),
        });
        (broker, loadgen, machine)
    }

    pub fn wall_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_proc_entries() {
        assert!(cpu_seconds(std::process::id()).is_some());
        assert!(status_kb(std::process::id(), "VmHWM").unwrap() > 0);
    }

    #[test]
    fn histogram_percentiles_in_ms() {
        let mut h = new_histogram();
        for i in 1..=1000u64 {
            record(&mut h, Duration::from_micros(i * 1000));
        }
        let j = latency_json(&h);
        assert_eq!(j["count"], 1000);
        let p99 = j["p99_ms"].as_f64().unwrap();
        assert!((989.0..=991.0).contains(&p99), "{p99}");
    }
}
