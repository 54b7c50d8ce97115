//! The orchestrator behind `dars run`: wires the stages together in order,
//! owns the work directory, times each stage, and refuses to release
//! anything unless every stage before it succeeded.
//!
//! Work directory layout (identifiable: 0700 folders, 0600 files):
//! ```text
//! WORK/ledger.jsonl                         the release ledger
//! WORK/ledger.jsonl.head                    its signed head
//! WORK/REFERENCE/run.lock                   held by the one run of the agreement
//! WORK/REFERENCE/pseudonym.key              the agreement's HMAC key
//! WORK/REFERENCE/runs/RUN_ID/linkage.csv
//! WORK/REFERENCE/runs/RUN_ID/review_queue.csv
//! WORK/REFERENCE/runs/RUN_ID/suppression/NAME.csv   what disclosure control did
//! WORK/REFERENCE/runs/RUN_ID/release/       ciphertext, manifest, signature
//! WORK/REFERENCE/runs/RUN_ID/summary.json
//! WORK/REFERENCE/releases/RUN_ID/          the release record: manifest, signature,
//!                                           delivery.json, recorded.json (see [`record`])
//! WORK/REFERENCE/linkage/RUN_ID.parquet     the linkage a release used (see [`reuse`])
//! ```

pub mod batch;
pub mod clean;
mod fault;
pub mod layout;
mod metrics;
mod plan;
pub mod record;
mod report;
pub mod reuse;
mod state;
mod steps;
mod window;

pub use metrics::StageMetrics;
pub use state::{work_records, Checkpoint, RunState, Step, WorkRecords};

use polars::prelude::SerReader;

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use tracing::warn;

use crate::aggregate::AggregateError;
use crate::config::{Agreement, ConfigError, Site};
use crate::ingest::IngestError;
use crate::ledger::{Ledger, LedgerError, LedgerEvent, Verified};
use crate::link::{LinkCounts, LinkError};
use crate::lock::{Holder, Lock, LockError};
use crate::minimise::MinimiseError;
use crate::objections::{ObjectionCounts, ObjectionsError};
use crate::package::{PackageError, SigningKey};
use crate::push::{PushError, PushReport};
use crate::suppress::{self, SuppressionCounts};
use crate::tables::FileFormat;
use crate::workdir::Secured;

/// How this run goes (flags, not config).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dry_run: bool,
    pub today: NaiveDate,
    /// Released although the schedule said it was not due (`--force`);
    /// recorded in the ledger.
    pub forced: bool,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct OutputSummary {
    pub name: String,
    pub kind: String,
    pub file: String,
    pub rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppression: Option<SuppressionCounts>,
}

/// What a run did: counts and study-ID-free facts only, safe to print.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub agreement: String,
    pub run_id: String,
    pub dry_run: bool,
    pub work_dir: PathBuf,
    pub cohort_rows: usize,
    pub rows_with_value_problems: usize,
    pub duplicate_nhs_numbers: usize,
    pub linkage: LinkCounts,
    /// The released linkage taken instead of linking (`[cohort] reuse`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused_linkage: Option<crate::package::ReusedLinkage>,
    pub objections: ObjectionCounts,
    /// What the agreement applies and exempts (issue #12).
    pub objection_policy: crate::config::ObjectionsSection,
    pub outputs: Vec<OutputSummary>,
    pub stages: Vec<StageMetrics>,
    /// The whole run's peak resident memory, MiB, across the resets that
    /// measure each stage's (see [`crate::memory`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<PushReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    NotActive(ConfigError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Objections(#[from] ObjectionsError),
    #[error(transparent)]
    Minimise(#[from] MinimiseError),
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    #[error(transparent)]
    Engine(crate::engine::EngineError),
    #[error(transparent)]
    Suppress(#[from] suppress::SuppressError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Push(#[from] PushError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the ledger cannot record a release, so nothing was sent: {0}")]
    LedgerNotReady(#[source] LedgerError),
    #[error(
        "the release was delivered to {location} but the ledger could not record it: {source}\n  \
         fix: fix the cause and run the same command again: it resumes this run, finds every \
         file delivered and records the release"
    )]
    Unrecorded {
        location: String,
        #[source]
        source: LedgerError,
    },
    #[error(
        "agreement {reference} is being run by another dars ({holder}; lock {}): one run of an \
         agreement at a time, so this one stopped before doing anything\n  fix: wait for that \
         run to finish; if it fails, run this command again and it resumes where it stopped",
        lock.display()
    )]
    Locked {
        reference: String,
        lock: PathBuf,
        holder: Holder,
    },
    #[error(
        "work directory {} is writable by group or others (mode {mode:04o}): anyone could have \
         replaced the ledger, a key or a checkpoint in it\n  fix: check what is in it, then \
         `chmod 700 {}`",
        path.display(),
        path.display()
    )]
    WorkDirWritable { path: PathBuf, mode: u32 },
    #[error(
        "work directory {} is owned by another user (uid {owner}; this dars runs as uid \
         {euid}): whoever owns it can replace the ledger, a key or a checkpoint in it, so \
         it was left as it is and not used\n  fix: set `work.dir` in the site config to a \
         folder of this user's, or run dars as the folder's owner",
        path.display()
    )]
    WorkDirNotOwned {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error("dataset `{dataset}` of output `{output}`: {source}{}", dataset_fix(.source, .dataset))]
    Dataset {
        output: String,
        dataset: String,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error("dataset `{dataset}` of output `{output}`: file {file} cannot be read to its end: {problem}; nothing was released\n  fix: the file is truncated or damaged; copy it again from its source (compare its size and checksum with the source's), then run again: the run resumes")]
    DamagedFile {
        output: String,
        dataset: String,
        file: PathBuf,
        problem: polars::error::PolarsError,
    },
    #[error(
        "output `{output}` is incremental and its rows up to {through} have been released: \
         nothing is new until another month ends\n  fix: run it after the month ends, or \
         re-release the last window with `dars batch --force` (the ledger records it as a repeat)"
    )]
    NothingNew { output: String, through: NaiveDate },
    #[error("adding the cohort's recruited_on to the linked persons: {0}")]
    Recruitment(#[source] polars::error::PolarsError),
    #[error("work directory {path}: {action}: {source}\n  fix: check `work.dir` in the site config is writable by this user")]
    WorkDir {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The fix for a dataset that cannot be scanned, unless the message has
/// its own (a damaged file, a type dars cannot read).
fn dataset_fix(source: &polars::error::PolarsError, dataset: &str) -> String {
    if source.to_string().contains("\n  fix: ") {
        String::new()
    } else {
        format!("\n  fix: check `datasets.{dataset}.path` in the site config")
    }
}

impl From<crate::engine::EngineError> for PipelineError {
    /// The stage's own errors stay the stage's, as on polars.
    fn from(e: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError as E;
        match e {
            E::Minimise(e) => Self::Minimise(e),
            E::Aggregate(e) => Self::Aggregate(e),
            other => Self::Engine(other),
        }
    }
}

impl PipelineError {
    fn work(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> PipelineError {
        let path = path.to_path_buf();
        move |source| PipelineError::WorkDir {
            path,
            action,
            source,
        }
    }
}

/// Runs every stage for one agreement, resuming an unfinished run of the
/// same inputs from its valid checkpoints. Each step is a method of
/// [`steps::Run`]; what a step invalidates is [`RunState::redone`]'s.
pub fn run(
    site: &Site,
    agreement: &Agreement,
    opts: &RunOptions,
) -> Result<RunSummary, PipelineError> {
    let mut run = steps::Run::start(site, agreement, opts)?;
    let linked = run.link()?;
    let released = run.objections(&linked)?;
    let sealed = run.outputs(&released)?;
    let mut summary = run.summary(&released, &sealed);
    summary.release = run.release(&sealed, &summary)?;
    run.finish(summary)
}

const LINKED: &str = "linked.parquet";
const RELEASED: &str = "released.parquet";

fn checkpoint(run_dir: &Path, file: &str) -> Result<Checkpoint, PipelineError> {
    Checkpoint::of(run_dir, file).map_err(PipelineError::work(run_dir, "hashing a checkpoint"))
}

fn write_parquet(path: &Path, df: &mut polars::prelude::DataFrame) -> Result<(), PipelineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = crate::workdir::AtomicFile::create(path, 0o600)
        .map_err(PipelineError::work(dir, "writing a checkpoint"))?;
    crate::tables::write_frame(df, FileFormat::Parquet, &mut file)
        .map_err(|e| PipelineError::work(dir, "writing a checkpoint")(std::io::Error::other(e)))?;
    file.commit()
        .map_err(PipelineError::work(dir, "writing a checkpoint"))
}

fn read_parquet(path: &Path) -> Result<polars::prelude::DataFrame, PipelineError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file =
        std::fs::File::open(path).map_err(PipelineError::work(dir, "reading a checkpoint"))?;
    polars::prelude::ParquetReader::new(file)
        .finish()
        .map_err(|e| PipelineError::work(dir, "reading a checkpoint")(std::io::Error::other(e)))
}

/// The installation's ledger: one per work directory.
pub fn ledger_path(site: &Site) -> PathBuf {
    site.work_dir.join("ledger.jsonl")
}

/// The site's ledger, checked against the site's release signing key.
pub fn open_ledger(site: &Site) -> Result<Ledger, PackageError> {
    let key = SigningKey::load(&site.signing_key)?;
    Ok(Ledger::open(&ledger_path(site), key.verifying_key()))
}

/// What must hold before anything leaves: the ledger verifies, every
/// released run and receipted release record of the work directory is in
/// it, and it can be appended to.
pub fn check_ledger(site: &Site, ledger: &Ledger) -> Result<Verified, LedgerError> {
    let verified = ledger.preflight()?;
    ledger.check_anchors(&verified, &work_records(&site.work_dir).anchors)?;
    Ok(verified)
}

/// [`check_ledger`] without taking the lock or opening the ledger for
/// appending: for commands that only read it (`dars clean`).
pub fn verify_ledger(site: &Site, ledger: &Ledger) -> Result<Verified, LedgerError> {
    let verified = ledger.verify()?;
    ledger.check_anchors(&verified, &work_records(&site.work_dir).anchors)?;
    Ok(verified)
}

/// Records every release record of the work directory that the ledger
/// does not hold yet: a release delivered by a run that died (or whose
/// append failed) before the ledger recorded it. A record of this
/// agreement is this run's to record (its run lock is held); one of
/// another agreement is recorded under that agreement's run lock, and
/// left to its own run while that run is going. Returns how many were
/// recorded.
pub fn record_pending(
    site: &Site,
    ledger: &Ledger,
    key: &SigningKey,
    reference: &str,
) -> Result<usize, LedgerError> {
    let mut recorded = 0;
    for pending in work_records(&site.work_dir).pending {
        let bad = |reason: String| LedgerError::BadReleaseRecord {
            dir: pending.dir.clone(),
            reason,
        };
        let manifest = pending.check(&key.verifying_key()).map_err(bad)?;
        let _other = if pending.agreement == reference {
            None
        } else {
            let lock = layout::run_lock(&layout::agreement_dir(&site.work_dir, &pending.agreement));
            match Lock::try_acquire(&lock) {
                Ok(lock) => Some(lock),
                // Its run is going: it records its own release.
                Err(LockError::Held { .. }) => continue,
                Err(e) => return Err(LedgerError::Lock(e)),
            }
        };
        let verified = ledger.verify()?;
        let manifest_sha256 = pending.manifest_sha256();
        let found = verified.entries.iter().find(|e| {
            matches!(&e.event, LedgerEvent::Release { agreement, run_id, .. }
                if *agreement == pending.agreement && *run_id == pending.run_id)
        });
        let agreement_dir = site.work_dir.join(&pending.agreement);
        let seq = match found {
            Some(entry) => match &entry.event {
                LedgerEvent::Release {
                    manifest_sha256: recorded_sha256,
                    ..
                } if *recorded_sha256 != manifest_sha256 => {
                    return Err(bad(format!(
                        "ledger entry {} records another manifest for that run",
                        entry.seq
                    )))
                }
                _ => entry.seq,
            },
            None => {
                // Never on top of a ledger that lost what the release was
                // made on top of.
                ledger.check_extends(&verified, &pending.anchor())?;
                let entry = ledger.append(
                    LedgerEvent::Release {
                        agreement: pending.agreement.clone(),
                        run_id: pending.run_id.clone(),
                        destination: pending.delivery.destination.clone(),
                        manifest_sha256,
                        files: manifest.files.clone(),
                        forced: pending.delivery.forced,
                        register: pending.delivery.register.clone(),
                        linkage: pending.delivery.linkage.clone(),
                    },
                    key,
                )?;
                warn!(agreement = %pending.agreement, run_id = %pending.run_id, seq = entry.seq, "recorded a release an earlier run delivered (files of it may have left) and did not record: it died or failed between the delivery and the ledger");
                recorded += 1;
                entry.seq
            }
        };
        record::mark_recorded(&agreement_dir, &pending.run_id, seq).map_err(|source| {
            LedgerError::Write {
                path: pending.dir.clone(),
                source,
            }
        })?;
    }
    Ok(recorded)
}

/// `WORK/REFERENCE/run.lock`, held for the whole run. Not waited for: a
/// second run started while one is going is a mistake (two schedulers, a
/// double start), and one that waited would then make a second release.
fn lock_agreement(agreement_dir: &Path, reference: &str) -> Result<Lock, PipelineError> {
    let path = layout::run_lock(agreement_dir);
    Lock::try_acquire(&path).map_err(|e| match e {
        LockError::Held { path, holder } => PipelineError::Locked {
            reference: reference.to_string(),
            lock: path,
            holder,
        },
        LockError::Io { path, source } => PipelineError::WorkDir {
            path,
            action: "taking the agreement's run lock",
            source,
        },
    })
}

/// Creates `dir` private, or makes an existing one private: readable by
/// group or others is tightened to 0700 with a warning, writable by them
/// is refused (anything in it may have been replaced).
pub fn secure_work_dir(dir: &Path) -> Result<(), PipelineError> {
    match crate::workdir::secure_dir(dir)
        .map_err(PipelineError::work(dir, "making the folder private"))?
    {
        Secured::Writable { mode } => Err(PipelineError::WorkDirWritable {
            path: dir.to_path_buf(),
            mode,
        }),
        Secured::NotOwned { owner, euid } => Err(PipelineError::WorkDirNotOwned {
            path: dir.to_path_buf(),
            owner,
            euid,
        }),
        Secured::Tightened { from } => {
            warn!(folder = %dir.display(), mode = %format!("{from:04o}"), "the work directory was readable by group or others: tightened to 0700");
            Ok(())
        }
        Secured::Created | Secured::Private => Ok(()),
    }
}

/// `20261122T093012Z-3fa9`: sortable, and unique even for two runs in one
/// second.
fn new_run_id() -> String {
    let mut suffix = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix);
    format!(
        "{}-{}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        hex::encode(suffix)
    )
}
