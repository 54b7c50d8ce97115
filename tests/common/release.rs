//! Helpers for the tests of one small release: run it, find what was
//! delivered, verify it, read the ledger. Shared by the integrity tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::{stderr, stdout, Workdir};

/// The agreement `Workdir::agreement` writes.
pub const REFERENCE: &str = "DARS-NIC-000001-DEMO1-01";
/// `dars`'s exit codes, as the README documents them.
pub const EXIT_CONFIG: i32 = 3;
pub const EXIT_VERIFY: i32 = 6;
pub const EXIT_BATCH: i32 = 8;
pub const EXIT_LOCKED: i32 = 10;

/// A small site (300 people, 60 cohort rows, 1,500 episodes) made with
/// `seed`, and the path of an agreement that ends in 2099.
pub fn small(seed: u64) -> (Workdir, String) {
    let w = Workdir::new(300, 60, 1500, seed);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let a = a.to_string_lossy().into_owned();
    (w, a)
}

/// Asserts that a command succeeded, showing its output if not.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\n{}{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

/// Every delivered release folder (one holding its signature), sorted.
pub fn delivered(w: &Workdir) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = w
        .outbox_files()
        .into_iter()
        .filter(|p| p.ends_with("manifest.json.sig"))
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    v.sort();
    v
}

/// `dars verify` of a delivered release folder, with the test signer.
pub fn verify(w: &Workdir, release: &Path) -> Output {
    w.dars(&[
        "verify",
        release.to_str().unwrap(),
        "--allowed-signers",
        w.path("keys/allowed_signers").to_str().unwrap(),
    ])
}

/// The ledger's lines, each with its newline.
pub fn ledger_lines(w: &Workdir) -> Vec<String> {
    fs::read_to_string(w.path("work/ledger.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The agreement's run folders, sorted.
pub fn run_folders(w: &Workdir) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(w.path(&format!("work/{REFERENCE}/runs")))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}
