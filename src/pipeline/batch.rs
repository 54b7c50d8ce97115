//! `dars batch`: every agreement in a folder that is active today and due,
//! each run in isolation (one failure, even a panic, never stops the
//! others), under a kernel lock (`WORK/batch.lock`) so that two schedulers
//! never release at once. Each run also takes its agreement's own lock, so
//! a `dars run` of an agreement already going fails that agreement only.
//!
//! Due is the agreement's `schedule` against the ledger: `once` until it
//! has been released, `daily` once per calendar day, `weekly` once in any
//! seven days, `monthly` once per calendar month. The ledger, not the work
//! directory, is the record of what left, so a re-run the same day
//! releases nothing new; `--force` releases anyway and the ledger entry
//! says so.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use tracing::{error, info, warn};

use super::{open_ledger, run, secure_work_dir, PipelineError, RunOptions};
use crate::config::{Agreement, AgreementStatus, Schedule, Site};
use crate::ledger::{Ledger, LedgerEntry, LedgerEvent};
use crate::lock::{Holder, Lock, LockError};

#[derive(Debug, Clone)]
pub struct BatchOptions {
    pub today: NaiveDate,
    pub force: bool,
}

/// What happened to one agreement file.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BatchOutcome {
    Released {
        run_id: String,
        files: usize,
        forced: bool,
    },
    NotDue {
        last_release: NaiveDate,
    },
    NotStarted {
        start: NaiveDate,
    },
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchEntry {
    pub file: PathBuf,
    pub agreement: Option<String>,
    #[serde(flatten)]
    pub outcome: BatchOutcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    pub today: NaiveDate,
    pub entries: Vec<BatchEntry>,
}

impl BatchReport {
    pub fn failed(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.outcome, BatchOutcome::Failed { .. }))
            .count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("another dars batch is running ({holder}; lock {})\n  fix: wait for it to finish; its lock goes when that process ends, however it ends", path.display())]
    Locked { path: PathBuf, holder: Holder },
    #[error("cannot take the batch lock {path}: {source}\n  fix: check `work.dir` in the site config is writable")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the agreements folder {path}: {source}\n  fix: pass the folder that holds the agreement files")]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The signing key, which every release and the ledger need.
    #[error(transparent)]
    Key(#[from] crate::package::PackageError),
    #[error(transparent)]
    WorkDir(#[from] PipelineError),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
}

/// The batch lock, `WORK/batch.lock`: a kernel lock held until the batch
/// ends (it dies with the process, so it is never stale).
pub struct BatchLock {
    _lock: Lock,
}

impl BatchLock {
    pub fn acquire(work_dir: &Path) -> Result<Self, BatchError> {
        secure_work_dir(work_dir)?;
        match Lock::try_acquire(&work_dir.join("batch.lock")) {
            Ok(lock) => Ok(Self { _lock: lock }),
            Err(LockError::Held { path, holder }) => Err(BatchError::Locked { path, holder }),
            Err(LockError::Io { path, source }) => Err(BatchError::Lock { path, source }),
        }
    }
}

/// The date of the agreement's latest release in the ledger.
pub fn last_release(entries: &[LedgerEntry], reference: &str) -> Option<NaiveDate> {
    entries
        .iter()
        .filter_map(|e| match &e.event {
            LedgerEvent::Release { agreement, .. } if agreement == reference => {
                NaiveDate::parse_from_str(e.at.get(..10)?, "%Y-%m-%d").ok()
            }
            _ => None,
        })
        .max()
}

/// Whether a schedule wants a release today, given the last one.
pub fn is_due(schedule: Schedule, last: Option<NaiveDate>, today: NaiveDate) -> bool {
    let Some(last) = last else { return true };
    match schedule {
        Schedule::Once => false,
        Schedule::Daily => last < today,
        Schedule::Weekly => (today - last).num_days() >= 7,
        Schedule::Monthly => (last.year(), last.month()) < (today.year(), today.month()),
    }
}

/// Runs every due agreement in `dir`.
pub fn batch(site: &Site, dir: &Path, opts: &BatchOptions) -> Result<BatchReport, BatchError> {
    let _lock = BatchLock::acquire(&site.work_dir)?;
    let ledger = open_ledger(site)?;
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|source| BatchError::Folder {
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut entries = Vec::new();
    for file in files {
        let entry = one(site, &file, &ledger, opts);
        match &entry.outcome {
            BatchOutcome::Failed { reason } => {
                error!(file = %file.display(), agreement = entry.agreement.as_deref().unwrap_or("?"), reason = %first_line(reason), "agreement failed")
            }
            other => {
                info!(file = %file.display(), agreement = entry.agreement.as_deref().unwrap_or("?"), outcome = ?other, "agreement done")
            }
        }
        entries.push(entry);
    }
    Ok(BatchReport {
        today: opts.today,
        entries,
    })
}

fn one(site: &Site, file: &Path, ledger: &Ledger, opts: &BatchOptions) -> BatchEntry {
    let failed = |agreement: Option<String>, reason: String| BatchEntry {
        file: file.to_path_buf(),
        agreement,
        outcome: BatchOutcome::Failed { reason },
    };
    let agreement = match Agreement::load(file, Some(site)) {
        Ok((a, warnings)) => {
            for w in warnings {
                warn!("{w}");
            }
            a
        }
        Err(e) => return failed(None, e.to_string()),
    };
    let reference = agreement.meta.reference.to_string();
    let entry = |outcome| BatchEntry {
        file: file.to_path_buf(),
        agreement: Some(reference.clone()),
        outcome,
    };
    match agreement.status(opts.today) {
        AgreementStatus::NotStarted => {
            return entry(BatchOutcome::NotStarted {
                start: agreement.meta.start,
            })
        }
        AgreementStatus::Expired => {
            return failed(
                Some(reference.clone()),
                format!(
                    "agreement ended on {}: nothing may be released after its end date",
                    agreement.meta.end
                ),
            )
        }
        _ => {}
    }
    let entries = match ledger.entries() {
        Ok(e) => e,
        Err(e) => return failed(Some(reference.clone()), e.to_string()),
    };
    let last = last_release(&entries, &reference);
    let due = is_due(agreement.meta.schedule, last, opts.today);
    if !due && !opts.force {
        if let Some(last_release) = last {
            return entry(BatchOutcome::NotDue { last_release });
        }
    }
    let run_opts = RunOptions {
        dry_run: false,
        today: opts.today,
        forced: !due,
    };
    match catch_unwind(AssertUnwindSafe(|| run(site, &agreement, &run_opts))) {
        Ok(Ok(summary)) => entry(BatchOutcome::Released {
            run_id: summary.run_id,
            files: summary.outputs.len(),
            forced: !due,
        }),
        Ok(Err(e)) => failed(Some(reference.clone()), e.to_string()),
        Err(_) => failed(
            Some(reference.clone()),
            "dars panicked (a bug): see the log; nothing was released under a final name".into(),
        ),
    }
}

/// A failure reason on one line for the summary table: every line but
/// the fixes, joined.
pub fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("fix:"))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn schedules() {
        let today = d("2026-11-22");
        assert!(is_due(Schedule::Once, None, today));
        assert!(!is_due(Schedule::Once, Some(d("2026-01-01")), today));
        assert!(!is_due(Schedule::Daily, Some(today), today));
        assert!(is_due(Schedule::Daily, Some(d("2026-11-21")), today));
        assert!(!is_due(Schedule::Weekly, Some(d("2026-11-16")), today));
        assert!(is_due(Schedule::Weekly, Some(d("2026-11-15")), today));
        assert!(!is_due(Schedule::Monthly, Some(d("2026-11-01")), today));
        assert!(is_due(Schedule::Monthly, Some(d("2026-10-31")), today));
    }

    #[test]
    fn the_lock_excludes_a_live_holder_and_a_dead_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let held = BatchLock::acquire(dir.path()).unwrap();
        match BatchLock::acquire(dir.path()) {
            Err(e @ BatchError::Locked { .. }) => {
                assert!(
                    e.to_string()
                        .contains(&format!("pid {}", std::process::id())),
                    "{e}"
                );
            }
            other => panic!("{:?}", other.err()),
        }
        drop(held);
        // What a process that died leaves: its pid in the file, no lock.
        fs::write(
            dir.path().join("batch.lock"),
            "4194999 2026-01-01T00:00:00Z\n",
        )
        .unwrap();
        assert!(BatchLock::acquire(dir.path()).is_ok());
    }
}
