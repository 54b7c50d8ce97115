//! The process's peak resident memory, from the kernel (Linux `VmHWM` in
//! `/proc/self/status`): per stage in a run's summary (`pipeline`, which
//! resets it between stages) and per step in the linkage timings (`link`).
//!
//! A reset through `/proc/self/clear_refs` lowers the kernel's high-water
//! mark for good: the peak that `getrusage` and `/usr/bin/time` report when
//! the process exits is then only the peak since the last reset (issue
//! #11: the whole-process figure read lower than a stage's). So every
//! reset first folds the mark into [`whole_peak_rss_mib`], the peak of the
//! whole process, reported in the run's summary.

/// The process's peak resident memory since it started or since the last
/// [`reset_peak`], MiB (None where the platform does not say).
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// The highest peak read before any reset, MiB.
static BEFORE_RESETS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Resets the peak to the current resident size (best effort), keeping
/// the peak so far for [`whole_peak_rss_mib`].
pub fn reset_peak() {
    if let Some(peak) = peak_rss_mib() {
        BEFORE_RESETS.fetch_max(peak, std::sync::atomic::Ordering::Relaxed);
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident memory since it started, across every
/// [`reset_peak`], MiB (None where the platform does not say).
pub fn whole_peak_rss_mib() -> Option<u64> {
    let now = peak_rss_mib()?;
    Some(now.max(BEFORE_RESETS.load(std::sync::atomic::Ordering::Relaxed)))
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
        // A reset lowers the kernel's mark once the block is gone, never
        // the whole process's peak (other tests in this process may reset
        // too: each folds the mark first, so the block's 64 MiB stay).
        drop(block);
        super::reset_peak();
        let whole = super::whole_peak_rss_mib().unwrap();
        assert!(
            whole >= 64,
            "whole-process peak {whole} MiB after 64 MiB were in use"
        );
    }
}
