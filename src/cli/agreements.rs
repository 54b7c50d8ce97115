//! `dars agreements [DIR]`: every agreement with its status today.

use std::path::PathBuf;

use super::{Cli, Failure};
use crate::config::{Agreement, AgreementStatus};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of agreement files.
    #[arg(default_value = "config/agreements")]
    pub dir: PathBuf,
}

pub fn run(args: &Args, cli: &Cli) -> Result<(), Failure> {
    let site = crate::config::Site::check(&cli.site).0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .map_err(|e| Failure::new(super::exit::CONFIG, format!("{}: {e}", args.dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let today = crate::config::today();
    let ledger = site
        .as_ref()
        .and_then(|s| {
            crate::pipeline::open_ledger(s)
                .ok()
                .and_then(|ledger| ledger.entries().ok())
        })
        .unwrap_or_default();
    println!(
        "{:<28} {:<14} {:<11} {:<11} file",
        "reference", "status", "start", "end"
    );
    for f in files {
        let (agreement, problems) = Agreement::check(&f, site.as_ref());
        match agreement {
            Some(a) => {
                let status = match a.status(today) {
                    AgreementStatus::NotStarted => "not started".to_string(),
                    AgreementStatus::Active => "active".to_string(),
                    AgreementStatus::Expiring { days_left } => format!("expiring ({days_left}d)"),
                    AgreementStatus::Expired
                        if destruction_due(&ledger, a.meta.reference.as_str()) =>
                    {
                        "expired, destruction due".to_string()
                    }
                    AgreementStatus::Expired => "expired".to_string(),
                };
                println!(
                    "{:<28} {:<14} {:<11} {:<11} {}",
                    a.meta.reference,
                    status,
                    a.meta.start,
                    a.meta.end,
                    f.display()
                );
            }
            None => println!(
                "{:<28} {:<14} {:<11} {:<11} {} ({} problems: run dars check)",
                "?",
                "invalid",
                "",
                "",
                f.display(),
                problems.len()
            ),
        }
    }
    Ok(())
}

/// Released at least once, with no certificate of destruction recorded
/// after the last release.
fn destruction_due(ledger: &[crate::ledger::LedgerEntry], reference: &str) -> bool {
    use crate::ledger::LedgerEvent;
    let last = |want_release: bool| {
        ledger
            .iter()
            .filter(|e| match &e.event {
                LedgerEvent::Release { agreement, .. } => want_release && agreement == reference,
                LedgerEvent::Destruction { agreement, .. } => {
                    !want_release && agreement == reference
                }
                LedgerEvent::Recovery { .. } => false,
            })
            .map(|e| e.seq)
            .max()
    };
    match (last(true), last(false)) {
        (Some(release), Some(destruction)) => destruction < release,
        (Some(_), None) => true,
        _ => false,
    }
}
