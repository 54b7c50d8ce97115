//! `dars run` as a sequence of steps over one [`Run`] value: each step reads
//! what the steps before it left in the run, does its stage (or reuses its
//! valid checkpoint), and records its checkpoint with [`Run::checkpointed`],
//! which saves `state.json` after forgetting everything that depends on the
//! step ([`RunState::redone`]). A new stage is a new method here, a
//! [`Step`] variant if it is checkpointed, and a line in [`super::run`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use chrono::Utc;
use polars::prelude::PolarsError;
use tracing::{info, warn};

use super::plan::{Plan, Planned};
use super::state::{self, Step};
use super::{
    check_ledger, checkpoint, fault, ledger_path, lock_agreement, metrics, new_run_id,
    read_parquet, record, record_pending, report, reuse, secure_work_dir, window, write_parquet,
    OutputSummary, PipelineError, RunOptions, RunState, RunSummary, StageMetrics, LINKED, RELEASED,
};
use crate::aggregate::{self, AggregateError};
use crate::config::{Agreement, ConfigError, OutputSpec, Site};
use crate::ingest::{self, IngestConfig};
use crate::ledger::{Ledger, LedgerEvent};
use crate::link::{self, LinkConfig, LinkError};
use crate::lock::Lock;
use crate::minimise::{self, MinimiseError, PseudonymKey};
use crate::objections::{self, Linked, ObjectionsError, Released};
use crate::package::{self, Manifest, ManifestFile, Recipients, SigningKey};
use crate::period::{Period, Window};
use crate::push::{self, PushReport, StagedRelease};
use crate::suppress::{self, SuppressionCounts};
use crate::tables::FileFormat;

/// One run of one agreement: where it works, what it has done so far, and
/// the timings of its stages.
pub(super) struct Run<'a> {
    site: &'a Site,
    agreement: &'a Agreement,
    opts: &'a RunOptions,
    /// The agreement resolved against the site, once, at the start
    /// (shared, so that a step can read it while it updates the run).
    plan: Rc<Plan<'a>>,
    reference: &'a str,
    agreement_dir: PathBuf,
    run_dir: PathBuf,
    release_dir: PathBuf,
    st: RunState,
    stages: Vec<StageMetrics>,
    /// The release signing key and the ledger; `None` on a dry run.
    signing: Option<(SigningKey, Ledger)>,
    _run_lock: Lock,
}

impl<'a> Run<'a> {
    /// Checks that the agreement is active and the work directory safe,
    /// takes the agreement's run lock, checks the ledger can record a
    /// release (recording one an earlier run delivered and did not), and
    /// opens the run to resume or a new one.
    pub(super) fn start(
        site: &'a Site,
        agreement: &'a Agreement,
        opts: &'a RunOptions,
    ) -> Result<Self, PipelineError> {
        agreement
            .ensure_active(opts.today)
            .map_err(PipelineError::NotActive)?;
        if let crate::config::AgreementStatus::Expiring { days_left } = agreement.status(opts.today)
        {
            warn!(agreement = %agreement.meta.reference, days_left, "agreement ends soon");
        }
        let plan = Rc::new(Plan::resolve(site, agreement)?);
        let reference = agreement.meta.reference.as_str();
        let agreement_dir = super::layout::agreement_dir(&site.work_dir, reference);
        secure_work_dir(&site.work_dir)?;
        secure_work_dir(&agreement_dir)?;
        // One run per agreement at a time, for the whole run: two would
        // share a run id, a work folder and a destination folder.
        let run_lock = lock_agreement(&agreement_dir, reference)?;
        fault::point("lock");
        // Nothing is worth computing that the ledger could not record:
        // check the signing key and the ledger now, and again before the
        // push.
        let signing = if opts.dry_run {
            None
        } else {
            let key = SigningKey::load(&site.signing_key)?;
            let ledger = Ledger::open(&ledger_path(site), key.verifying_key());
            check_ledger(site, &ledger).map_err(PipelineError::LedgerNotReady)?;
            // A release an earlier run delivered and did not record (it
            // died between the two) is recorded before anything else
            // leaves.
            record_pending(site, &ledger, &key, reference)
                .map_err(PipelineError::LedgerNotReady)?;
            Some((key, ledger))
        };
        let runs_dir = super::layout::runs_dir(&agreement_dir);
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
        let (run_dir, st) = match resumable {
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
        let run = Self {
            site,
            agreement,
            opts,
            plan,
            reference,
            agreement_dir,
            release_dir: run_dir.join("release"),
            run_dir,
            st,
            stages: Vec::new(),
            signing,
            _run_lock: run_lock,
        };
        run.save()?;
        info!(agreement = reference, run_id = %run.st.run_id, dry_run = opts.dry_run, resumed = run.st.linkage.is_some(), "run started");
        metrics::reset_peak();
        Ok(run)
    }

    fn save(&self) -> Result<(), PipelineError> {
        self.st
            .save(&self.run_dir)
            .map_err(PipelineError::work(&self.run_dir, "saving state.json"))
    }

    /// Records that `step` was just done (its own checkpoint already set in
    /// the state): forgets what depends on it, and saves the state.
    fn checkpointed(&mut self, step: Step) -> Result<(), PipelineError> {
        self.st.redone(step);
        self.save()
    }

    /// Ends a stage's timing and peak memory.
    fn stage(&mut self, name: &'static str, started: Instant) {
        let m = StageMetrics::finish(name, started);
        info!(
            stage = name,
            seconds = m.seconds,
            peak_rss_mib = m.peak_rss_mib,
            "stage done"
        );
        self.stages.push(m);
        metrics::reset_peak();
    }

    /// Steps 1-2: ingest and link, checkpointed as `linked.parquet`; or,
    /// with `[cohort] reuse`, another agreement's released linkage.
    pub(super) fn link(&mut self) -> Result<Linked, PipelineError> {
        if self.agreement.cohort.reuse.is_some() {
            return self.reuse();
        }
        let t = Instant::now();
        let run_dir = self.run_dir.clone();
        if self
            .st
            .linkage
            .as_ref()
            .is_some_and(|(_, cp)| cp.valid(&run_dir))
        {
            info!("linkage checkpoint valid: reused");
            let linked = Linked {
                persons: read_parquet(&run_dir.join(LINKED))?,
            };
            self.stage("link", t);
            fault::point("link");
            return Ok(linked);
        }
        let link_config = LinkConfig::from_cohort(&self.agreement.cohort);
        let backdate = self.agreement.cohort.backdate;
        let mut required = link_config.required_columns();
        if !backdate {
            required.push((ingest::CohortField::RecruitedOn, "cohort.backdate".into()));
        }
        let Some(cohort_path) = self.agreement.cohort.path.clone() else {
            unreachable!("an agreement loads with a cohort path or reuse")
        };
        let mut cohort = ingest::read_cohort(&IngestConfig {
            path: cohort_path,
            required,
        })?;
        if !backdate {
            window::require_recruitment_dates(&mut cohort);
        }

        for d in &cohort.duplicate_nhs_numbers {
            warn!(study_id = %d.study_id, first_study_id = %d.first_study_id, line = d.line, "same NHS number under two study IDs");
        }
        info!(
            rows = cohort.rows.len(),
            rows_with_value_problems = cohort.rows_with_value_problems(),
            "cohort read"
        );
        self.stage("ingest", t);
        let t_link = Instant::now();
        let demographics = crate::tables::scan(&self.site.demographics)
            .map_err(|source| LinkError::Demographics { source })?;
        let mut linkage = link::link(&cohort, demographics, &link_config)?;
        link::write_linkage_csv(&run_dir.join("linkage.csv"), &linkage.rows)
            .map_err(PipelineError::work(&run_dir, "writing linkage.csv"))?;
        link::write_review_queue_csv(&run_dir.join("review_queue.csv"), &linkage)
            .map_err(PipelineError::work(&run_dir, "writing review_queue.csv"))?;
        if !backdate {
            linkage.linked.persons = window::with_recruitment(&linkage.linked.persons, &cohort)?;
        }
        let mut persons = linkage.linked.persons.clone();
        write_parquet(&run_dir.join(LINKED), &mut persons)?;
        info!(
            validated = linkage.counts.validated,
            unmatched = linkage.counts.unmatched,
            invalid = linkage.counts.invalid,
            "cohort linked"
        );
        self.st.cohort_rows = cohort.rows.len();
        self.st.rows_with_value_problems = cohort.rows_with_value_problems();
        self.st.duplicate_nhs_numbers = cohort.duplicate_nhs_numbers.len();
        self.st.linkage = Some((linkage.counts.clone(), checkpoint(&run_dir, LINKED)?));
        self.checkpointed(Step::Link)?;
        self.stage("link", t_link);
        fault::point("link");
        Ok(linkage.linked)
    }

    /// Step 2 with `[cohort] reuse`: the latest released linkage of the
    /// named agreement, checked against the verified ledger (see
    /// [`reuse`]), joined to the current index, checkpointed as
    /// `linked.parquet`. The checkpoint is reused only while it is of the
    /// same released linkage.
    fn reuse(&mut self) -> Result<Linked, PipelineError> {
        let t = Instant::now();
        let ledger = super::open_ledger(self.site)?;
        let verified =
            super::verify_ledger(self.site, &ledger).map_err(PipelineError::LedgerNotReady)?;
        let file = self.agreement.file.as_path();
        let source = reuse::find(self.site, &verified.entries, self.agreement)
            .map_err(|e| PipelineError::from((e, file)))?
            .expect("the agreement reuses a linkage");
        let run_dir = self.run_dir.clone();
        let valid = self
            .st
            .linkage
            .as_ref()
            .is_some_and(|(_, cp)| cp.valid(&run_dir))
            && self.st.reused.as_ref() == Some(&source.reused);
        let linked = if valid {
            info!("linkage checkpoint valid: reused");
            Linked {
                persons: read_parquet(&run_dir.join(LINKED))?,
            }
        } else {
            let linked = reuse::linked(self.site, &source, self.agreement.cohort.backdate)?;
            let mut persons = linked.persons.clone();
            write_parquet(&run_dir.join(LINKED), &mut persons)?;
            info!(
                from = %source.reused.agreement,
                run_id = %source.reused.run_id,
                seq = source.reused.ledger_seq,
                persons = linked.persons.height(),
                "released linkage reused"
            );
            self.st.cohort_rows = 0;
            self.st.rows_with_value_problems = 0;
            self.st.duplicate_nhs_numbers = 0;
            self.st.linkage = Some((Default::default(), checkpoint(&run_dir, LINKED)?));
            self.st.reused = Some(source.reused);
            self.checkpointed(Step::Link)?;
            linked
        };
        self.stage("link", t);
        fault::point("link");
        Ok(linked)
    }

    /// Step 3: objections removed, checkpointed as `released.parquet`.
    pub(super) fn objections(&mut self, linked: &Linked) -> Result<Released, PipelineError> {
        let t = Instant::now();
        let run_dir = self.run_dir.clone();
        let reused = self
            .st
            .objections
            .as_ref()
            .filter(|(_, cp)| cp.valid(&run_dir))
            .map(|(counts, _)| counts.clone());
        let released = match reused {
            Some(counts) => Released {
                persons: read_parquet(&run_dir.join(RELEASED))?,
                counts,
            },
            None => {
                let site = self.site;
                let register = crate::tables::scan(&site.objections).map_err(|source| {
                    ObjectionsError::Register {
                        file: site.objections.clone(),
                        source,
                    }
                })?;
                let released = objections::remove_objectors(
                    linked,
                    register,
                    &site.objections,
                    &self.agreement.objections.apply,
                )?;
                let mut persons = released.persons.clone();
                write_parquet(&run_dir.join(RELEASED), &mut persons)?;
                info!(
                    removed = released.counts.removed,
                    released = released.counts.released,
                    "objections applied"
                );
                self.st.objections =
                    Some((released.counts.clone(), checkpoint(&run_dir, RELEASED)?));
                self.checkpointed(Step::Objections)?;
                released
            }
        };
        self.stage("objections", t);
        fault::point("objections");
        Ok(released)
    }

    /// Steps 4-5: the outputs, each written straight into age. Records are sealed
    /// as soon as they are built; aggregates are counted first and
    /// protected together, so that a cell shared by two tables of one
    /// release gets the same treatment in both. Returns the sealed outputs
    /// in agreement order.
    pub(super) fn outputs(
        &mut self,
        released: &Released,
    ) -> Result<Vec<state::SealedOutput>, PipelineError> {
        let agreement = self.agreement;
        let pseudonym =
            PseudonymKey::load_or_create(&self.agreement_dir.join("pseudonym.key")).map_err(
                PipelineError::work(&self.agreement_dir, "loading the pseudonym key"),
            )?;
        let plan = Rc::clone(&self.plan);
        let sealer = Sealer {
            release_dir: self.release_dir.clone(),
            recipients: (!self.opts.dry_run).then_some(&plan.recipients),
        };
        if !self.opts.dry_run {
            crate::workdir::create_private_dir(&self.release_dir).map_err(PipelineError::work(
                &self.release_dir,
                "creating the release folder",
            ))?;
        }
        let windows = self.windows()?;
        // `[engine] kind = "spark"`: reached, and its token checked, before
        // any output is built.
        let spark = crate::engine::Spark::for_site(&self.site.engine)?;
        let mut tables = Vec::new();
        for (i, planned) in plan.outputs.iter().enumerate() {
            if self
                .st
                .outputs
                .get(planned.name())
                .is_some_and(|o| sealer.still_valid(o))
            {
                info!(
                    output = planned.name(),
                    "sealed output checkpoint valid: reused"
                );
                continue;
            }
            let t = Instant::now();
            let (dataset_name, source) = planned.dataset();
            // An incremental output reads its window; any other its period.
            let own_period = match planned {
                Planned::Records { spec, .. } => spec.period.as_ref(),
                Planned::Aggregate { spec, .. } => spec.period.as_ref(),
            };
            let window = windows.get(planned.name());
            let scope = window.map(Window::as_period);
            let period = scope.as_ref().or(own_period);
            let dataset_error = |source| PipelineError::Dataset {
                output: planned.name().to_string(),
                dataset: dataset_name.to_string(),
                source,
            };
            let dataset = || -> Result<_, PipelineError> {
                let dataset = match period {
                    Some(p) => {
                        crate::tables::scan_pruned(&source.path, &|k, v| p.keeps_partition(k, v))
                    }
                    None => crate::tables::scan(&source.path),
                }
                .map_err(dataset_error)?;
                Ok(match period {
                    Some(p) => window::within_period(dataset, p, &agreement.file, i).map_err(
                        |e| match e {
                            Ok(problem) => PipelineError::from(ConfigError::from(problem)),
                            Err(source) => dataset_error(source),
                        },
                    )?,
                    None => dataset,
                })
            };
            let scoped = Scope {
                period: own_period,
                window,
            };
            // A scan that fails midway (a file truncated or damaged, its
            // footer whole) is told by a decoder's message that names no
            // file: find the file, and name it.
            let damaged = |e: PipelineError| -> PipelineError {
                let failed_on_data = matches!(
                    e,
                    PipelineError::Minimise(MinimiseError::Polars { .. })
                        | PipelineError::Aggregate(AggregateError::Polars { .. })
                );
                if !failed_on_data {
                    return e;
                }
                let keep = |k: &str, v: &str| period.is_none_or(|p| p.keeps_partition(k, v));
                match crate::tables::damaged_file(&source.path, &keep) {
                    Some((file, problem)) => PipelineError::DamagedFile {
                        output: planned.name().to_string(),
                        dataset: dataset_name.to_string(),
                        file,
                        problem,
                    },
                    None => e,
                }
            };
            match planned {
                Planned::Records {
                    spec: r, fields, ..
                } => {
                    let stream = match &spark {
                        Some(spark) => spark.records(
                            r,
                            fields.clone(),
                            released,
                            source,
                            period,
                            &pseudonym,
                        )?,
                        None => minimise::plan_records(
                            r,
                            fields.clone(),
                            released,
                            dataset()?,
                            &source.key,
                            &pseudonym,
                        )
                        .map_err(|e| damaged(e.into()))?,
                    };
                    let sealed = sealer
                        .seal_records(&r.name, r.format, stream, scoped)
                        .map_err(|e| if spark.is_none() { damaged(e) } else { e })?;
                    self.st.outputs.insert(r.name.clone(), sealed);
                    self.checkpointed(Step::Output)?;
                    self.stage("records", t);
                    fault::point(&format!("output:{}", r.name));
                }
                Planned::Aggregate {
                    spec: a,
                    profile,
                    fields,
                    ..
                } => {
                    let table = match &spark {
                        Some(spark) => {
                            spark.counts(a, fields, released, source, period, &pseudonym)?
                        }
                        None => aggregate::count_fields(
                            a,
                            fields,
                            released,
                            dataset()?,
                            &source.key,
                            &pseudonym,
                        )
                        .map_err(|e| damaged(e.into()))?,
                    };
                    tables.push((
                        *a,
                        suppress::ReleaseTable {
                            name: a.name.clone(),
                            table,
                            profile: profile.clone(),
                        },
                    ));
                    self.stage("aggregate", t);
                }
            }
        }
        if !tables.is_empty() {
            let t = Instant::now();
            let release_tables: Vec<&suppress::ReleaseTable> =
                tables.iter().map(|(_, r)| r).collect();
            let protected = suppress::protect_release(&release_tables)?;
            for ((a, r), protected) in tables.iter().zip(protected) {
                report::write_suppression_report(
                    &self.run_dir.join("suppression"),
                    &a.name,
                    &protected,
                    &r.profile,
                )
                .map_err(PipelineError::work(
                    &self.run_dir,
                    "writing the suppression report",
                ))?;
                let count_name = match a.count {
                    aggregate::CountKind::Persons => "persons",
                    aggregate::CountKind::Records => "records",
                };
                let mut frame =
                    protected
                        .to_frame(count_name)
                        .map_err(|e| AggregateError::Polars {
                            output: a.name.clone(),
                            source: e,
                        })?;
                let sealed = sealer.seal(
                    &a.name,
                    "aggregate",
                    a.format,
                    &mut frame,
                    Some(protected.counts.clone()),
                    Scope {
                        period: a.period.as_ref(),
                        window: windows.get(&a.name),
                    },
                )?;
                self.st.outputs.insert(a.name.clone(), sealed);
                self.checkpointed(Step::Output)?;
                fault::point(&format!("output:{}", a.name));
            }
            self.stage("suppress", t);
        }
        // Manifest order is agreement order.
        Ok(agreement
            .outputs
            .iter()
            .filter_map(|o| self.st.outputs.get(o.name()).cloned())
            .collect())
    }

    /// The window of each incremental output, from the ledger: the rows of
    /// its period new since the agreement's last release of it (see
    /// [`window::next_window`]). Refused when nothing is new, unless forced.
    fn windows(&self) -> Result<BTreeMap<String, Window>, PipelineError> {
        let agreement = self.agreement;
        let mut windows = BTreeMap::new();
        if !agreement.outputs.iter().any(OutputSpec::incremental) {
            return Ok(windows);
        }
        let entries = super::open_ledger(self.site)?.entries()?;
        for spec in agreement.outputs.iter().filter(|o| o.incremental()) {
            let Some(period) = spec.period() else {
                continue;
            };
            let file = format!("{}.{}.age", spec.name(), spec.format().extension());
            let last = window::last_window(&entries, self.reference, &file);
            let w = window::next_window(period, last.as_ref(), self.opts.today, self.opts.forced)
                .map_err(|through| PipelineError::NothingNew {
                output: spec.name().to_string(),
                through,
            })?;
            info!(output = spec.name(), from = %w.from, to = %w.to, repeats = w.repeats_last_window, "incremental window");
            windows.insert(spec.name().to_string(), w);
        }
        Ok(windows)
    }

    /// What the run did, so far: counts only.
    pub(super) fn summary(
        &self,
        released: &Released,
        sealed: &[state::SealedOutput],
    ) -> RunSummary {
        RunSummary {
            agreement: self.reference.to_string(),
            run_id: self.st.run_id.clone(),
            dry_run: self.opts.dry_run,
            work_dir: self.run_dir.clone(),
            cohort_rows: self.st.cohort_rows,
            rows_with_value_problems: self.st.rows_with_value_problems,
            duplicate_nhs_numbers: self.st.duplicate_nhs_numbers,
            linkage: self
                .st
                .linkage
                .as_ref()
                .map(|(c, _)| c.clone())
                .unwrap_or_default(),
            reused_linkage: self.st.reused.clone(),
            objections: released.counts.clone(),
            objection_policy: self.agreement.objections.clone(),
            outputs: sealed.iter().map(|o| o.summary.clone()).collect(),
            stages: Vec::new(),
            peak_rss_mib: None,
            release: None,
        }
    }

    /// Steps 6-8: package (manifest and signature), push, and the ledger entry.
    /// Nothing on a dry run.
    pub(super) fn release(
        &mut self,
        sealed: &[state::SealedOutput],
        summary: &RunSummary,
    ) -> Result<Option<PushReport>, PipelineError> {
        // Only a release needs the key and the ledger; the run has no
        // later use for them.
        let Some((key, ledger)) = self.signing.take() else {
            return Ok(None);
        };
        let files: Vec<ManifestFile> = sealed.iter().filter_map(|o| o.manifest.clone()).collect();
        let manifest_bytes = self.package(&key, &ledger, &files, summary)?;
        let (report, delivery) = self.push(&ledger, &files, &manifest_bytes, summary)?;
        self.record(&key, &ledger, files, &manifest_bytes, &report, delivery)?;
        Ok(Some(report))
    }

    /// Step 6, the manifest and its signature: the signature is the
    /// commit marker. Returns the manifest's bytes, as signed.
    fn package(
        &mut self,
        signing_key: &SigningKey,
        ledger: &Ledger,
        files: &[ManifestFile],
        summary: &RunSummary,
    ) -> Result<Vec<u8>, PipelineError> {
        let t = Instant::now();
        let manifest_path = self.release_dir.join("manifest.json");
        let reusable = self.st.package.as_ref().is_some_and(|cp| {
            cp.valid(&self.run_dir) && self.release_dir.join("manifest.json.sig").is_file()
        });
        let bytes = if reusable {
            std::fs::read(&manifest_path).map_err(PipelineError::work(
                &self.release_dir,
                "reading manifest.json",
            ))?
        } else {
            let counts = Manifest::table_counts(
                summary
                    .outputs
                    .iter()
                    .filter_map(|o| Some((o.name.as_str(), o.suppression.as_ref()?))),
            );
            let manifest = Manifest {
                agreement: self.reference.to_string(),
                run_id: self.st.run_id.clone(),
                created_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                tool_version: format!("dars {}", env!("CARGO_PKG_VERSION")),
                // The entry this release is made on top of: recipients'
                // copies anchor the ledger from outside.
                ledger_head: Some(ledger.verify()?.head),
                objections: Some(self.agreement.objections.clone()),
                reused_linkage: self.st.reused.clone(),
                files: files.to_vec(),
                counts,
            };
            let signed = manifest.sign(signing_key);
            signed.write_to(&self.release_dir)?;
            self.st.package = Some(checkpoint(&self.run_dir, "release/manifest.json")?);
            self.checkpointed(Step::Package)?;
            signed.json
        };
        self.stage("package", t);
        fault::point("package");
        Ok(bytes)
    }

    /// Step 7, the push, signature last; files already whole at the
    /// destination (from a run that died during the push) are not sent again.
    fn push(
        &mut self,
        ledger: &Ledger,
        files: &[ManifestFile],
        manifest_bytes: &[u8],
        summary: &RunSummary,
    ) -> Result<(PushReport, record::Delivery), PipelineError> {
        let t = Instant::now();
        let run_id = self.st.run_id.clone();
        let mut order: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        order.push("manifest.json".into());
        order.push("manifest.json.sig".into());
        let staged = StagedRelease {
            dir: self.release_dir.clone(),
            files: order,
            folder: format!("{}/{run_id}", self.reference),
        };
        check_ledger(self.site, ledger).map_err(PipelineError::LedgerNotReady)?;
        // The record of the release, kept before the first file leaves: if
        // this process dies between the delivery and the ledger append,
        // the next run finds it and records the release.
        let signature = std::fs::read(self.release_dir.join(package::SIGNATURE_FILE)).map_err(
            PipelineError::work(&self.release_dir, "reading manifest.json.sig"),
        )?;
        let delivery = record::Delivery {
            destination: format!("{}/{}", self.agreement.release.destination, staged.folder),
            forced: self.opts.forced,
            register: Some(crate::register::RegisterFacts::of(
                self.agreement,
                summary.objections.released,
                files,
            )),
            // The linkage this release used, kept for `[cohort] reuse`.
            linkage: Some(reuse::keep(
                &self.agreement_dir,
                &run_id,
                &self.run_dir.join(LINKED),
                self.st.reused.clone(),
            )?),
        };
        record::keep(
            &self.agreement_dir,
            &run_id,
            manifest_bytes,
            &signature,
            &delivery,
        )
        .map_err(PipelineError::work(
            &self.agreement_dir,
            "keeping the release record",
        ))?;
        let report = match push::push(&self.agreement.release, &staged) {
            Ok(report) => report,
            Err(e) => {
                record::discard(&self.agreement_dir, &run_id);
                return Err(e.into());
            }
        };
        fault::point("delivered");
        info!(location = %report.location, files = report.files_sent, already_there = report.files_already_there, bytes = report.bytes_sent, "release delivered");
        self.st.pushed = Some(report.clone());
        self.save()?;
        self.stage("push", t);
        fault::point("push");
        Ok((report, delivery))
    }

    /// Step 8, the ledger entry, once per run id.
    fn record(
        &mut self,
        signing_key: &SigningKey,
        ledger: &Ledger,
        files: Vec<ManifestFile>,
        manifest_bytes: &[u8],
        report: &PushReport,
        delivery: record::Delivery,
    ) -> Result<(), PipelineError> {
        let t = Instant::now();
        let (reference, run_id) = (self.reference, self.st.run_id.clone());
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
                        manifest_sha256: package::sha256_hex(manifest_bytes),
                        files,
                        forced: self.opts.forced,
                        register: delivery.register,
                        linkage: delivery.linkage,
                    },
                    signing_key,
                )
                .map_err(unrecorded)?,
        };
        if let Err(e) = record::mark_recorded(&self.agreement_dir, &run_id, entry.seq) {
            // Recorded all the same; the next run finds the entry and
            // writes the receipt.
            warn!(run_id = %run_id, seq = entry.seq, error = %e, "the release is in the ledger but its record's receipt could not be written");
        }
        self.st.released = true;
        self.save()?;
        self.stage("ledger", t);
        Ok(())
    }

    /// Writes `summary.json` with the stages' timings, and returns it.
    pub(super) fn finish(self, mut summary: RunSummary) -> Result<RunSummary, PipelineError> {
        summary.stages = self.stages;
        summary.peak_rss_mib = crate::memory::whole_peak_rss_mib();
        let json = serde_json::to_vec_pretty(&summary).map_err(|e| {
            PipelineError::work(&self.run_dir, "writing summary.json")(std::io::Error::other(e))
        })?;
        crate::workdir::write_private(&self.run_dir.join("summary.json"), &json)
            .map_err(PipelineError::work(&self.run_dir, "writing summary.json"))?;
        Ok(summary)
    }
}

/// What an output's file is said to cover, in its manifest entry: the
/// output's period and, if incremental, this release's window of it.
#[derive(Clone, Copy)]
struct Scope<'s> {
    period: Option<&'s Period>,
    window: Option<&'s Window>,
}

/// Seals one output into the release folder (age-encrypted, hashed in the
/// same pass); on a dry run it only counts.
struct Sealer<'p> {
    release_dir: PathBuf,
    recipients: Option<&'p Recipients>,
}

impl Sealer<'_> {
    /// Whether a sealed output's file is still the one its checkpoint
    /// hashed.
    fn still_valid(&self, o: &state::SealedOutput) -> bool {
        match &o.manifest {
            Some(m) => {
                state::sha256_file(&self.release_dir.join(&m.name)).is_ok_and(|h| h == m.sha256)
            }
            None => false,
        }
    }

    /// Streams a records output into its sealed file, batch by batch, so
    /// that the plaintext is never whole in memory; on a dry run the rows
    /// stream through the same checks and are only counted.
    fn seal_records(
        &self,
        name: &str,
        format: FileFormat,
        mut stream: minimise::RecordsStream<'_>,
        scope: Scope,
    ) -> Result<state::SealedOutput, PipelineError> {
        let kind = "records";
        let file = format!("{name}.{}", format.extension());
        let schema = stream.schema()?;
        // The stage's own error (a direct identifier found by content, a
        // dataset that cannot be read) is reported as such, not as a
        // failed write.
        let mut stage_error = None;
        let mut rows = 0;
        let produce =
            |w: &mut dyn std::io::Write| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
                let mut writer = crate::tables::BatchWriter::new(format, w, &schema)?;
                // A failed write (a full disk) is the sealing's error, which
                // says what filled up; anything else is the stage's.
                let mut write_error = None;
                let mut batches = 0u64;
                let ran = stream.run(&mut |df| {
                    writer.write(df).map_err(|e| {
                        write_error = Some(e);
                        PolarsError::ComputeError("the write failed".into())
                    })?;
                    batches += 1;
                    if batches == 1 {
                        // A run killed while the rows stream in (issue #14).
                        fault::point(&format!("stream:{name}"));
                    }
                    Ok(())
                });
                match (ran, write_error) {
                    (Ok(n), _) => rows = n,
                    (Err(_), Some(e)) => return Err(Box::new(e)),
                    (Err(e), None) => {
                        stage_error = Some(e);
                        return Err("the records output could not be built".into());
                    }
                }
                writer.finish()?;
                Ok(())
            };
        let sealed = match self.recipients {
            Some(recipients) => Some(package::seal(
                &self.release_dir.join(format!("{file}.age")),
                recipients,
                produce,
            )),
            None => {
                if let Err(e) = produce(&mut std::io::sink()) {
                    if stage_error.is_none() {
                        return Err(PipelineError::work(
                            &self.release_dir,
                            "building the records output",
                        )(std::io::Error::other(e)));
                    }
                }
                None
            }
        };
        if let Some(e) = stage_error {
            return Err(e.into());
        }
        let sealed = sealed.transpose()?;
        Ok(sealed_output(name, kind, file, rows, None, sealed, scope))
    }

    fn seal(
        &self,
        name: &str,
        kind: &'static str,
        format: FileFormat,
        frame: &mut polars::prelude::DataFrame,
        suppression: Option<SuppressionCounts>,
        scope: Scope,
    ) -> Result<state::SealedOutput, PipelineError> {
        let rows = frame.height() as u64;
        let file = format!("{name}.{}", format.extension());
        let sealed = match self.recipients {
            Some(recipients) => Some(package::seal(
                &self.release_dir.join(format!("{file}.age")),
                recipients,
                |w| crate::tables::write_frame(frame, format, w).map_err(Into::into),
            )?),
            None => None,
        };
        Ok(sealed_output(
            name,
            kind,
            file,
            rows,
            suppression,
            sealed,
            scope,
        ))
    }
}

/// The checkpoint of one output: its summary and, unless a dry run, its
/// manifest entry (with the output's period and window) and plaintext hash.
fn sealed_output(
    name: &str,
    kind: &'static str,
    file: String,
    rows: u64,
    suppression: Option<SuppressionCounts>,
    sealed: Option<package::SealedFile>,
    scope: Scope,
) -> state::SealedOutput {
    info!(output = name, kind, rows, "output built");
    state::SealedOutput {
        summary: OutputSummary {
            name: name.to_string(),
            kind: kind.to_string(),
            file,
            rows,
            suppression,
        },
        plaintext_sha256: sealed.as_ref().map(|s| s.plaintext_sha256.clone()),
        manifest: sealed.map(|s| ManifestFile {
            period: scope.period.cloned(),
            window: scope.window.cloned(),
            ..ManifestFile::from_sealed(&s, rows, kind)
        }),
    }
}
