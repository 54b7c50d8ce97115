//! `dars synth --out DIR`: deterministic synthetic data for tests, demos
//! and benchmarks. No real patient data is ever needed.

use std::path::PathBuf;

use super::{exit, Failure};
use crate::synth::{self, SynthOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = SynthOptions::default().people)]
    pub people: usize,
    #[arg(long, default_value_t = SynthOptions::default().cohort)]
    pub cohort: usize,
    #[arg(long, default_value_t = SynthOptions::default().episodes)]
    pub episodes: usize,
    #[arg(long, default_value_t = SynthOptions::default().seed)]
    pub seed: u64,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let opts = SynthOptions {
        people: args.people,
        cohort: args.cohort,
        episodes: args.episodes,
        seed: args.seed,
    };
    let s = synth::generate(&opts, &args.out).map_err(|e| {
        use synth::SynthError as E;
        let code = match e {
            E::TooManyPeople { .. }
            | E::CohortLargerThanPopulation { .. }
            | E::NobodyToAdmit { .. } => exit::USAGE,
            _ => exit::INTERNAL,
        };
        Failure::new(code, e)
    })?;
    println!(
        "{} people, {} cohort rows, {} episodes, {} objections -> {}",
        s.people,
        s.cohort_rows,
        s.episodes,
        s.objections,
        args.out.display()
    );
    Ok(())
}
