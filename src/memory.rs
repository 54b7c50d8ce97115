//! The process's peak resident memory, from the kernel (Linux `VmHWM` in
//! `/proc/self/status`): per stage in a run's summary (`pipeline`, which
//! resets it between stages) and per step in the linkage timings (`link`).

/// The process's peak resident memory since it started or since the last
/// [`reset_peak`], MiB (None where the platform does not say).
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Resets the peak to the current resident size (best effort).
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[cfg(test)]
mod tests {
    #[test]
    fn issue_16_the_peak_is_read_and_does_not_fall_below_memory_in_use() {
        if !cfg!(target_os = "linux") {
            assert_eq!(super::peak_rss_mib(), None);
            return;
        }
        // Touch 64 MiB, so that the high-water mark must be at least that.
        let block = vec![1u8; 64 << 20];
        let peak = super::peak_rss_mib().expect("Linux reports VmHWM");
        assert!(block.iter().step_by(4096).all(|&b| b == 1));
        assert!(peak >= 64, "peak {peak} MiB with 64 MiB in use");
    }
}
