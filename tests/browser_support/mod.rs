//! Debian's headless Chromium for the tests that load dars's pages in a
//! real browser (`review_browser.rs`, `issue_15_register.rs`).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::time::Duration;

use headless_chrome::{Browser, LaunchOptions};

/// Debian's Chromium, headless, set up as on a closed network as root:
/// no sandbox, no GPU, no QUIC, no background or component traffic, and
/// a new empty profile.
pub fn chromium(profile: &std::path::Path) -> Browser {
    let options = LaunchOptions::default_builder()
        .path(Some("/usr/bin/chromium".into()))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1440, 960)))
        .user_data_dir(Some(profile.to_path_buf()))
        .idle_browser_timeout(Duration::from_secs(300))
        .args(vec![
            OsStr::new("--disable-gpu"),
            OsStr::new("--disable-quic"),
            OsStr::new("--no-first-run"),
            OsStr::new("--disable-background-networking"),
            OsStr::new("--disable-component-update"),
            OsStr::new("--disable-sync"),
        ])
        .build()
        .unwrap();
    Browser::new(options).expect("Debian chromium (.ci/run installs it)")
}
