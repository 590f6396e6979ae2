//! What is measured besides op counts: latency histograms, resident
//! memory from `/proc`, and the machine the numbers came from.

use std::time::Duration;

use hdrhistogram::Histogram;

/// A latency histogram in nanoseconds, from 1 ns to 60 s at 3 significant
/// digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// p50, p99 and p99.9 of a histogram, as durations.
pub fn percentiles(hist: &Histogram<u64>) -> [Duration; 3] {
    [0.5, 0.99, 0.999].map(|q| Duration::from_nanos(hist.value_at_quantile(q)))
}

/// A field of a `/proc/.../status` file in KiB (`VmRSS`, `VmHWM`), or
/// `None` where there is no such file (not Linux) or field.
pub fn status_kb(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    parse_status_kb(&status, field)
}

fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// This process's resident and peak resident memory in KiB.
pub fn own_memory_kb() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some((
        parse_status_kb(&status, "VmRSS")?,
        parse_status_kb(&status, "VmHWM")?,
    ))
}

/// Where the numbers came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// The CPU model.
    pub cpu: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Total memory in GiB.
    pub memory_gib: f64,
    /// When the run started (UTC).
    pub date: String,
    /// The 1, 5 and 15 minute load averages when the run started.
    pub load: String,
}

impl Machine {
    /// Reads the machine's description from `/proc` (placeholders where a
    /// file is missing, as on a non-Linux machine).
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
        let memory_gib = status_kb("/proc/meminfo", "MemTotal").unwrap_or(0) as f64 / 1048576.0;
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".to_string());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib,
            date: utc_now(),
            load,
        }
    }
}

/// Now as `YYYY-MM-DD HH:MM UTC`, from the system clock (civil-from-days,
/// so no date crate is needed).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a date.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse_in_kib() {
        let status = "Name:\tbench\nVmHWM:\t  123456 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(123_456));
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(2048));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
    }
}
