//! Removing the work folders of released runs older than a given age
//! (`dars clean`). Unreleased runs are kept: they may be resumed. An
//! agreement with a run in progress (its run lock held) is skipped.
//!
//! A run folder is part of the evidence of its release, so the ledger is
//! verified first (against every released run and release record, as
//! `dars ledger verify` does) and nothing is removed if it fails; a run is
//! removed only if the ledger holds its release. Release records
//! (`REFERENCE/releases/`, a manifest and its signature each, no one's
//! data) are never removed: they anchor the ledger once the run folders
//! are gone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::layout;
use super::RunState;
use crate::config::Site;
use crate::ledger::{LedgerError, LedgerEvent};
use crate::lock::{Lock, LockError};
use crate::package::PackageError;

/// What happened to one folder, as it happens (for the command to print).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleaned {
    /// Removed, or would be on a dry run.
    Removed(PathBuf),
    /// A released run the ledger does not hold: kept.
    NotInLedger(PathBuf),
    /// An agreement folder skipped because a run of it is going.
    InProgress {
        agreement: PathBuf,
        holder: crate::lock::Holder,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanCounts {
    pub removed: usize,
    pub kept: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error(transparent)]
    Ledger(#[from] PackageError),
    #[error("{0}\n  nothing was removed: the run folders are evidence of what was released")]
    Verify(LedgerError),
    #[error(transparent)]
    Lock(LockError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Removes (or, on a dry run, lists) the released run folders last
/// changed more than `older_than` ago, telling `each` about every folder
/// it removes or skips. `None` when the work directory does not exist.
pub fn clean(
    site: &Site,
    older_than: Duration,
    dry_run: bool,
    mut each: impl FnMut(&Cleaned),
) -> Result<Option<CleanCounts>, CleanError> {
    let ledger = super::open_ledger(site)?;
    let verified = super::verify_ledger(site, &ledger).map_err(CleanError::Verify)?;
    let in_ledger = |agreement: &str, run: &str| {
        verified.entries.iter().any(|e| {
            matches!(&e.event, LedgerEvent::Release { agreement: a, run_id, .. }
                if a == agreement && run_id == run)
        })
    };
    let cutoff = SystemTime::now() - older_than;
    let io = |path: &Path, source| CleanError::Io {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::read_dir(&site.work_dir).is_err() {
        return Ok(None);
    }
    let mut counts = CleanCounts::default();
    for agreement in layout::subdirs(&site.work_dir) {
        let Ok(entries) = std::fs::read_dir(layout::runs_dir(&agreement)) else {
            continue;
        };
        // Held while this agreement's folders are removed, so that no run
        // of it starts (or is going) meanwhile.
        let _lock = match Lock::try_acquire(&layout::run_lock(&agreement)) {
            Ok(lock) => lock,
            Err(LockError::Held { holder, .. }) => {
                each(&Cleaned::InProgress {
                    agreement: agreement.clone(),
                    holder,
                });
                counts.kept += entries.count();
                continue;
            }
            Err(e) => return Err(CleanError::Lock(e)),
        };
        let reference = agreement
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for run in entries.flatten() {
            let dir = run.path();
            let state = RunState::load(&dir);
            let released = state.as_ref().is_some_and(|s| s.released);
            if released
                && !state
                    .as_ref()
                    .is_some_and(|s| in_ledger(&reference, &s.run_id))
            {
                // Not reached after the check above; kept so that a run
                // folder is never removed on the state file's word alone.
                each(&Cleaned::NotInLedger(dir));
                counts.kept += 1;
                continue;
            }
            let modified = std::fs::metadata(RunState::path(&dir)).and_then(|m| m.modified());
            match modified {
                Ok(m) if released && m < cutoff => {
                    if !dry_run {
                        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
                    }
                    each(&Cleaned::Removed(dir));
                    counts.removed += 1;
                }
                _ => counts.kept += 1,
            }
        }
    }
    Ok(Some(counts))
}
