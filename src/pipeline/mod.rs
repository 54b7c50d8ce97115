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
//! ```

pub mod batch;
mod fault;
mod metrics;
pub mod record;
mod report;
mod state;
mod window;

pub use metrics::StageMetrics;
pub use state::{work_records, Checkpoint, RunState, WorkRecords};

use polars::prelude::SerReader;

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use tracing::{info, warn};

use crate::aggregate::{self, AggregateError};
use crate::config::{Agreement, ConfigError, OutputSpec, Site};
use crate::ingest::{self, IngestConfig, IngestError};
use crate::ledger::{Ledger, LedgerError, LedgerEvent, Verified};
use crate::link::{self, LinkConfig, LinkCounts, LinkError};
use crate::lock::{Holder, Lock, LockError};
use crate::minimise::{self, MinimiseError, PseudonymKey};
use crate::objections::{self, Linked, ObjectionCounts, ObjectionsError, Released};
use crate::package::{self, Manifest, ManifestFile, PackageError, Recipients, SigningKey};
use crate::push::{self, PushError, PushReport, StagedRelease};
use crate::suppress::{self, Profile, SuppressionCounts};
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
    pub objections: ObjectionCounts,
    /// What the agreement applies and exempts (issue #12).
    pub objection_policy: crate::config::ObjectionsSection,
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
    #[error("dataset `{dataset}` of output `{output}`: {source}\n  fix: check `datasets.{dataset}.path` in the site config")]
    Dataset {
        output: String,
        dataset: String,
        #[source]
        source: polars::error::PolarsError,
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
/// same inputs from its valid checkpoints.
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
    let agreement_dir = site.work_dir.join(reference);
    secure_work_dir(&site.work_dir)?;
    secure_work_dir(&agreement_dir)?;
    // One run per agreement at a time, for the whole run: two would share
    // a run id, a work folder and a destination folder.
    let _run_lock = lock_agreement(&agreement_dir, reference)?;
    fault::point("lock");
    // Nothing is worth computing that the ledger could not record: check
    // the signing key and the ledger now, and again before the push.
    let signing = if opts.dry_run {
        None
    } else {
        let key = SigningKey::load(&site.signing_key)?;
        let ledger = Ledger::open(&ledger_path(site), key.verifying_key());
        check_ledger(site, &ledger).map_err(PipelineError::LedgerNotReady)?;
        // A release an earlier run delivered and did not record (it died
        // between the two) is recorded before anything else leaves.
        record_pending(site, &ledger, &key, reference).map_err(PipelineError::LedgerNotReady)?;
        Some((key, ledger))
    };
    let runs_dir = agreement_dir.join("runs");
    crate::workdir::create_private_dir(&runs_dir)
        .map_err(PipelineError::work(&runs_dir, "creating the runs folder"))?;
    let fingerprint = state::fingerprint(site, agreement).map_err(PipelineError::work(
        &agreement.file,
        "fingerprinting the inputs",
    ))?;
    let resumable = if opts.dry_run {
        None
    } else {
        state::find_resumable(&runs_dir, &fingerprint)
    };
    let (run_dir, mut st) = match resumable {
        Some(found) => found,
        None => {
            let run_id = new_run_id();
            let dir = runs_dir.join(&run_id);
            crate::workdir::create_private_dir(&dir)
                .map_err(PipelineError::work(&dir, "creating the run folder"))?;
            let st = RunState {
                fingerprint,
                run_id,
                started_ns: state::now_ns(),
                dry_run: opts.dry_run,
                ..Default::default()
            };
            (dir, st)
        }
    };
    let run_id = st.run_id.clone();
    let save = |st: &RunState| {
        st.save(&run_dir)
            .map_err(PipelineError::work(&run_dir, "saving state.json"))
    };
    save(&st)?;
    info!(agreement = reference, run_id = %run_id, dry_run = opts.dry_run, resumed = st.linkage.is_some(), "run started");
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

    // 1-2. ingest and link, checkpointed as linked.parquet.
    let t = Instant::now();
    let linked = match st.linkage.as_ref().filter(|(_, cp)| cp.valid(&run_dir)) {
        Some(_) => {
            info!("linkage checkpoint valid: reused");
            let linked = Linked {
                persons: read_parquet(&run_dir.join(LINKED))?,
            };
            stage("link", t);
            linked
        }
        None => {
            let link_config = LinkConfig::from_cohort(&agreement.cohort);
            let backdate = agreement.cohort.backdate;
            let mut required = link_config.required_columns();
            if !backdate {
                required.push((ingest::CohortField::RecruitedOn, "cohort.backdate".into()));
            }
            let mut cohort = ingest::read_cohort(&IngestConfig {
                path: agreement.cohort.path.clone(),
                required,
            })?;
            if !backdate {
                require_recruitment_dates(&mut cohort);
            }
            for d in &cohort.duplicate_nhs_numbers {
                warn!(study_id = %d.study_id, first_study_id = %d.first_study_id, line = d.line, "same NHS number under two study IDs");
            }
            info!(
                rows = cohort.rows.len(),
                rows_with_value_problems = cohort.rows_with_value_problems(),
                "cohort read"
            );
            stage("ingest", t);
            let t_link = Instant::now();
            let demographics = crate::tables::scan(&site.demographics)
                .map_err(|source| LinkError::Demographics { source })?;
            let linkage = link::link(&cohort, demographics, &link_config)?;
            link::write_linkage_csv(&run_dir.join("linkage.csv"), &linkage.rows)
                .map_err(PipelineError::work(&run_dir, "writing linkage.csv"))?;
            link::write_review_queue_csv(&run_dir.join("review_queue.csv"), &linkage)
                .map_err(PipelineError::work(&run_dir, "writing review_queue.csv"))?;
            let mut linkage = linkage;
            if !backdate {
                linkage.linked.persons = with_recruitment(&linkage.linked.persons, &cohort)?;
            }
            let mut persons = linkage.linked.persons.clone();
            write_parquet(&run_dir.join(LINKED), &mut persons)?;
            info!(
                validated = linkage.counts.validated,
                unmatched = linkage.counts.unmatched,
                invalid = linkage.counts.invalid,
                "cohort linked"
            );
            st.cohort_rows = cohort.rows.len();
            st.rows_with_value_problems = cohort.rows_with_value_problems();
            st.duplicate_nhs_numbers = cohort.duplicate_nhs_numbers.len();
            st.linkage = Some((linkage.counts.clone(), checkpoint(&run_dir, LINKED)?));
            // Everything after linkage depends on it.
            st.objections = None;
            st.outputs.clear();
            st.package = None;
            save(&st)?;
            stage("link", t_link);
            linkage.linked
        }
    };
    fault::point("link");

    // 3. objections, checkpointed as released.parquet.
    let t = Instant::now();
    let released = match st.objections.as_ref().filter(|(_, cp)| cp.valid(&run_dir)) {
        Some((counts, _)) => Released {
            persons: read_parquet(&run_dir.join(RELEASED))?,
            counts: counts.clone(),
        },
        None => {
            let register = crate::tables::scan(&site.objections).map_err(|source| {
                ObjectionsError::Register {
                    file: site.objections.clone(),
                    source,
                }
            })?;
            let released = objections::remove_objectors(
                &linked,
                register,
                &site.objections,
                &agreement.objections.apply,
            )?;
            let mut persons = released.persons.clone();
            write_parquet(&run_dir.join(RELEASED), &mut persons)?;
            info!(
                removed = released.counts.removed,
                released = released.counts.released,
                "objections applied"
            );
            st.objections = Some((released.counts.clone(), checkpoint(&run_dir, RELEASED)?));
            st.outputs.clear();
            st.package = None;
            save(&st)?;
            released
        }
    };
    stage("objections", t);
    fault::point("objections");

    // 4-5. outputs, each written straight into age. Records are sealed as
    // soon as they are built; aggregates are counted first and protected
    // together, so that a cell shared by two tables of one release gets the
    // same treatment in both.
    let pseudonym = PseudonymKey::load_or_create(&agreement_dir.join("pseudonym.key")).map_err(
        PipelineError::work(&agreement_dir, "loading the pseudonym key"),
    )?;
    let release_dir = run_dir.join("release");
    let recipients = if opts.dry_run {
        None
    } else {
        Some(Recipients::parse(&agreement.release.recipients)?)
    };
    if !opts.dry_run {
        crate::workdir::create_private_dir(&release_dir).map_err(PipelineError::work(
            &release_dir,
            "creating the release folder",
        ))?;
    }
    let sealed_valid = |o: &state::SealedOutput| match &o.manifest {
        Some(m) => state::sha256_file(&release_dir.join(&m.name)).is_ok_and(|h| h == m.sha256),
        None => false,
    };
    let seal = |name: &str,
                kind: &'static str,
                format: FileFormat,
                frame: &mut polars::prelude::DataFrame,
                suppression: Option<SuppressionCounts>,
                period: Option<&crate::config::Period>,
                window: Option<&crate::config::Window>|
     -> Result<state::SealedOutput, PipelineError> {
        let rows = frame.height() as u64;
        let file = format!("{name}.{}", format.extension());
        let (manifest, plaintext_sha256) = match &recipients {
            Some(recipients) => {
                let sealed =
                    package::seal(&release_dir.join(format!("{file}.age")), recipients, |w| {
                        crate::tables::write_frame(frame, format, w).map_err(Into::into)
                    })?;
                let plaintext = sealed.plaintext_sha256.clone();
                (
                    Some(ManifestFile {
                        period: period.cloned(),
                        window: window.cloned(),
                        ..ManifestFile::from_sealed(&sealed, rows, kind)
                    }),
                    Some(plaintext),
                )
            }
            None => (None, None),
        };
        info!(output = name, kind, rows, "output built");
        Ok(state::SealedOutput {
            summary: OutputSummary {
                name: name.to_string(),
                kind: kind.to_string(),
                file,
                rows,
                suppression,
            },
            manifest,
            plaintext_sha256,
        })
    };
    // Incremental outputs take their window from the ledger.
    let entries = if agreement.outputs.iter().any(OutputSpec::incremental) {
        open_ledger(site)?.entries()?
    } else {
        Vec::new()
    };
    let mut windows = std::collections::BTreeMap::new();
    for spec in agreement.outputs.iter().filter(|o| o.incremental()) {
        let Some(period) = spec.period() else {
            continue;
        };
        let format = match spec {
            OutputSpec::Records(r) => r.format,
            OutputSpec::Aggregate(a) => a.format,
        };
        let file = format!("{}.{}.age", spec.name(), format.extension());
        let last = window::last_window(&entries, reference, &file);
        let w = window::next_window(period, last.as_ref(), opts.today, opts.forced).map_err(
            |through| PipelineError::NothingNew {
                output: spec.name().to_string(),
                through,
            },
        )?;
        info!(output = spec.name(), from = %w.from, to = %w.to, repeats = w.repeats_last_window, "incremental window");
        windows.insert(spec.name().to_string(), w);
    }
    let mut tables = Vec::new();
    for (i, spec) in agreement.outputs.iter().enumerate() {
        if st.outputs.get(spec.name()).is_some_and(&sealed_valid) {
            info!(
                output = spec.name(),
                "sealed output checkpoint valid: reused"
            );
            continue;
        }
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
        let window = windows.get(spec.name());
        let scope = window.map(crate::config::Window::as_period);
        let period = scope.as_ref().or(spec.period());
        let dataset = match period {
            Some(p) => crate::tables::scan_pruned(&source.path, &|k, v| p.keeps_partition(k, v)),
            None => crate::tables::scan(&source.path),
        }
        .map_err(|e| PipelineError::Dataset {
            output: spec.name().to_string(),
            dataset: dataset_name.to_string(),
            source: e,
        })?;
        let dataset = match period {
            Some(p) => within_period(dataset, p, &agreement.file, i).map_err(|e| match e {
                Ok(problem) => PipelineError::from(ConfigError::from(problem)),
                Err(source) => PipelineError::Dataset {
                    output: spec.name().to_string(),
                    dataset: dataset_name.to_string(),
                    source,
                },
            })?,
            None => dataset,
        };
        match spec {
            OutputSpec::Records(r) => {
                let mut frame = minimise::records(r, &released, dataset, &source.key, &pseudonym)?;
                let sealed = seal(
                    &r.name,
                    "records",
                    r.format,
                    &mut frame,
                    None,
                    r.period.as_ref(),
                    window,
                )?;
                st.outputs.insert(r.name.clone(), sealed);
                st.package = None;
                save(&st)?;
                stage("records", t);
                fault::point(&format!("output:{}", r.name));
            }
            OutputSpec::Aggregate(a) => {
                let table = aggregate::count(a, &released, dataset, &source.key, &pseudonym)?;
                let profile =
                    Profile::resolve(&a.suppression, &agreement.suppression).ok_or_else(|| {
                        ConfigError::from(crate::config::Problem::error(
                            &agreement.file,
                            format!("outputs[{i}].suppression"),
                            format!("unknown profile `{}`", a.suppression),
                            "use hes, csds or a [suppression.NAME] table",
                        ))
                    })?;
                tables.push((
                    a,
                    suppress::ReleaseTable {
                        name: a.name.clone(),
                        table,
                        profile,
                    },
                ));
                stage("aggregate", t);
            }
        }
    }
    if !tables.is_empty() {
        let t = Instant::now();
        let release_tables: Vec<&suppress::ReleaseTable> = tables.iter().map(|(_, r)| r).collect();
        let protected = suppress::protect_release(&release_tables)?;
        for ((a, r), protected) in tables.iter().zip(protected) {
            report::write_suppression_report(
                &run_dir.join("suppression"),
                &a.name,
                &protected,
                &r.profile,
            )
            .map_err(PipelineError::work(
                &run_dir,
                "writing the suppression report",
            ))?;
            let count_name = match a.count {
                aggregate::CountKind::Persons => "persons",
                aggregate::CountKind::Records => "records",
            };
            let mut frame = protected
                .to_frame(count_name)
                .map_err(|e| AggregateError::Polars {
                    output: a.name.clone(),
                    source: e,
                })?;
            let sealed = seal(
                &a.name,
                "aggregate",
                a.format,
                &mut frame,
                Some(protected.counts.clone()),
                a.period.as_ref(),
                windows.get(&a.name),
            )?;
            st.outputs.insert(a.name.clone(), sealed);
            st.package = None;
            save(&st)?;
            fault::point(&format!("output:{}", a.name));
        }
        stage("suppress", t);
    }
    // Manifest order is agreement order.
    let sealed: Vec<&state::SealedOutput> = agreement
        .outputs
        .iter()
        .filter_map(|o| st.outputs.get(o.name()))
        .collect();
    let files: Vec<ManifestFile> = sealed.iter().filter_map(|o| o.manifest.clone()).collect();

    let mut summary = RunSummary {
        agreement: reference.to_string(),
        run_id: run_id.clone(),
        dry_run: opts.dry_run,
        work_dir: run_dir.clone(),
        cohort_rows: st.cohort_rows,
        rows_with_value_problems: st.rows_with_value_problems,
        duplicate_nhs_numbers: st.duplicate_nhs_numbers,
        linkage: st
            .linkage
            .as_ref()
            .map(|(c, _)| c.clone())
            .unwrap_or_default(),
        objections: released.counts.clone(),
        objection_policy: agreement.objections.clone(),
        outputs: sealed.iter().map(|o| o.summary.clone()).collect(),
        stages: Vec::new(),
        release: None,
    };

    if let Some((signing_key, ledger)) = &signing {
        // 6. manifest and signature: the signature is the commit marker.
        let t = Instant::now();
        let manifest_path = release_dir.join("manifest.json");
        let manifest_bytes = match st
            .package
            .as_ref()
            .filter(|cp| cp.valid(&run_dir) && release_dir.join("manifest.json.sig").is_file())
        {
            Some(_) => std::fs::read(&manifest_path)
                .map_err(PipelineError::work(&release_dir, "reading manifest.json"))?,
            None => {
                // The manifest is signed, not encrypted, and feeds the
                // public register: it counts each aggregate's cells and
                // those suppressed (what a recipient checks a table
                // against), never people (cohort, linkage, objectors or
                // persons released stay in the work directory's summary).
                let mut counts = std::collections::BTreeMap::new();
                for o in &summary.outputs {
                    if let Some(s) = &o.suppression {
                        counts.insert(format!("{}.cells", o.name), serde_json::json!(s.cells));
                        counts.insert(
                            format!("{}.cells_suppressed", o.name),
                            serde_json::json!(s.suppressed()),
                        );
                    }
                }
                let manifest = Manifest {
                    agreement: reference.to_string(),
                    run_id: run_id.clone(),
                    created_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    tool_version: format!("dars {}", env!("CARGO_PKG_VERSION")),
                    // The entry this release is made on top of: recipients'
                    // copies anchor the ledger from outside.
                    ledger_head: Some(ledger.verify()?.head),
                    objections: Some(agreement.objections.clone()),
                    files: files.clone(),
                    counts,
                };
                let signed = manifest.sign(signing_key);
                signed.write_to(&release_dir)?;
                let bytes = signed.json;
                st.package = Some(checkpoint(&run_dir, "release/manifest.json")?);
                save(&st)?;
                bytes
            }
        };
        stage("package", t);
        fault::point("package");

        // 7. push, signature last; files already whole at the destination
        // (from a run that died during the push) are not sent again.
        let t = Instant::now();
        let mut order: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        order.push("manifest.json".into());
        order.push("manifest.json.sig".into());
        let staged = StagedRelease {
            dir: release_dir.clone(),
            files: order,
            folder: format!("{reference}/{run_id}"),
        };
        check_ledger(site, ledger).map_err(PipelineError::LedgerNotReady)?;
        // The record of the release, kept before the first file leaves: if
        // this process dies between the delivery and the ledger append,
        // the next run finds it and records the release.
        let signature = std::fs::read(release_dir.join(package::SIGNATURE_FILE)).map_err(
            PipelineError::work(&release_dir, "reading manifest.json.sig"),
        )?;
        let delivery = record::Delivery {
            destination: format!("{}/{}", agreement.release.destination, staged.folder),
            forced: opts.forced,
        };
        record::keep(
            &agreement_dir,
            &run_id,
            &manifest_bytes,
            &signature,
            &delivery,
        )
        .map_err(PipelineError::work(
            &agreement_dir,
            "keeping the release record",
        ))?;
        let report = match push::push(&agreement.release, &staged) {
            Ok(report) => report,
            Err(e) => {
                record::discard(&agreement_dir, &run_id);
                return Err(e.into());
            }
        };
        fault::point("delivered");
        info!(location = %report.location, files = report.files_sent, already_there = report.files_already_there, bytes = report.bytes_sent, "release delivered");
        st.pushed = Some(report.clone());
        save(&st)?;
        stage("push", t);
        fault::point("push");

        // 8. ledger, once per run id.
        let t = Instant::now();
        let unrecorded = |source| PipelineError::Unrecorded {
            location: report.location.clone(),
            source,
        };
        let already = ledger.entries().map_err(unrecorded)?.into_iter().find(|e| matches!(&e.event, LedgerEvent::Release { agreement, run_id: r, .. } if agreement == reference && *r == run_id));
        let entry = match already {
            Some(entry) => entry,
            None => ledger
                .append(
                    LedgerEvent::Release {
                        agreement: reference.to_string(),
                        run_id: run_id.clone(),
                        destination: report.location.clone(),
                        manifest_sha256: package::sha256_hex(&manifest_bytes),
                        files,
                        forced: opts.forced,
                    },
                    signing_key,
                )
                .map_err(unrecorded)?,
        };
        if let Err(e) = record::mark_recorded(&agreement_dir, &run_id, entry.seq) {
            // Recorded all the same; the next run finds the entry and
            // writes the receipt.
            warn!(run_id = %run_id, seq = entry.seq, error = %e, "the release is in the ledger but its record's receipt could not be written");
        }
        st.released = true;
        save(&st)?;
        stage("ledger", t);
        summary.release = Some(report);
    }
    summary.stages = stages;
    let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    crate::workdir::write_private(&run_dir.join("summary.json"), &json)
        .map_err(PipelineError::work(&run_dir, "writing summary.json"))?;
    Ok(summary)
}

/// With `cohort.backdate = false`, a row without a usable `recruited_on`
/// is a value problem with its reason (an unreadable date already is): the
/// linkage table says why, and no row of that person leaves.
fn require_recruitment_dates(cohort: &mut ingest::Cohort) {
    for row in &mut cohort.rows {
        let said = row
            .problems
            .iter()
            .any(|p| p.field == ingest::CohortField::RecruitedOn);
        if row.recruited_on.is_none() && !said {
            row.problems.push(ingest::ValueProblem {
                field: ingest::CohortField::RecruitedOn,
                reason: "is missing, and `cohort.backdate = false` releases only rows on or \
                         after it: nothing is released for this row"
                    .into(),
            });
        }
    }
}

/// The linked persons with each study ID's `recruited_on` (null where the
/// cohort row has none), for `cohort.backdate = false`.
fn with_recruitment(
    persons: &polars::prelude::DataFrame,
    cohort: &ingest::Cohort,
) -> Result<polars::prelude::DataFrame, PipelineError> {
    use polars::prelude::*;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a day");
    let ids: Vec<&str> = cohort.rows.iter().map(|r| r.study_id.as_str()).collect();
    let days: Vec<Option<i32>> = cohort
        .rows
        .iter()
        .map(|r| r.recruited_on.map(|d| (d - epoch).num_days() as i32))
        .collect();
    let wrap = |source: PolarsError| PipelineError::Recruitment(crate::tables::redact(source));
    let dates = DataFrame::new_infer_height(vec![
        Column::new("study_id".into(), ids),
        Int32Chunked::from_iter_options("recruited_on".into(), days.into_iter())
            .into_date()
            .into_column(),
    ])
    .map_err(wrap)?;
    let joined = persons
        .clone()
        .lazy()
        .join(
            dates.lazy(),
            [col("study_id")],
            [col("study_id")],
            JoinArgs::new(JoinType::Left),
        )
        .collect()
        .map_err(wrap)?;
    Ok(joined)
}

/// Only the dataset's rows whose period column falls inside the period
/// (both ends included; a row without a date is outside). A column that is
/// missing or not a date is the agreement's problem, naming the key.
fn within_period(
    mut dataset: polars::prelude::LazyFrame,
    period: &crate::config::Period,
    file: &Path,
    i: usize,
) -> Result<polars::prelude::LazyFrame, Result<crate::config::Problem, polars::prelude::PolarsError>>
{
    use polars::prelude::*;
    let schema = dataset
        .collect_schema()
        .map_err(|e| Err(crate::tables::redact(e)))?;
    if let Some(problem) =
        crate::config::schema_problem(period, file, &format!("outputs[{i}]"), &schema)
    {
        return Err(Ok(problem));
    }
    let day = col(period.column.as_str()).cast(DataType::Date);
    Ok(dataset.filter(
        day.clone()
            .gt_eq(lit(period.from))
            .and(day.lt_eq(lit(period.to))),
    ))
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
            let lock = site.work_dir.join(&pending.agreement).join("run.lock");
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
    let path = agreement_dir.join("run.lock");
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
