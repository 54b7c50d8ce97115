//! Benchmark of the link stage (issue #3): a synthetic cohort linked
//! against a synthetic master person index, with rows per second and peak
//! memory per tier. Run with `harness = false`, optimising dars itself
//! (dependencies are always optimised in the dev profile):
//!
//! ```text
//! CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo bench --profile dev --bench link -- \
//!     --people 2000000 --cohort 200000 --data /var/tmp/dars-link-bench
//! ```
//!
//! Generates the data with `dars::synth` into `--data` unless it is there
//! already (so that repeated runs time only linkage), then links with
//! names allowed for manual validation (every blocking key in use) and
//! again without. Prints counts, timings and memory only, never a value.
//! `--dump DIR` also writes each run's `linkage.csv` and `review_queue.csv`
//! into `DIR` (private files, as the stage writes them), so that a speed
//! change can be checked to leave the outputs byte for byte the same.
//! `--model` prints the estimated `m`, `u` and weight of every level (the
//! run summary's `model`). `--data` may point at any folder holding
//! `cohort.csv` and `site/demographics.parquet` (the outside bench's
//! `WORK/NAME/data`, for example).

use std::path::{Path, PathBuf};
use std::time::Instant;

use dars::ingest::{read_cohort, IngestConfig};
use dars::link::{self, LinkConfig};
use dars::synth::{generate, SynthOptions};

fn main() {
    let mut opts = SynthOptions {
        people: 2_000_000,
        cohort: 200_000,
        episodes: 0,
        ..SynthOptions::default()
    };
    let mut data: Option<PathBuf> = None;
    let mut names_only = false;
    let mut dump: Option<PathBuf> = None;
    let mut show_model = false;
    let mut bar: Option<f64> = None;
    let mut candidates: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut number = || -> usize {
            let v = args.next().unwrap_or_default();
            v.parse().unwrap_or_else(|_| {
                eprintln!("{flag} needs a number, got {v:?}");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--people" => opts.people = number(),
            "--cohort" => opts.cohort = number(),
            "--data" => data = args.next().map(PathBuf::from),
            "--names-only" => names_only = true,
            "--dump" => dump = args.next().map(PathBuf::from),
            "--model" => show_model = true,
            "--review-probability" => {
                let v = args.next().unwrap_or_default();
                bar = Some(v.parse().unwrap_or_else(|_| {
                    eprintln!("--review-probability needs a number, got {v:?}");
                    std::process::exit(2)
                }))
            }
            "--candidates" => candidates = args.next().map(PathBuf::from),
            // `cargo bench` passes `--bench`; ignore it and any filter.
            _ => {}
        }
    }
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = data.unwrap_or_else(|| tmp.path().to_path_buf());
    let demographics = dir.join("site/demographics.parquet");
    if !demographics.exists() || !dir.join("cohort.csv").exists() {
        let started = Instant::now();
        generate(&opts, &dir).unwrap_or_else(|e| {
            eprintln!("synth failed: {e}");
            std::process::exit(1)
        });
        println!(
            "synth: {} people, {} cohort rows in {:.1} s (not part of the link timing)",
            opts.people,
            opts.cohort,
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "link bench on {} threads, data in {}",
        rayon::current_num_threads(),
        dir.display()
    );
    let mut runs = vec![true];
    if !names_only {
        runs.push(false);
    }
    for names in runs {
        let out = Outputs {
            dump: dump.as_deref(),
            candidates: candidates.as_deref(),
            show_model,
        };
        run(&dir, &demographics, names, bar, &out);
    }
}

/// What a run writes besides its timings.
struct Outputs<'a> {
    dump: Option<&'a Path>,
    candidates: Option<&'a Path>,
    show_model: bool,
}

fn run(dir: &Path, demographics: &Path, names: bool, bar: Option<f64>, out: &Outputs<'_>) {
    let mut config = LinkConfig {
        manual_validation: names,
        ..LinkConfig::default()
    };
    if let Some(bar) = bar {
        config.review_probability = bar;
    }
    let (dump, show_model) = (out.dump, out.show_model);
    let started = Instant::now();
    let cohort = read_cohort(&IngestConfig {
        path: dir.join("cohort.csv"),
        required: config.required_columns(),
    })
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let ingest = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let scan = dars::tables::scan(demographics).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let linkage = link::link(&cohort, scan, &config).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let total = started.elapsed().as_secs_f64();
    let t = &linkage.timings;
    let c = &linkage.counts;
    let mib = |m: Option<u64>| m.map_or("?".to_string(), |m| format!("{m} MiB"));
    println!();
    println!(
        "manual_validation = {names}: {} cohort rows x {} people",
        c.rows, t.index_people
    );
    println!("  ingest (not in link)   {ingest:>7.2} s");
    println!(
        "  index + model          {:>7.2} s  {:>10.0} people/s  peak {}",
        t.index_seconds,
        t.index_people as f64 / t.index_seconds,
        mib(t.index_peak_mib)
    );
    println!(
        "  tier 1 cross-check     {:>7.2} s  {:>10.0} rows/s    peak {}  ({} rows)",
        t.tier1_seconds,
        t.tier1_rows as f64 / t.tier1_seconds,
        mib(t.tier1_peak_mib),
        t.tier1_rows
    );
    println!(
        "  tier 2 candidates      {:>7.2} s  {:>10.0} rows/s    peak {}  ({} rows, {} comparisons, {} capped)",
        t.tier2_seconds,
        t.tier2_rows as f64 / t.tier2_seconds.max(1e-9),
        mib(t.tier2_peak_mib),
        t.tier2_rows,
        linkage.blocking.comparisons(),
        linkage.blocking.capped_comparisons()
    );
    println!(
        "  of which the estimate  {:>7.2} s  ({} rows, {} pairs, {} iterations, converged {})",
        t.estimate_seconds, c.model.rows, c.model.pairs, c.model.iterations, c.model.converged
    );
    for g in &c.model.in_index_by_nhs_number {
        println!(
            "    in the index, NHS number {:<18} {:.3} of {} rows",
            g.nhs_number, g.share, g.rows
        );
    }
    println!(
        "    absent people who are a lookalike (tau) {:.3}",
        c.model.lookalike
    );
    println!(
        "  whole link stage       {total:>7.2} s  {:>10.0} rows/s",
        c.rows as f64 / total
    );
    if show_model {
        for p in &c.model.parameters {
            println!(
                "    {:<14} {:<18} m {:>8.5}  u {:>10.3e}  {:>7.2} bits",
                p.field, p.level, p.m, p.u, p.bits
            );
        }
        for p in &c.model.lookalike_parameters {
            println!(
                "    lookalike {:<14} {:<18} m_R {:>8.5}  u {:>10.3e}  {:>7.2} bits",
                p.field, p.level, p.m, p.u, p.bits
            );
        }
    }
    for k in &linkage.blocking.keys {
        println!(
            "    key {:<28} {:>8} lookups {:>9} comparisons {:>6} capped",
            k.key, k.lookups, k.comparisons, k.capped_lookups
        );
    }
    println!(
        "  outcomes: {} validated, {} queued ({} partial, {} ambiguous, {} pairs), {} unmatched, {} invalid",
        c.validated, c.queued, c.partial, c.ambiguous, c.queue_pairs, c.unmatched, c.invalid
    );
    if let Some(path) = out.candidates.filter(|_| names) {
        if let Err(e) = write_candidates(path, &linkage) {
            eprintln!("--candidates {}: {e}", path.display());
            std::process::exit(1)
        }
    }
    if let Some(out) = dump {
        let suffix = if names { "names" } else { "no_names" };
        let written = std::fs::create_dir_all(out)
            .and_then(|()| {
                link::write_linkage_csv(&out.join(format!("linkage_{suffix}.csv")), &linkage.rows)
            })
            .and_then(|()| {
                link::write_review_queue_csv(
                    &out.join(format!("review_queue_{suffix}.csv")),
                    &linkage,
                )
            });
        if let Err(e) = written {
            eprintln!("--dump {}: {e}", out.display());
            std::process::exit(1)
        }
    }
}

/// Every queued candidate with its posterior and levels (identifiable:
/// person IDs and study IDs; mode 0600 like the stage's own outputs).
fn write_candidates(path: &Path, linkage: &link::Linkage) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let mut w = std::io::BufWriter::new(file);
    write!(w, "study_id,rank,person_id,score,probability,weight")?;
    for f in link::Field::ALL {
        write!(w, ",{}_level", f.name())?;
    }
    writeln!(w)?;
    for entry in &linkage.queue {
        for (rank, c) in entry.candidates.iter().enumerate() {
            write!(
                w,
                "{},{},{},{:.1},{:.6e},{:.4}",
                entry.study_id,
                rank + 1,
                c.person_id,
                c.score,
                c.probability,
                c.weight
            )?;
            for l in c.levels {
                write!(w, ",{}", l.as_str())?;
            }
            writeln!(w)?;
        }
    }
    w.flush()
}
