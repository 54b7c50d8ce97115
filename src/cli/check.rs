//! `dars check AGREEMENT`: every problem in the agreement and the site
//! config at once, with the key and the fix. Reads no data.

use std::path::PathBuf;

use super::{exit, Cli, Failure};
use crate::config::{Agreement, Severity, Site};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agreement file to check.
    pub agreement: PathBuf,
}

pub fn run(args: &Args, cli: &Cli) -> Result<(), Failure> {
    let (site, mut problems) = Site::check(&cli.site);
    let (_, agreement_problems) = Agreement::check(&args.agreement, site.as_ref());
    problems.extend(agreement_problems);
    for p in &problems {
        println!("{p}");
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = problems.len() - errors;
    if errors > 0 {
        return Err(Failure::new(
            exit::CONFIG,
            format!("{errors} error(s), {warnings} warning(s)"),
        ));
    }
    println!(
        "ok: {} and {} ({warnings} warning(s))",
        args.agreement.display(),
        cli.site.display()
    );
    Ok(())
}
