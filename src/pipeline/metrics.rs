//! Per-stage wall time and peak memory, read from the kernel (Linux
//! `VmHWM`, reset between stages through `/proc/self/clear_refs`), so a
//! release engineer sees which stage needs the memory.

use std::time::Instant;

use crate::memory::peak_rss_mib;
pub(crate) use crate::memory::reset_peak;

#[derive(Debug, Clone, serde::Serialize)]
pub struct StageMetrics {
    pub stage: &'static str,
    pub seconds: f64,
    /// Peak resident memory of the process during the stage, MiB (None
    /// where the platform does not say).
    pub peak_rss_mib: Option<u64>,
}

impl StageMetrics {
    pub fn finish(stage: &'static str, started: Instant) -> Self {
        Self {
            stage,
            seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            peak_rss_mib: peak_rss_mib(),
        }
    }
}
