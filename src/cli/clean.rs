//! `dars clean --older-than 30d`: removes the work folders of released runs
//! older than the given age; what may be removed, and why, is
//! [`crate::pipeline::clean`]'s. This prints and maps errors to exit codes.

use std::time::Duration;

use super::{exit, load_site, Cli, Failure};
use crate::pipeline::clean::{clean, CleanError, Cleaned};

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
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let print = |c: &Cleaned| match c {
        Cleaned::Removed(dir) => println!("{verb} {}", dir.display()),
        Cleaned::NotInLedger(dir) => {
            println!(
                "kept {}: the ledger does not hold its release",
                dir.display()
            )
        }
        Cleaned::InProgress { agreement, holder } => println!(
            "skipped {}: a run of it is in progress ({holder})",
            agreement.display()
        ),
    };
    let counts = clean(&site, args.older_than, args.dry_run, print).map_err(|e| {
        let code = match e {
            CleanError::Ledger(_) => exit::CONFIG,
            CleanError::Verify(_) => exit::VERIFY,
            CleanError::Lock(_) | CleanError::Io { .. } => exit::INTERNAL,
        };
        Failure::new(code, e)
    })?;
    match counts {
        None => println!("nothing to clean in {}", site.work_dir.display()),
        Some(n) => println!(
            "{} released run folder(s) {}, {} kept",
            n.removed,
            if args.dry_run { "to remove" } else { "removed" },
            n.kept
        ),
    }
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
