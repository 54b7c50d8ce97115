//! `dars register [--from DATE] [--to DATE] --out FILE.csv|FILE.html`: the
//! public register of releases, from the verified ledger alone.

use std::path::PathBuf;

use chrono::NaiveDate;

use super::{exit, load_site, Cli, Failure};
use crate::package::SigningKey;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only releases made on or after this date (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub from: Option<NaiveDate>,
    /// Only releases made on or before this date (YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_date)]
    pub to: Option<NaiveDate>,
    /// The register to write: FILE.csv or FILE.html (replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date: use YYYY-MM-DD"))
}

pub fn run(args: &Args, cli: &Cli) -> Result<(), Failure> {
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from > to {
            return Err(Failure::new(
                exit::USAGE,
                format!("--from {from} is after --to {to}\n  fix: give --from on or before --to"),
            ));
        }
    }
    let site = load_site(cli)?;
    let key = SigningKey::load(&site.signing_key)
        .map_err(|e| Failure::new(exit::CONFIG, e))?
        .verifying_key();
    let ledger = crate::ledger::Ledger::open(&crate::pipeline::ledger_path(&site), key);
    // The register says only what a verified ledger says: a broken chain,
    // a forged entry or a ledger rolled back behind the work directory's
    // records is refused, and nothing is written.
    let verified = crate::pipeline::verify_ledger(&site, &ledger).map_err(|e| {
        Failure::new(
            exit::VERIFY,
            format!("{e}\n  the register is not written from a ledger that does not verify (`dars ledger verify` says the same)"),
        )
    })?;
    let lines = crate::register::lines(&verified.entries, args.from, args.to)
        .map_err(|e| Failure::new(exit::INTERNAL, e))?;
    crate::register::write(&args.out, &lines, args.from, args.to).map_err(|e| match e {
        crate::register::RegisterError::UnknownFormat(_) => Failure::new(exit::USAGE, e),
        e => Failure::new(exit::INTERNAL, e),
    })?;
    println!(
        "wrote {} release(s) to {} from a ledger of {} entries (verified, head at entry {})",
        lines.len(),
        args.out.display(),
        verified.entries.len(),
        verified.head.seq
    );
    Ok(())
}
