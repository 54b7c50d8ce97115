//! `dars link AGREEMENT --out DIR`: linkage only.

use std::path::PathBuf;

use super::{exit, load_agreement, load_site, Cli, Failure};
use crate::ingest::{self, IngestConfig};
use crate::link::{self, LinkConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub agreement: PathBuf,
    /// Folder for linkage.csv and review_queue.csv (created 0700).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: &Args, cli: &Cli) -> Result<(), Failure> {
    let site = load_site(cli)?;
    let agreement = load_agreement(&args.agreement, &site)?;
    let config = LinkConfig::from_cohort(&agreement.cohort);
    let Some(path) = agreement.cohort.path.clone() else {
        return Err(Failure::new(
            exit::CONFIG,
            format!(
                "{}: `cohort.reuse`: the agreement reuses the released linkage of {} and has no cohort of its own to link\n  fix: run `dars link` on that agreement, or give this one the cohort's `path`",
                args.agreement.display(),
                agreement.cohort.reuse.as_deref().unwrap_or("another agreement")
            ),
        ));
    };
    let cohort = ingest::read_cohort(&IngestConfig {
        path,
        required: config.required_columns(),
    })
    .map_err(|e| Failure::new(exit::INPUT, e))?;
    let demographics = crate::tables::scan(&site.demographics)
        .map_err(|source| Failure::new(exit::INPUT, link::LinkError::Demographics { source }))?;
    let linkage =
        link::link(&cohort, demographics, &config).map_err(|e| Failure::new(exit::INPUT, e))?;
    let io =
        |e: std::io::Error| Failure::new(exit::INTERNAL, format!("{}: {e}", args.out.display()));
    crate::workdir::create_private_dir(&args.out).map_err(io)?;
    link::write_linkage_csv(&args.out.join("linkage.csv"), &linkage.rows).map_err(io)?;
    link::write_review_queue_csv(&args.out.join("review_queue.csv"), &linkage).map_err(io)?;
    let c = &linkage.counts;
    println!(
        "{} rows: {} validated, {} reviewed, {} queued, {} unmatched, {} invalid -> {}",
        c.rows,
        c.validated,
        c.reviewed,
        c.queued,
        c.unmatched,
        c.invalid,
        args.out.display()
    );
    println!(
        "review queue: {} candidate pairs for {} study IDs ({} partial matches, {} ambiguous); decisions applied: {} accepted, {} rejected",
        c.queue_pairs, c.queued, c.partial, c.ambiguous, c.accepted, c.rejected
    );
    let b = &linkage.blocking;
    for k in b.keys.iter().filter(|k| k.capped_lookups > 0) {
        eprintln!(
            "warning: blocking key {} left out {} lookups ({} comparisons) whose blocks exceeded {} people or the budget of {} comparisons; rows that only that key would find may be unmatched",
            k.key, k.capped_lookups, k.capped_comparisons, b.max_block, b.max_comparisons
        );
    }
    for k in b.keys.iter().filter(|k| k.narrowed_lookups > 0) {
        eprintln!(
            "note: blocking key {} narrowed {} lookups whose blocks exceeded {} people to the row's gender or postcode area, leaving out {} comparisons; someone who moved to another area is among them",
            k.key, k.narrowed_lookups, b.max_block, k.narrowed_comparisons
        );
    }
    Ok(())
}
