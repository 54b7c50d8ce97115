//! Crash points for the end-to-end tests, compiled in only with the
//! `fault-injection` cargo feature (which `cargo test` turns on and a plain
//! `cargo build` leaves off): the binary users run has no such hooks and
//! reads no such variables.
//!
//! - `DARS_FAIL_AFTER=POINT` aborts the process right after that point, as
//!   a `kill -9` would, so the tests can prove that a re-run resumes.
//! - `DARS_HOLD_AFTER=POINT` with `DARS_HOLD_FILE=PATH` writes PATH at that
//!   point and waits there until PATH is removed (five minutes at most),
//!   so a test can start a second dars while the first is mid-run.
//!
//! Points: `lock` (the agreement's lock taken), `link`, `objections`,
//! `stream:NAME` (the first batch of a records output written, the file
//! not finished), `output:NAME`, `package`, `delivered` (every file of the release at the
//! destination, nothing recorded yet), `push` (the delivery saved in
//! `state.json`).

#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    use std::time::{Duration, Instant};
    if std::env::var("DARS_FAIL_AFTER").is_ok_and(|p| p == name) {
        eprintln!("DARS_FAIL_AFTER={name}: aborting here on purpose");
        std::process::abort();
    }
    if std::env::var("DARS_HOLD_AFTER").is_ok_and(|p| p == name) {
        if let Some(file) = std::env::var_os("DARS_HOLD_FILE") {
            let file = std::path::PathBuf::from(file);
            let _ = std::fs::write(&file, std::process::id().to_string());
            let started = Instant::now();
            while file.exists() && started.elapsed() < Duration::from_secs(300) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Without the feature a crash point is nothing at all.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}
