//! This process's memory as Linux reports it, for the benchmarks that print peak RSS.

/// A `kB` field of `/proc/self/status` (`VmRSS:`, `VmHWM:`); 0 when it cannot be read.
pub fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Reset the peak (`VmHWM`) to the current RSS (Linux >= 4.0), so the next reading covers only what
/// follows.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
