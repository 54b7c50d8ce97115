//! Deterministic synthetic site data: a master person index, an objections
//! register, a HES admitted patient care dataset, an applicant's cohort file
//! and the truth about every cohort row. It exists so that every stage (and
//! every test and benchmark) can run on realistic data without a single real
//! patient, and so that linkage quality can be measured against a known
//! answer.
//!
//! [`generate`] writes, under `OUT`:
//!
//! | file | what |
//! |---|---|
//! | `site/demographics.parquet` | one row per person (DESIGN.md schema) |
//! | `site/objections.parquet` | about 3% of people `ndoo`, 1.5% `type1` |
//! | `site/hes_apc.parquet` | episodes, 2015–2025, consistent with each person |
//! | `cohort.csv` | what an applicant sends: BOM, CRLF, mixed layouts, errors |
//! | `truth.csv` | `study_id,person_id,kind` for every cohort row |
//!
//! **Deterministic.** The same options give byte-identical files, whatever
//! the number of threads: people and episodes are generated in fixed-size
//! chunks, chunk `i` of stream `s` drawing from a ChaCha8 generator keyed by
//! the seed with stream number `(s, i)`; chunks run in parallel with rayon
//! and are written in order, one Parquet row group per chunk. Nothing reads
//! the clock: "today" is 2025-12-31, and the Parquet writer records no
//! timestamp.
//!
//! **People** live in households of one to four sharing a postcode and
//! usually a surname; some children are twins (same date of birth, postcode
//! and surname; different forename and NHS number). Names follow British
//! frequencies (see `names`), postcodes the UK format (see `places`), NHS
//! numbers are valid, unique and in the 4xx/6xx ranges (never 999). About
//! 1% of postcodes and fewer names are missing; deaths are recorded, more
//! often for the old.
//!
//! **Cohort kinds** (`truth.csv`), each row exactly one, in these shares
//! (exact counts, largest remainder):
//!
//! | kind | share | what the row carries |
//! |---|---|---|
//! | `clean` | 75% | the person's demographics values (layouts vary) |
//! | `moved` | 2.5% | a different valid postcode, usually nearby |
//! | `nhs_typo` | 2.5% | one NHS number digit substituted (fails modulus 11) |
//! | `nhs_transposition` | 1.5% | two adjacent different digits swapped (fails modulus 11) |
//! | `nhs_missing` | 2.5% | a blank NHS number |
//! | `dob_swap` | 2% | day and month of birth swapped (a real, different date) |
//! | `dob_off_by_one` | 1.5% | birth date one day, month or year out |
//! | `name_typo` | 2.5% | one letter substituted or dropped in forename or surname |
//! | `gender_unknown` | 1.5% | gender `9`, `X` or blank |
//! | `not_in_index` | 3% | an invented person with a valid NHS number nobody in demographics has; `person_id` empty |
//! | `unreadable` | 1.5% | one value that cannot be read (`31/02/1980`, gender `7`, postcode `N/A`, NHS number `12345`) in a well-formed row |
//! | `names_swapped` | 0.5% | forename and surname exchanged |
//! | `hyphenated_surname` | 0.5% | the surname double-barrelled with another, in either order (`Smith-Patel`, `Patel-Smith`) |
//! | `twin_no_nhs` | 0.5% | one of a pair of twins (same date of birth, surname and postcode in demographics), with a blank NHS number |
//! | `nickname_no_nhs` | 0.5% | a familiar form of the forename (Bob for Robert, Peggy for Margaret) and a blank NHS number |
//! | `married_moved_no_nhs` | 0.5% | a new surname, a new postcode and a blank NHS number; date of birth, forename and gender right |
//! | `other_persons_nhs` | 0.5% | a valid NHS number that belongs to someone else in demographics (someone in the same household, never a twin; else a random record), everything else right |
//! | `several_errors` | 0.5% | an NHS number with one wrong digit, a misspelt surname and a new postcode, at once |
//! | `absent_lookalike` | 0.5% | not in demographics but resembling someone who is (an unregistered relative at the same address, a namesake elsewhere, or the same surname and date of birth elsewhere); a valid NHS number nobody holds, or none; `person_id` empty |
//!
//! Nobody appears twice in a cohort, and about one row in a hundred belongs
//! to a twin pair included whole.
//!
//! The error model does not come from the linker: each kind is an error
//! applicants' files are known to carry, applied to the true values without
//! regard to how any linker scores them (`other_persons_nhs` avoids a
//! twin's number only because that row would be the twin's own record but
//! for the forename, which is what `twin_no_nhs` covers). For data made
//! outside this project altogether, see `benches/linkage_outside/`.
//!
//! Nothing here logs an NHS number, name, postcode or date of birth: only
//! counts.

mod cohort;
mod episodes;
mod names;
mod people;
mod places;
#[cfg(test)]
mod tests;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::workdir::AtomicFile;
use episodes::{Admissions, ClinicalCodes, EPISODE_CHUNK};
use people::{PeopleChunk, World, NHS_SLOTS, PEOPLE_CHUNK};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// People in demographics.
    pub people: usize,
    /// Rows in the cohort file (at most `people`).
    pub cohort: usize,
    /// Episodes in `hes_apc`.
    pub episodes: usize,
    pub seed: u64,
}

impl Default for SynthOptions {
    /// The shipped test site: small enough to commit (under 5 MB in all).
    fn default() -> Self {
        Self {
            people: 20_000,
            cohort: 2_000,
            episodes: 100_000,
            seed: 20261122,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    pub people: usize,
    pub cohort_rows: usize,
    pub episodes: usize,
    /// Rows in the objections register.
    pub objections: usize,
    /// Every file written, in the order: demographics, objections, hes_apc,
    /// cohort, truth.
    pub files: Vec<PathBuf>,
}

/// Why synthetic data could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(
        "--people {people} plus --cohort {cohort} needs more than the {max} distinct NHS numbers \
         the generator can issue; ask for fewer people"
    )]
    TooManyPeople {
        people: usize,
        cohort: usize,
        max: u64,
    },
    #[error(
        "a cohort of {cohort} rows cannot be drawn from {people} people without repeating \
         someone; raise --people or lower --cohort"
    )]
    CohortLargerThanPopulation { cohort: usize, people: usize },
    #[error(
        "nobody among the {people} people can be admitted between 2015 and 2025, so {episodes} \
         episodes cannot be generated; raise --people or set --episodes 0"
    )]
    NobodyToAdmit { people: usize, episodes: usize },
    #[error("cannot create directory {}: {source}; check that --out is writable", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}; check free space and permissions under --out", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot write {} as Parquet: {source}; check free space and permissions under --out \
         (if they are fine, this is a bug in dars synth: please report it)",
        path.display()
    )]
    Parquet { path: PathBuf, source: PolarsError },
}

/// Independent random streams, so that adding draws to one never shifts
/// another.
#[derive(Debug, Clone, Copy)]
enum Stream {
    People = 1,
    Episodes = 2,
    Cohort = 3,
}

/// The generator for chunk `chunk` of `stream`: one key (the seed), a
/// distinct ChaCha stream per (stream, chunk).
fn chunk_rng(seed: u64, stream: Stream, chunk: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((stream as u64) << 48) | chunk);
    rng
}

/// Chunks needed for `n` items (at least one, so that an empty file still
/// gets its schema).
fn chunk_count(n: usize, per_chunk: usize) -> usize {
    n.div_ceil(per_chunk).max(1)
}

/// Generates the synthetic site, cohort and truth under `out`.
pub fn generate(opts: &SynthOptions, out: &Path) -> Result<SynthSummary, SynthError> {
    if (opts.people as u64).saturating_add(opts.cohort as u64) > NHS_SLOTS {
        return Err(SynthError::TooManyPeople {
            people: opts.people,
            cohort: opts.cohort,
            max: NHS_SLOTS,
        });
    }
    if opts.cohort > opts.people {
        return Err(SynthError::CohortLargerThanPopulation {
            cohort: opts.cohort,
            people: opts.people,
        });
    }
    let site = out.join("site");
    std::fs::create_dir_all(&site).map_err(|source| SynthError::CreateDir {
        path: site.clone(),
        source,
    })?;

    let world = World::new(opts.seed);
    let chunks: Vec<PeopleChunk> = (0..chunk_count(opts.people, PEOPLE_CHUNK))
        .into_par_iter()
        .map(|c| people::people_chunk(&world, c, opts.people))
        .collect();
    let admissions = Admissions::new(&chunks);
    if opts.episodes > 0 && admissions.is_empty() {
        return Err(SynthError::NobodyToAdmit {
            people: opts.people,
            episodes: opts.episodes,
        });
    }

    let demographics = site.join("demographics.parquet");
    write_parquet(&demographics, chunks.len(), |c| {
        people::demographics_frame(&world, &chunks[c])
    })?;
    let objections_path = site.join("objections.parquet");
    let objections = write_parquet(&objections_path, chunks.len(), |c| {
        people::objections_frame(&chunks[c])
    })?;
    let hes = site.join("hes_apc.parquet");
    let codes = ClinicalCodes::new();
    write_parquet(&hes, chunk_count(opts.episodes, EPISODE_CHUNK), |c| {
        episodes::episodes_frame(&codes, &admissions, opts.seed, c, opts.episodes)
    })?;

    let files = cohort::build(&world, &chunks, opts.people, opts.cohort);
    let cohort_path = out.join("cohort.csv");
    write_file(&cohort_path, &files.cohort_csv)?;
    let truth_path = out.join("truth.csv");
    write_file(&truth_path, &files.truth_csv)?;

    tracing::info!(
        people = opts.people,
        episodes = opts.episodes,
        objections,
        cohort_rows = files.rows,
        "synthetic site written"
    );
    Ok(SynthSummary {
        people: opts.people,
        cohort_rows: files.rows,
        episodes: opts.episodes,
        objections,
        files: vec![demographics, objections_path, hes, cohort_path, truth_path],
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SynthError> {
    let write = || -> std::io::Result<()> {
        let mut f = AtomicFile::create(path, 0o600)?;
        f.write_all(bytes)?;
        f.commit()
    };
    write().map_err(|source| SynthError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `chunks` frames made by `make` (chunk index -> frame) to one
/// Parquet file, one row group per chunk, in chunk order. Frames are made
/// in parallel a few at a time while the previous few are written, so
/// memory stays bounded. Returns the number of rows.
fn write_parquet<F>(path: &Path, chunks: usize, make: F) -> Result<usize, SynthError>
where
    F: Fn(usize) -> PolarsResult<DataFrame> + Sync,
{
    let parquet_error = |source| SynthError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let io_error = |source| SynthError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file = AtomicFile::create(path, 0o600).map_err(io_error)?;
    let mut buffered = BufWriter::with_capacity(1 << 20, file);
    let make_batch = |batch: &[usize]| {
        batch
            .par_iter()
            .map(|&c| make(c))
            .collect::<PolarsResult<Vec<DataFrame>>>()
    };
    let indexes: Vec<usize> = (0..chunks.max(1)).collect();
    let mut batches = indexes.chunks(rayon::current_num_threads().max(1));
    let mut pending = make_batch(batches.next().unwrap_or(&[0])).map_err(parquet_error)?;
    let mut rows: usize = pending.iter().map(DataFrame::height).sum();
    {
        // Every frame has the schema of the first one: they come from the
        // same builder code.
        let schema = match pending.first() {
            Some(df) => df.schema().clone(),
            None => return Err(parquet_error(PolarsError::NoData("no frame".into()))),
        };
        let mut writer = ParquetWriter::new(&mut buffered)
            .with_compression(ParquetCompression::Zstd(None))
            .with_statistics(StatisticsOptions::default())
            .batched(&schema)
            .map_err(parquet_error)?;
        for batch in batches {
            // Write the frames made last round while making the next ones.
            let (written, made) = rayon::join(
                || pending.iter().try_for_each(|df| writer.write_batch(df)),
                || make_batch(batch),
            );
            written.map_err(parquet_error)?;
            pending = made.map_err(parquet_error)?;
            rows += pending.iter().map(DataFrame::height).sum::<usize>();
        }
        for df in &pending {
            writer.write_batch(df).map_err(parquet_error)?;
        }
        writer.finish().map_err(parquet_error)?;
    }
    let file = buffered
        .into_inner()
        .map_err(|e| io_error(e.into_error()))?;
    file.commit().map_err(io_error)?;
    Ok(rows)
}
