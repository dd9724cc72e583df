//! What the gateway's benchmarks share: settings from the environment and
//! processes' peak memory.

/// The number in environment variable `name`, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A memory figure of `/proc/<process>/status` (`process`: `self` or a
/// process id; `field`: a figure in kB such as `VmHWM`, the peak resident
/// memory, or `VmRSS`, the current one), MiB; NaN when it cannot be read.
pub fn memory_mib(process: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// This process's peak resident memory (Linux `VmHWM`), MiB.
pub fn peak_rss_mib() -> f64 {
    memory_mib("self", "VmHWM")
}

/// Resets the peak of `process` (`self` or a process id of the same user)
/// to its current resident memory.
pub fn reset_peak_rss_of(process: &str) {
    // Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
    let _ = std::fs::write(format!("/proc/{process}/clear_refs"), "5");
}

/// Resets this process's peak to its current resident memory.
pub fn reset_peak_rss() {
    reset_peak_rss_of("self");
}
