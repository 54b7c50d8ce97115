//! `dars clean --older-than 30d`: removes the work folders of released runs
//! older than the given age. Unreleased runs are kept: they may be resumed.
//! An agreement with a run in progress (its run lock held) is skipped.
//!
//! A run folder is part of the evidence of its release, so the ledger is
//! verified first (against every released run and release record, as
//! `dars ledger verify` does) and nothing is removed if it fails; a run is
//! removed only if the ledger holds its release. Release records
//! (`REFERENCE/releases/`, a manifest and its signature each, no one's
//! data) are never removed: they anchor the ledger once the run folders
//! are gone.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{exit, load_site, Cli, Failure};
use crate::ledger::LedgerEvent;
use crate::pipeline::RunState;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Age like 30d, 12h or 2w.
    #[arg(long, value_parser = parse_age)]
    pub older_than: Duration,
    /// List what would be removed without removing it.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_age(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not an age like 30d, 12h or 2w"))?;
    let secs = match unit {
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{s}`: use h, d or w, e.g. 30d")),
    };
    Ok(Duration::from_secs(n * secs))
}

pub fn run(args: &Args, cli: &Cli) -> Result<(), Failure> {
    let site = load_site(cli)?;
    let ledger = crate::pipeline::open_ledger(&site).map_err(|e| Failure::new(exit::CONFIG, e))?;
    let refuse = |e: crate::ledger::LedgerError| {
        Failure::new(
            exit::VERIFY,
            format!(
                "{e}\n  nothing was removed: the run folders are evidence of what was released"
            ),
        )
    };
    let verified = crate::pipeline::verify_ledger(&site, &ledger).map_err(refuse)?;
    let in_ledger = |agreement: &str, run: &str| {
        verified.entries.iter().any(|e| {
            matches!(&e.event, LedgerEvent::Release { agreement: a, run_id, .. }
                if a == agreement && run_id == run)
        })
    };
    let cutoff = SystemTime::now() - args.older_than;
    let mut removed = 0;
    let mut kept = 0;
    let io =
        |p: &Path, e: std::io::Error| Failure::new(exit::INTERNAL, format!("{}: {e}", p.display()));
    let Ok(agreements) = std::fs::read_dir(&site.work_dir) else {
        println!("nothing to clean in {}", site.work_dir.display());
        return Ok(());
    };
    for agreement in agreements.flatten() {
        let runs = agreement.path().join("runs");
        let Ok(entries) = std::fs::read_dir(&runs) else {
            continue;
        };
        // Held while this agreement's folders are removed, so that no run
        // of it starts (or is going) meanwhile.
        let _lock = match crate::lock::Lock::try_acquire(&agreement.path().join("run.lock")) {
            Ok(lock) => lock,
            Err(crate::lock::LockError::Held { holder, .. }) => {
                println!(
                    "skipped {}: a run of it is in progress ({holder})",
                    agreement.path().display()
                );
                kept += entries.count();
                continue;
            }
            Err(e) => return Err(Failure::new(exit::INTERNAL, e)),
        };
        let reference = agreement.file_name().to_string_lossy().into_owned();
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
                println!(
                    "kept {}: the ledger does not hold its release",
                    dir.display()
                );
                kept += 1;
                continue;
            }
            let modified = std::fs::metadata(RunState::path(&dir))
                .and_then(|m| m.modified())
                .map_err(|e| io(&dir, e));
            match modified {
                Ok(m) if released && m < cutoff => {
                    if !args.dry_run {
                        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
                    }
                    println!(
                        "{} {}",
                        if args.dry_run {
                            "would remove"
                        } else {
                            "removed"
                        },
                        dir.display()
                    );
                    removed += 1;
                }
                _ => kept += 1,
            }
        }
    }
    println!(
        "{removed} released run folder(s) {}, {kept} kept",
        if args.dry_run { "to remove" } else { "removed" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages() {
        assert_eq!(super::parse_age("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(super::parse_age("2w").unwrap().as_secs(), 14 * 86_400);
        assert!(super::parse_age("30").is_err());
        assert!(super::parse_age("d").is_err());
    }
}
