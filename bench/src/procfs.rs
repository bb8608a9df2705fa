//! Reads from `/proc`: a process's resident memory and CPU time, the load average, and this process's open-file limit.

/// VmRSS of process `pid` in KiB, if readable.
pub fn vm_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of process `pid` (`self` for this one), user + system, in seconds, from `/proc/<pid>/stat`: every
/// thread's time, including threads that have exited. Resolution: one clock tick (10 ms here).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (utime, stime) = parse_cpu_ticks(&stat)?;
    Some((utime + stime) as f64 / clock_ticks_per_second())
}

/// `(utime, stime)` in clock ticks: fields 14 and 15 of `stat`, counted after the `(comm)` field, which may contain
/// spaces and parentheses itself.
fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace().skip(11);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the C library; it has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// `/proc/loadavg` without its trailing newline (the 1, 5 and 15 minute load averages, runnable/total, last pid).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The soft limit on open files of this process, if readable.
pub fn open_files_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let value = line.trim_start_matches("Max open files").split_whitespace().next()?;
    if value == "unlimited" {
        return Some(u64::MAX);
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_vm_rss_line() {
        assert_eq!(super::parse_vm_rss("Name:\tx\nVmRSS:\t  1234 kB\n"), Some(1234));
        assert_eq!(super::parse_vm_rss("Name:\tx\n"), None);
        assert!(super::open_files_soft_limit().is_some());
    }

    #[test]
    fn parses_cpu_ticks_after_a_hostile_comm() {
        let stat = "42 (a) b (c) S 1 2 3 4 5 6 7 8 9 10 123 45 0 0 20 0 1";
        assert_eq!(super::parse_cpu_ticks(stat), Some((123, 45)));
        assert_eq!(super::parse_cpu_ticks("42 (x) S 1"), None);
        assert!(super::cpu_seconds("self").is_some_and(|s| s >= 0.0));
        assert!(!super::loadavg().is_empty());
    }
}
