//! Benchmark of `dars::synth::generate`: wall time, throughput and output
//! size at a stated scale. Run with `harness = false`:
//!
//! ```text
//! cargo bench --bench synth -- --people 2000000 --cohort 200000 --episodes 20000000
//! /usr/bin/time -v target/release/deps/synth-* --people 2000000 --episodes 20000000
//! ```
//!
//! Defaults to a tenth of the target scale (200 000 people, 2 000 000
//! episodes). Writes into a temporary directory unless `--out DIR` is given.
//! Prints counts and timings only, never a generated value.

use std::path::PathBuf;
use std::time::Instant;

use dars::synth::{generate, SynthOptions};

fn main() {
    let mut opts = SynthOptions {
        people: 200_000,
        cohort: 20_000,
        episodes: 2_000_000,
        ..SynthOptions::default()
    };
    let mut cohort_given = false;
    let mut out: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> u64 {
            let v = args.next().unwrap_or_default();
            v.parse().unwrap_or_else(|_| {
                eprintln!("{flag} needs a number, got {v:?}");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--people" => opts.people = value() as usize,
            "--cohort" => {
                opts.cohort = value() as usize;
                cohort_given = true;
            }
            "--episodes" => opts.episodes = value() as usize,
            "--seed" => opts.seed = value(),
            "--out" => out = args.next().map(PathBuf::from),
            // `cargo bench` passes `--bench`; ignore it and any filter.
            _ => {}
        }
    }
    if !cohort_given {
        opts.cohort = opts.people / 10;
    }
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = out.unwrap_or_else(|| tmp.path().to_path_buf());

    let start = Instant::now();
    let summary = generate(&opts, &dir).unwrap_or_else(|e| {
        eprintln!("synth failed: {e}");
        std::process::exit(1)
    });
    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 = summary
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "synth: {} people, {} episodes, {} cohort rows, {} objections on {} threads",
        summary.people,
        summary.episodes,
        summary.cohort_rows,
        summary.objections,
        rayon::current_num_threads()
    );
    println!(
        "synth: {secs:.2} s, {:.0} episodes/s, {:.0} people/s, {:.1} MB written",
        summary.episodes as f64 / secs,
        summary.people as f64 / secs,
        bytes as f64 / 1e6
    );
    for f in &summary.files {
        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        println!("  {:>12} bytes  {}", len, f.display());
    }
}
