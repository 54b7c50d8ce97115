//! `dars check AGREEMENT`: every problem in the agreement and the site
//! config at once, with the key and the fix. Reads no data.
//!
//! Direct identifiers (issue #12) are reported here as far as names tell:
//! a field whose column goes by an identifier's name (`NEWNHSNO`, `dob`,
//! `patient_postcode`, …), the dataset's key, or a column the site lists
//! in `datasets.NAME.identifiers`, released without a transform that
//! generalises it. Whether a column's *values* are identifiers is known
//! only from the data, so `dars run` checks that on what would leave.
//! Reading a dataset's schema (a Parquet footer, a CSV header) would tell
//! no more than the names the agreement already lists, and a CSV "header"
//! that is really a row of data is itself identifiable: `check` opens no
//! dataset at all, except the schema of a dataset an output's `period`
//! reads (the period column's type, from a Parquet footer or a CSV file's
//! inferred types; no value is printed) and a Parquet dataset's footers for
//! its key column's type (issue #11: a key that is not integers). With `[cohort] reuse`, it
//! verifies the ledger and reads the kept linkage file it names.

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
    let (agreement, agreement_problems) = Agreement::check(&args.agreement, site.as_ref());
    problems.extend(agreement_problems);
    // `[cohort] reuse`: the named agreement's release, in the ledger.
    if let (Some(site), Some(agreement)) = (&site, &agreement) {
        problems.extend(crate::pipeline::reuse::problems(site, agreement));
    }
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
    println!(
        "note: no data was read: direct identifiers were checked by name and by the site's \
         `identifiers`; `dars run` also checks the values of every field before anything leaves"
    );
    Ok(())
}
