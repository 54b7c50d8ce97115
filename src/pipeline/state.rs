//! Checkpoints: what a run has finished, with the hashes of its inputs and
//! of every file it wrote, so that a run killed at any point can be started
//! again and reuse what is still valid instead of starting over.
//!
//! A run's `state.json` holds the fingerprint of its inputs (the agreement
//! and site files, the cohort, the decisions file, and the size and
//! modification time of every site table). `dars run` resumes the latest
//! unfinished run of the agreement whose fingerprint matches, under the same
//! run id; a stage's checkpoint is reused only if its file still has the
//! recorded SHA-256, else that stage and every later one run again.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use crate::config::{Agreement, Site};
use crate::ledger::Anchor;
use crate::link::LinkCounts;
use crate::objections::ObjectionCounts;
pub(crate) use crate::package::sha256_file;
use crate::package::ManifestFile;
use crate::pipeline::OutputSummary;

/// A file a stage wrote, with its hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    pub file: String,
    pub sha256: String,
}

/// One sealed output: the manifest line plus the plaintext's hash, which
/// proves a resumed run released the same content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedOutput {
    pub summary: OutputSummary,
    pub manifest: Option<ManifestFile>,
    pub plaintext_sha256: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    pub fingerprint: String,
    pub run_id: String,
    /// When the run started, nanoseconds since 1970 (UTC): the run to
    /// resume is the one started last, whatever its id's random suffix.
    #[serde(default)]
    pub started_ns: u64,
    pub dry_run: bool,
    pub cohort_rows: usize,
    pub rows_with_value_problems: usize,
    pub duplicate_nhs_numbers: usize,
    pub linkage: Option<(LinkCounts, Checkpoint)>,
    /// The released linkage `linkage` was taken from (`[cohort] reuse`).
    #[serde(default)]
    pub reused: Option<crate::package::ReusedLinkage>,
    pub objections: Option<(ObjectionCounts, Checkpoint)>,
    /// By output name, in agreement order of completion.
    pub outputs: BTreeMap<String, SealedOutput>,
    pub package: Option<Checkpoint>,
    pub pushed: Option<crate::push::PushReport>,
    pub released: bool,
}

/// A checkpointed step of a run, in order. What a step produces, every
/// later step depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Ingest and link: `linked.parquet`.
    Link,
    /// Objections removed: `released.parquet`.
    Objections,
    /// One output sealed (others stay valid: outputs are independent).
    Output,
    /// The manifest and its signature.
    Package,
}

impl RunState {
    /// Forgets every checkpoint that depends on `step`, which was just
    /// redone: the one place that knows what each step invalidates.
    pub fn redone(&mut self, step: Step) {
        if step < Step::Objections {
            self.objections = None;
        }
        if step < Step::Output {
            self.outputs.clear();
        }
        if step < Step::Package {
            self.package = None;
        }
    }

    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("state.json")
    }

    pub fn save(&self, run_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::workdir::write_private(&Self::path(run_dir), &json)
    }

    pub fn load(run_dir: &Path) -> Option<Self> {
        serde_json::from_slice(&fs::read(Self::path(run_dir)).ok()?).ok()
    }
}

impl Checkpoint {
    /// Hashes `file` (relative to `run_dir`) as written.
    pub fn of(run_dir: &Path, file: &str) -> std::io::Result<Self> {
        Ok(Self {
            file: file.to_string(),
            sha256: sha256_file(&run_dir.join(file))?,
        })
    }

    /// Whether the file is still there with the recorded content.
    pub fn valid(&self, run_dir: &Path) -> bool {
        sha256_file(&run_dir.join(&self.file)).is_ok_and(|h| h == self.sha256)
    }
}

/// The fingerprint of everything a run reads. Small inputs (configs,
/// cohort, decisions) are hashed whole; site tables, which can be larger
/// than memory, by path, size and modification time.
pub fn fingerprint(site: &Site, agreement: &Agreement) -> std::io::Result<String> {
    let mut ctx = Context::new(&SHA256);
    let mut whole = |p: &Path| -> std::io::Result<()> {
        ctx.update(p.to_string_lossy().as_bytes());
        ctx.update(sha256_file(p)?.as_bytes());
        Ok(())
    };
    whole(&agreement.file)?;
    whole(&site.file)?;
    if let Some(cohort) = &agreement.cohort.path {
        whole(cohort)?;
    }
    if let Some(d) = &agreement.cohort.review_decisions {
        whole(d)?;
    }
    let mut tables: Vec<&Path> = vec![&site.demographics, &site.objections];
    tables.extend(site.datasets.values().map(|d| d.path.as_path()));
    for t in tables {
        ctx.update(t.to_string_lossy().as_bytes());
        for f in table_files(t) {
            if let Ok(m) = fs::metadata(&f) {
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                ctx.update(format!("{}:{}:{}", f.display(), m.len(), mtime).as_bytes());
            }
        }
    }
    ctx.update(env!("CARGO_PKG_VERSION").as_bytes());
    Ok(hex::encode(ctx.finish().as_ref()))
}

fn table_files(p: &Path) -> Vec<PathBuf> {
    if p.is_dir() {
        let mut v: Vec<PathBuf> = fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    } else {
        vec![p.to_path_buf()]
    }
}

/// The latest unfinished, non-dry run of the agreement with this
/// fingerprint, if any: the one started last (`started_ns`), since run ids
/// of one second differ only by a random suffix.
pub fn find_resumable(runs_dir: &Path, fingerprint: &str) -> Option<(PathBuf, RunState)> {
    fs::read_dir(runs_dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter_map(|d| {
            let s = RunState::load(&d)?;
            (s.fingerprint == fingerprint && !s.dry_run && !s.released).then_some((d, s))
        })
        // A state without a start time (an older dars) counts as oldest;
        // between equal start times, the id decides.
        .max_by(|(_, a), (_, b)| (a.started_ns, &a.run_id).cmp(&(b.started_ns, &b.run_id)))
}

/// Nanoseconds since 1970, UTC.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What the work directory says about releases, for checking the ledger
/// against: every released run and every release record the ledger has
/// receipted (each an [`Anchor`] the ledger must hold), every release
/// record not yet receipted, and every run that was delivered but is not
/// yet recorded.
#[derive(Debug, Default)]
pub struct WorkRecords {
    pub anchors: Vec<Anchor>,
    /// Release records without a receipt: delivered, perhaps unrecorded.
    pub pending: Vec<super::record::ReleaseRecord>,
    /// (agreement, run id) of runs whose push finished but whose ledger
    /// entry was not written: running the same agreement again records it.
    pub unrecorded: Vec<(String, String)>,
}

/// Reads every run's `state.json` and every release record under the
/// work directory.
pub fn work_records(work_dir: &Path) -> WorkRecords {
    let mut records = WorkRecords::default();
    for record in super::record::list(work_dir) {
        if record.receipt.is_some() {
            records.anchors.push(record.anchor());
        } else {
            records.pending.push(record);
        }
    }
    let dirs = super::record::subdirs;
    for agreement_dir in dirs(work_dir) {
        let agreement = agreement_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for run_dir in dirs(&super::layout::runs_dir(&agreement_dir)) {
            let Some(state) = RunState::load(&run_dir) else {
                continue;
            };
            if state.dry_run {
                continue;
            }
            if state.released {
                let manifest =
                    fs::read(run_dir.join("release").join(crate::package::MANIFEST_FILE)).ok();
                records.anchors.push(Anchor {
                    source: RunState::path(&run_dir),
                    agreement: agreement.clone(),
                    run_id: state.run_id.clone(),
                    manifest_sha256: manifest.as_deref().map(crate::package::sha256_hex),
                    extends: manifest
                        .as_deref()
                        .and_then(|m| crate::package::Manifest::from_json(m).ok())
                        .and_then(|m| m.ledger_head),
                });
            } else if state.pushed.is_some() {
                records
                    .unrecorded
                    .push((agreement.clone(), state.run_id.clone()));
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> RunState {
        let cp = |f: &str| Checkpoint {
            file: f.into(),
            sha256: "0".repeat(64),
        };
        let mut st = RunState {
            linkage: Some((LinkCounts::default(), cp("linked.parquet"))),
            objections: Some((ObjectionCounts::default(), cp("released.parquet"))),
            package: Some(cp("release/manifest.json")),
            ..Default::default()
        };
        st.outputs.insert(
            "episodes".into(),
            SealedOutput {
                summary: OutputSummary {
                    name: "episodes".into(),
                    kind: "records".into(),
                    file: "episodes.parquet".into(),
                    rows: 1,
                    suppression: None,
                },
                manifest: None,
                plaintext_sha256: None,
            },
        );
        st
    }

    #[test]
    fn a_step_redone_forgets_only_what_depends_on_it() {
        let mut st = full();
        st.redone(Step::Package);
        assert!(st.package.is_some() && !st.outputs.is_empty());

        let mut st = full();
        st.redone(Step::Output);
        assert!(st.package.is_none());
        assert!(
            !st.outputs.is_empty(),
            "outputs are independent of each other"
        );
        assert!(st.objections.is_some());

        let mut st = full();
        st.redone(Step::Objections);
        assert!(st.package.is_none() && st.outputs.is_empty());
        assert!(st.objections.is_some() && st.linkage.is_some());

        let mut st = full();
        st.redone(Step::Link);
        assert!(st.package.is_none() && st.outputs.is_empty() && st.objections.is_none());
        assert!(
            st.linkage.is_some(),
            "the step redone keeps its own new checkpoint"
        );
    }
}
