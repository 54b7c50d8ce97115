//! `dars batch DIR [--json] [--force]`: every active, due agreement in DIR,
//! each isolated, under a lock; one summary; exit 0 only if all succeeded.

use std::path::PathBuf;

use super::{exit, load_site, Cli, Failure};
use crate::pipeline::batch::{self, first_line, BatchOptions, BatchOutcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of agreement files.
    pub dir: PathBuf,
    /// Print the summary as JSON (for schedulers) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Release agreements that are not due (already released today or in
    /// their period). The ledger records the override.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &Args, cli: &Cli) -> Result<(), Failure> {
    let site = load_site(cli)?;
    let report = batch::batch(
        &site,
        &args.dir,
        &BatchOptions {
            today: crate::config::today(),
            force: args.force,
        },
    )
    .map_err(|e| match e {
        batch::BatchError::Locked { .. } => Failure::new(exit::LOCKED, e),
        batch::BatchError::Key(_) => Failure::new(exit::CONFIG, e),
        batch::BatchError::WorkDir(e) => Failure::from(e),
        e => Failure::new(exit::INTERNAL, e),
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!("{:<28} {:<12} detail", "agreement", "outcome");
        for e in &report.entries {
            let name = e
                .agreement
                .clone()
                .unwrap_or_else(|| e.file.display().to_string());
            let (outcome, detail) = match &e.outcome {
                BatchOutcome::Released {
                    run_id,
                    files,
                    forced,
                } => (
                    "released",
                    format!(
                        "run {run_id}, {files} outputs{}",
                        if *forced { " (forced)" } else { "" }
                    ),
                ),
                BatchOutcome::NotDue { last_release } => {
                    ("not due", format!("last released {last_release}"))
                }
                BatchOutcome::NotStarted { start } => ("not started", format!("starts {start}")),
                BatchOutcome::Failed { reason } => (
                    "FAILED",
                    format!("{}: {}", e.file.display(), first_line(reason)),
                ),
            };
            println!("{name:<28} {outcome:<12} {detail}");
        }
    }
    let failed = report.failed();
    if failed > 0 {
        return Err(Failure::new(
            exit::BATCH,
            format!("{failed} of {} agreements failed", report.entries.len()),
        ));
    }
    Ok(())
}
