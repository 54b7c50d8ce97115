//! The orchestrator behind `dars run`: wires the stages together in order,
//! owns the work directory, times each stage, and refuses to release
//! anything unless every stage before it succeeded.
//!
//! Work directory layout (identifiable: 0700 folders, 0600 files):
//! ```text
//! WORK/ledger.jsonl                         the release ledger
//! WORK/REFERENCE/pseudonym.key              the agreement's HMAC key
//! WORK/REFERENCE/runs/RUN_ID/linkage.csv
//! WORK/REFERENCE/runs/RUN_ID/review_queue.csv
//! WORK/REFERENCE/runs/RUN_ID/suppression/NAME.csv   what disclosure control did
//! WORK/REFERENCE/runs/RUN_ID/release/       ciphertext, manifest, signature
//! WORK/REFERENCE/runs/RUN_ID/summary.json
//! ```

mod metrics;
mod report;

pub use metrics::StageMetrics;

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use tracing::{info, warn};

use crate::aggregate::{self, AggregateError};
use crate::config::{Agreement, ConfigError, OutputSpec, Site};
use crate::ingest::{self, IngestConfig, IngestError};
use crate::ledger::{Ledger, LedgerError, LedgerEvent};
use crate::link::{self, LinkConfig, LinkCounts, LinkError};
use crate::minimise::{self, MinimiseError, PseudonymKey};
use crate::objections::{self, ObjectionCounts, ObjectionsError};
use crate::package::{
    self, Manifest, ManifestFile, PackageError, Recipients, SigningKey, MANIFEST_NAMESPACE,
};
use crate::push::{self, PushError, PushReport, StagedRelease};
use crate::suppress::{self, Profile, SuppressionCounts};
use crate::tables::FileFormat;

/// How this run goes (flags, not config).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dry_run: bool,
    pub today: NaiveDate,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputSummary {
    pub name: String,
    pub kind: &'static str,
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
    pub objections: ObjectionCounts,
    pub outputs: Vec<OutputSummary>,
    pub stages: Vec<StageMetrics>,
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
    Suppress(#[from] suppress::SuppressError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Push(#[from] PushError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("dataset `{dataset}` of output `{output}`: {source}\n  fix: check `datasets.{dataset}.path` in the site config")]
    Dataset {
        output: String,
        dataset: String,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error("work directory {path}: {action}: {source}\n  fix: check `work.dir` in the site config is writable by this user")]
    WorkDir {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
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

/// Runs every stage for one agreement.
pub fn run(
    site: &Site,
    agreement: &Agreement,
    opts: &RunOptions,
) -> Result<RunSummary, PipelineError> {
    agreement
        .ensure_active(opts.today)
        .map_err(PipelineError::NotActive)?;
    if let crate::config::AgreementStatus::Expiring { days_left } = agreement.status(opts.today) {
        warn!(agreement = %agreement.meta.reference, days_left, "agreement ends soon");
    }
    let reference = agreement.meta.reference.as_str();
    let run_id = new_run_id();
    let agreement_dir = site.work_dir.join(reference);
    let run_dir = agreement_dir.join("runs").join(&run_id);
    crate::workdir::create_private_dir(&run_dir)
        .map_err(PipelineError::work(&run_dir, "creating the run folder"))?;
    info!(agreement = reference, run_id = %run_id, dry_run = opts.dry_run, "run started");
    let mut stages = Vec::new();
    let mut stage = |name: &'static str, started: Instant| {
        let m = StageMetrics::finish(name, started);
        info!(
            stage = name,
            seconds = m.seconds,
            peak_rss_mib = m.peak_rss_mib,
            "stage done"
        );
        stages.push(m);
        metrics::reset_peak();
    };
    metrics::reset_peak();

    // 1. ingest
    let t = Instant::now();
    let link_config = LinkConfig::from_cohort(&agreement.cohort);
    let cohort = ingest::read_cohort(&IngestConfig {
        path: agreement.cohort.path.clone(),
        required: link_config.required_columns(),
    })?;
    for d in &cohort.duplicate_nhs_numbers {
        warn!(study_id = %d.study_id, first_study_id = %d.first_study_id, line = d.line, "same NHS number under two study IDs");
    }
    info!(
        rows = cohort.rows.len(),
        rows_with_value_problems = cohort.rows_with_value_problems(),
        "cohort read"
    );
    stage("ingest", t);

    // 2. link
    let t = Instant::now();
    let demographics = crate::tables::scan(&site.demographics)
        .map_err(|source| LinkError::Demographics { source })?;
    let linkage = link::link(&cohort, demographics, &link_config)?;
    link::write_linkage_csv(&run_dir.join("linkage.csv"), &linkage.rows)
        .map_err(PipelineError::work(&run_dir, "writing linkage.csv"))?;
    link::write_review_queue_csv(&run_dir.join("review_queue.csv"), &linkage)
        .map_err(PipelineError::work(&run_dir, "writing review_queue.csv"))?;
    info!(
        validated = linkage.counts.validated,
        unmatched = linkage.counts.unmatched,
        invalid = linkage.counts.invalid,
        "cohort linked"
    );
    stage("link", t);

    // 3. objections
    let t = Instant::now();
    let register = crate::tables::scan(&site.objections)
        .map_err(|source| ObjectionsError::Register { source })?;
    let released =
        objections::remove_objectors(&linkage.linked, register, &agreement.objections.apply)?;
    info!(
        removed = released.counts.removed,
        released = released.counts.released,
        "objections applied"
    );
    stage("objections", t);

    // 4-5. minimise and aggregate, each output written straight into age.
    let pseudonym = PseudonymKey::load_or_create(&agreement_dir.join("pseudonym.key")).map_err(
        PipelineError::work(&agreement_dir, "loading the pseudonym key"),
    )?;
    let release_dir = run_dir.join("release");
    let recipients = if opts.dry_run {
        None
    } else {
        Some(Recipients::parse(&agreement.release.recipients)?)
    };
    let signing_key = if opts.dry_run {
        None
    } else {
        Some(SigningKey::load(&site.signing_key)?)
    };
    if !opts.dry_run {
        crate::workdir::create_private_dir(&release_dir).map_err(PipelineError::work(
            &release_dir,
            "creating the release folder",
        ))?;
    }
    // Records are sealed as soon as they are built; aggregates are counted
    // first and protected together, so that a cell shared by two tables of
    // one release gets the same treatment in both.
    let mut built: Vec<Option<(OutputSummary, Option<ManifestFile>)>> = vec![None; agreement.outputs.len()];
    let mut tables = Vec::new();
    let seal = |name: &str, format: FileFormat, frame: &mut polars::prelude::DataFrame, kind: &str| -> Result<Option<ManifestFile>, PipelineError> {
        let Some(recipients) = &recipients else { return Ok(None) };
        let sealed = package::seal(&release_dir.join(format!("{name}.{}.age", format.extension())), recipients, |w| {
            crate::tables::write_frame(frame, format, w).map_err(Into::into)
        })?;
        Ok(Some(ManifestFile::from_sealed(&sealed, frame.height() as u64, kind)))
    };
    for (i, spec) in agreement.outputs.iter().enumerate() {
        let t = Instant::now();
        let dataset_name = spec.dataset();
        let source = site.datasets.get(dataset_name).ok_or_else(|| {
            ConfigError::from(crate::config::Problem::error(
                &agreement.file,
                format!("outputs[{i}].dataset"),
                format!("`{dataset_name}` is not a dataset of the site"),
                "add it under [datasets] in the site config or correct the name",
            ))
        })?;
        let dataset = crate::tables::scan(&source.path).map_err(|e| PipelineError::Dataset {
            output: spec.name().to_string(),
            dataset: dataset_name.to_string(),
            source: e,
        })?;
        match spec {
            OutputSpec::Records(r) => {
                let mut frame = minimise::records(r, &released, dataset, &source.key, &pseudonym)?;
                let file = seal(&r.name, r.format, &mut frame, "records")?;
                let rows = frame.height() as u64;
                info!(output = %r.name, kind = "records", rows, "output built");
                let summary = OutputSummary { name: r.name.clone(), kind: "records", file: format!("{}.{}", r.name, r.format.extension()), rows, suppression: None };
                built[i] = Some((summary, file));
                stage("records", t);
            }
            OutputSpec::Aggregate(a) => {
                let table = aggregate::count(a, &released, dataset, &source.key, &pseudonym)?;
                let profile = Profile::resolve(&a.suppression, &agreement.suppression).ok_or_else(|| {
                    ConfigError::from(crate::config::Problem::error(
                        &agreement.file,
                        format!("outputs[{i}].suppression"),
                        format!("unknown profile `{}`", a.suppression),
                        "use hes, csds or a [suppression.NAME] table",
                    ))
                })?;
                tables.push((i, a, suppress::ReleaseTable { name: a.name.clone(), table, profile }));
                stage("aggregate", t);
            }
        }
    }
    if !tables.is_empty() {
        let t = Instant::now();
        let release_tables: Vec<&suppress::ReleaseTable> = tables.iter().map(|(_, _, r)| r).collect();
        let protected = suppress::protect_release(&release_tables)?;
        for ((i, a, r), protected) in tables.iter().zip(protected) {
            report::write_suppression_report(&run_dir.join("suppression"), &a.name, &protected, &r.profile)
                .map_err(PipelineError::work(&run_dir, "writing the suppression report"))?;
            let count_name = match a.count {
                aggregate::CountKind::Persons => "persons",
                aggregate::CountKind::Records => "records",
            };
            let mut frame = protected
                .to_frame(count_name)
                .map_err(|e| AggregateError::Polars { output: a.name.clone(), source: e })?;
            let file = seal(&a.name, a.format, &mut frame, "aggregate")?;
            let rows = frame.height() as u64;
            info!(output = %a.name, kind = "aggregate", rows, cells_suppressed = protected.counts.primary, "output built");
            let summary = OutputSummary {
                name: a.name.clone(),
                kind: "aggregate",
                file: format!("{}.{}", a.name, a.format.extension()),
                rows,
                suppression: Some(protected.counts.clone()),
            };
            built[*i] = Some((summary, file));
        }
        stage("suppress", t);
    }
    let (outputs, files): (Vec<OutputSummary>, Vec<Option<ManifestFile>>) = built.into_iter().flatten().unzip();
    let files: Vec<ManifestFile> = files.into_iter().flatten().collect();

    let mut summary = RunSummary {
        agreement: reference.to_string(),
        run_id: run_id.clone(),
        dry_run: opts.dry_run,
        work_dir: run_dir.clone(),
        cohort_rows: cohort.rows.len(),
        rows_with_value_problems: cohort.rows_with_value_problems(),
        duplicate_nhs_numbers: cohort.duplicate_nhs_numbers.len(),
        linkage: linkage.counts.clone(),
        objections: released.counts.clone(),
        outputs,
        stages: Vec::new(),
        release: None,
    };

    if let (Some(signing_key), false) = (signing_key, opts.dry_run) {
        // 6. manifest and signature: the signature is the commit marker.
        let t = Instant::now();
        let mut counts = std::collections::BTreeMap::new();
        counts.insert(
            "cohort_rows".to_string(),
            serde_json::json!(summary.cohort_rows),
        );
        counts.insert(
            "persons_released".to_string(),
            serde_json::json!(released.counts.released),
        );
        for o in &summary.outputs {
            if let Some(s) = &o.suppression {
                counts.insert(format!("{}.cells", o.name), serde_json::json!(s.cells));
                counts.insert(
                    format!("{}.cells_suppressed", o.name),
                    serde_json::json!(s.primary),
                );
            }
        }
        let manifest = Manifest {
            agreement: reference.to_string(),
            run_id: run_id.clone(),
            created_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            tool_version: format!("dars {}", env!("CARGO_PKG_VERSION")),
            files: files.clone(),
            counts,
        };
        let manifest_bytes = manifest.to_json();
        crate::workdir::write_private(&release_dir.join("manifest.json"), &manifest_bytes)
            .map_err(PipelineError::work(&release_dir, "writing manifest.json"))?;
        let signature = signing_key.sign_sshsig(&manifest_bytes, MANIFEST_NAMESPACE);
        crate::workdir::write_private(&release_dir.join("manifest.json.sig"), signature.as_bytes())
            .map_err(PipelineError::work(
                &release_dir,
                "writing manifest.json.sig",
            ))?;
        stage("package", t);

        // 7. push, signature last.
        let t = Instant::now();
        let mut order: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        order.push("manifest.json".into());
        order.push("manifest.json.sig".into());
        let staged = StagedRelease {
            dir: release_dir.clone(),
            files: order,
            folder: format!("{reference}/{run_id}"),
        };
        let report = push::push(&agreement.release, &staged)?;
        info!(location = %report.location, files = report.files_sent, bytes = report.bytes_sent, "release delivered");
        stage("push", t);

        // 8. ledger.
        let t = Instant::now();
        let ledger = Ledger::open(&ledger_path(site));
        ledger.append(LedgerEvent::Release {
            agreement: reference.to_string(),
            run_id: run_id.clone(),
            destination: report.location.clone(),
            manifest_sha256: hex::encode(ring::digest::digest(
                &ring::digest::SHA256,
                &manifest_bytes,
            )),
            files,
            forced: false,
        })?;
        stage("ledger", t);
        summary.release = Some(report);
    }
    summary.stages = stages;
    let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    crate::workdir::write_private(&run_dir.join("summary.json"), &json)
        .map_err(PipelineError::work(&run_dir, "writing summary.json"))?;
    Ok(summary)
}

/// The installation's ledger: one per work directory.
pub fn ledger_path(site: &Site) -> PathBuf {
    site.work_dir.join("ledger.jsonl")
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
