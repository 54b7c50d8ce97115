//! `dars run AGREEMENT [--dry-run]`: the whole pipeline for one agreement.

use std::path::PathBuf;

use super::{load_agreement, load_site, Cli, Failure};
use crate::pipeline::{self, RunOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agreement file (config/agreements/*.toml).
    pub agreement: PathBuf,
    /// Stop before encryption and push; write the linkage summary and the
    /// suppression reports to the work directory for review.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &Args, cli: &Cli) -> Result<(), Failure> {
    let site = load_site(cli)?;
    let agreement = load_agreement(&args.agreement, &site)?;
    let summary = pipeline::run(
        &site,
        &agreement,
        &RunOptions {
            dry_run: args.dry_run,
            today: crate::config::today(),
            forced: false,
        },
    )?;
    let l = &summary.linkage;
    println!(
        "agreement {}  run {}{}",
        summary.agreement,
        summary.run_id,
        if summary.dry_run { "  (dry run)" } else { "" }
    );
    match &summary.reused_linkage {
        Some(r) => println!(
            "cohort: the released linkage of {} (run {}, ledger entry {}) reused, not linked again",
            r.agreement, r.run_id, r.ledger_seq
        ),
        None => println!(
            "cohort {} rows: {} validated, {} reviewed, {} queued, {} unmatched, {} invalid",
            summary.cohort_rows, l.validated, l.reviewed, l.queued, l.unmatched, l.invalid
        ),
    }
    println!(
        "objections: {} removed, {} persons released",
        summary.objections.removed, summary.objections.released
    );
    let policy = &summary.objection_policy;
    if !policy.exempt.is_empty() {
        println!(
            "objections exempt: {} (legal basis: {})",
            policy
                .exempt
                .iter()
                .map(|t| t.code())
                .collect::<Vec<_>>()
                .join(", "),
            policy.exemption.as_deref().unwrap_or("").trim()
        );
    }
    for o in &summary.outputs {
        match &o.suppression {
            Some(s) => println!(
                "output {} ({}): {} rows, {} cells suppressed ({} primary, {} secondary), {} rounded",
                o.name,
                o.kind,
                o.rows,
                s.suppressed(),
                s.primary,
                s.secondary,
                s.rounded
            ),
            None => println!("output {} ({}): {} rows", o.name, o.kind, o.rows),
        }
    }
    match &summary.release {
        Some(r) => println!(
            "released to {} ({} files, {} bytes)",
            r.location,
            r.files_sent + r.files_already_there,
            r.bytes_sent
        ),
        None => println!(
            "nothing released; reports in {}",
            summary.work_dir.display()
        ),
    }
    Ok(())
}
