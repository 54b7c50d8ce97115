//! Where the pipeline keeps things in the work directory: the one place
//! that knows the layout (see the module docs of [`crate::pipeline`]).
//! Commands that walk the work directory (`dars clean`, `dars review`,
//! `dars ledger`) ask here instead of joining folder names themselves.

use std::path::{Path, PathBuf};

/// The folder of an agreement's runs, under its agreement folder.
pub const RUNS_DIR: &str = "runs";
/// The run lock, in the agreement folder: held by the one run of the
/// agreement, and by `dars clean` while it removes that agreement's runs.
pub const RUN_LOCK: &str = "run.lock";

/// The folder of an agreement's released linkages, under its agreement
/// folder: `RUN_ID.parquet` for each release, kept for `[cohort] reuse`.
/// `dars clean` never removes it.
pub const LINKAGE_DIR: &str = "linkage";

/// `WORK/REFERENCE/linkage/RUN_ID.parquet`, given the agreement folder.
pub fn linkage_file(agreement_dir: &Path, run_id: &str) -> PathBuf {
    agreement_dir
        .join(LINKAGE_DIR)
        .join(format!("{run_id}.parquet"))
}

/// `WORK/REFERENCE`.
pub fn agreement_dir(work_dir: &Path, reference: &str) -> PathBuf {
    work_dir.join(reference)
}

/// `WORK/REFERENCE/runs`, given the agreement folder.
pub fn runs_dir(agreement_dir: &Path) -> PathBuf {
    agreement_dir.join(RUNS_DIR)
}

/// `WORK/REFERENCE/run.lock`, given the agreement folder.
pub fn run_lock(agreement_dir: &Path) -> PathBuf {
    agreement_dir.join(RUN_LOCK)
}

/// The folders directly under `p`, sorted; none when it cannot be read.
pub fn subdirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_documented_one() {
        let a = agreement_dir(Path::new("/w"), "DARS-NIC-000001-DEMO1-01");
        assert_eq!(a, PathBuf::from("/w/DARS-NIC-000001-DEMO1-01"));
        assert_eq!(runs_dir(&a), a.join("runs"));
        assert_eq!(run_lock(&a), a.join("run.lock"));
        assert_eq!(linkage_file(&a, "R1"), a.join("linkage/R1.parquet"));
    }

    #[test]
    fn subdirs_are_sorted_folders_only() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["b", "a", "c"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("0-file"), "x").unwrap();
        let names: Vec<_> = subdirs(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(subdirs(&dir.path().join("missing")).is_empty());
    }
}
