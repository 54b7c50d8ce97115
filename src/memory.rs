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

pub use mapped::MappedFile;

/// The one module of dars with unsafe code: a memory mapping dars owns and
/// the advice on it. The lint stays `deny` everywhere else (`src/lib.rs`),
/// and every block here says why it is sound.
mod mapped {
    #![allow(unsafe_code)]

    /// A dataset file mapped read-only for polars to scan, whose pages are
    /// handed back to the kernel as the scan passes them.
    ///
    /// Polars maps a Parquet file it scans and keeps the mapping until the
    /// query ends, so every page it has read stays in the process's resident
    /// set: at 100M episodes the records stage grew by 850 MiB of file pages
    /// (`RssFile`), linearly with the rows scanned, while its heap stayed flat
    /// (issue #11). A scan over this mapping instead ([`crate::tables::scan`])
    /// is the same bytes, and a background thread tells the kernel every
    /// [`RELEASE_EVERY`] that the process no longer needs the pages mapped
    /// (`MADV_DONTNEED`): they stay in the page cache, and a page polars
    /// reads again is mapped again from there, the same bytes. Because the
    /// mapping is dars's own and the thread holds it while it advises, the
    /// advice can never land on memory that has since been reused.
    pub struct MappedFile {
        ptr: *mut libc::c_void,
        len: usize,
        _file: std::fs::File,
    }

    // SAFETY: the mapping is read-only for its whole life and unmapped only on
    // drop, so sharing its address between threads is sound.
    unsafe impl Send for MappedFile {}
    unsafe impl Sync for MappedFile {}

    /// How often the pages of every live [`MappedFile`] are handed back: a scan
    /// reading a few hundred MiB a second keeps a few tens of MiB mapped.
    pub(super) const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

    impl MappedFile {
        /// Maps `path` read-only; its pages are released while it lives.
        pub fn open(path: &std::path::Path) -> std::io::Result<std::sync::Arc<Self>> {
            let mapped = std::sync::Arc::new(Self::map(path)?);
            if mapped.len > 0 {
                releaser::register(&mapped);
            }
            Ok(mapped)
        }

        fn map(path: &std::path::Path) -> std::io::Result<Self> {
            let file = std::fs::File::open(path)?;
            let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
            let ptr = if len == 0 {
                std::ptr::null_mut()
            } else {
                // SAFETY: a fresh read-only shared mapping of a file this
                // process opened; nothing else is at the address it returns.
                let ptr = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ,
                        libc::MAP_SHARED,
                        std::os::fd::AsRawFd::as_raw_fd(&file),
                        0,
                    )
                };
                if ptr == libc::MAP_FAILED {
                    return Err(std::io::Error::last_os_error());
                }
                ptr
            };
            Ok(Self {
                ptr,
                len,
                _file: file,
            })
        }

        /// The file's bytes as polars reads them, keeping the mapping alive.
        pub fn buffer(self: &std::sync::Arc<Self>) -> polars_buffer::Buffer<u8> {
            polars_buffer::Buffer::from_owner(Bytes(std::sync::Arc::clone(self)))
        }

        /// Tells the kernel the mapped pages are not needed: they leave the
        /// resident set and are mapped again, from the page cache, when read.
        fn release_pages(&self) {
            #[cfg(target_os = "linux")]
            if self.len > 0 {
                // SAFETY: the range is this mapping's, alive while `self` is;
                // for a read-only shared file mapping MADV_DONTNEED changes no
                // byte a reader sees.
                let _ = unsafe { libc::madvise(self.ptr, self.len, libc::MADV_DONTNEED) };
            }
        }

        /// How much of the mapping is resident now, KiB, from the kernel's
        /// `/proc/self/smaps` (for tests).
        #[cfg(test)]
        fn resident_kib(&self) -> u64 {
            let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
            let start = format!("{:x}-", self.ptr as usize);
            let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
            lines.next().expect("the mapping is listed");
            lines
                .find_map(|l| l.strip_prefix("Rss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .expect("its Rss line")
        }
    }

    impl AsRef<[u8]> for MappedFile {
        fn as_ref(&self) -> &[u8] {
            if self.len == 0 {
                return &[];
            }
            // SAFETY: `len` readable bytes at `ptr` for as long as `self` lives.
            unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
        }
    }

    impl Drop for MappedFile {
        fn drop(&mut self) {
            if self.len > 0 {
                // SAFETY: the mapping made in `open`, unmapped once; no Buffer
                // of it is left (each holds the Arc).
                let _ = unsafe { libc::munmap(self.ptr, self.len) };
            }
        }
    }

    /// The owner polars' buffer holds: the mapping, shared.
    struct Bytes(std::sync::Arc<MappedFile>);

    impl AsRef<[u8]> for Bytes {
        fn as_ref(&self) -> &[u8] {
            (*self.0).as_ref()
        }
    }

    /// The thread that releases the pages of every live mapping. It runs while
    /// any mapping lives and stops when the last one is dropped.
    mod releaser {
        use std::sync::{Arc, Mutex, Weak};

        use super::{MappedFile, RELEASE_EVERY};

        struct Registry {
            mapped: Vec<Weak<MappedFile>>,
            running: bool,
        }

        static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
            mapped: Vec::new(),
            running: false,
        });

        pub(super) fn register(mapped: &Arc<MappedFile>) {
            let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
            registry.mapped.push(Arc::downgrade(mapped));
            if !registry.running {
                let spawned = std::thread::Builder::new()
                    .name("dars-release-pages".into())
                    .spawn(run);
                // Without the thread the scan is polars' own: correct, only
                // its pages stay resident.
                registry.running = spawned.is_ok();
            }
        }

        fn run() {
            loop {
                std::thread::sleep(RELEASE_EVERY);
                let live: Vec<Arc<MappedFile>> = {
                    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
                    registry.mapped.retain(|m| m.strong_count() > 0);
                    if registry.mapped.is_empty() {
                        registry.running = false;
                        return;
                    }
                    registry.mapped.iter().filter_map(Weak::upgrade).collect()
                };
                for mapped in &live {
                    mapped.release_pages();
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #[cfg(target_os = "linux")]
        #[test]
        fn issue_11_a_mapped_file_reads_its_bytes_and_hands_its_pages_back() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("data.bin");
            let bytes: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            let kib = (bytes.len() / 1024) as u64;
            // Read whole, it is resident; released, it is not, and reads the same.
            let mapped = super::MappedFile::map(&path).unwrap();
            assert!(mapped.as_ref() == bytes.as_slice());
            assert!(
                mapped.resident_kib() > kib / 2,
                "{} of {kib} KiB",
                mapped.resident_kib()
            );
            mapped.release_pages();
            assert!(
                mapped.resident_kib() < kib / 10,
                "{} of {kib} KiB",
                mapped.resident_kib()
            );
            assert!(mapped.as_ref() == bytes.as_slice());
            // Opened for a scan, the thread releases what is read.
            let mapped = super::MappedFile::open(&path).unwrap();
            let buffer = mapped.buffer();
            assert!(buffer.as_ref() == bytes.as_slice());
            let released = (0..100).any(|_| {
                std::thread::sleep(super::RELEASE_EVERY);
                mapped.resident_kib() < kib / 10
            });
            assert!(
                released,
                "{} of {kib} KiB still resident",
                mapped.resident_kib()
            );
            assert!(buffer.as_ref() == bytes.as_slice());
            let empty = dir.path().join("empty.bin");
            std::fs::write(&empty, b"").unwrap();
            assert!(super::MappedFile::open(&empty).unwrap().buffer().is_empty());
        }
    }
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
