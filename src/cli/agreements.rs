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
