//! Reads from `/proc`: a process's resident memory and this process's open-file limit.

/// VmRSS of process `pid` in KiB, if readable.
pub fn vm_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
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
}
