//! `[cohort] reuse = "DARS-NIC-…"`: an agreement for other datasets of the
//! same cohort takes the latest released linkage of another agreement of
//! the same organisation instead of linking again (the DARS application's
//! "select another existing agreement").
//!
//! Where a released linkage is kept. Every release keeps the linkage it
//! used as `WORK/REFERENCE/linkage/RUN_ID.parquet`: the `study_id` and
//! `person_id` of each linked study ID (the validated and the reviewed
//! pairs), and `recruited_on` when the cohort gave it; no NHS number, name
//! or date of birth. Its SHA-256 and the number of pairs go into the
//! release's ledger entry (`linkage`), signed with it, before anything
//! leaves. `dars clean` removes run folders, never these files.
//!
//! Reusing. The ledger is verified; the latest release entry of the named
//! agreement is the linkage taken (a later release of it replaces an
//! earlier one). It is refused when the agreement is unknown to the site,
//! was never released, belongs to another organisation (as its release
//! entry's register facts record it), or was released before dars kept
//! linkages; and when the kept file is missing or its SHA-256 is not the
//! one the entry records. The pairs are then joined to the site's current
//! master person index for the NHS number and date of birth that the
//! objections and minimisation stages read, so the objection register is
//! applied afresh at every release. The run's manifest says where its
//! linkage came from (`reused_linkage`), and so does its own ledger entry.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::layout;
use super::PipelineError;
use crate::config::{Agreement, ConfigError, Problem, Site};
use crate::ledger::{LedgerEntry, LedgerEvent, ReleasedLinkage};
use crate::link::Linked;
use crate::objections::RECRUITED_ON;
use crate::package::ReusedLinkage;

const STUDY_ID: &str = "study_id";
const PERSON_ID: &str = "person_id";

/// Why a released linkage cannot be reused: said as a problem of the
/// agreement's `cohort.reuse` (or `cohort.backdate`) key, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReuseError {
    /// Neither the ledger nor the work directory knows the agreement.
    Unknown { reference: String },
    /// Known, never released.
    NeverReleased { reference: String },
    /// Released before dars kept released linkages (or register facts).
    NotKept {
        reference: String,
        run_id: String,
        seq: u64,
    },
    OtherOrganisation {
        reference: String,
        theirs: String,
        ours: String,
    },
    /// The kept file is missing, unreadable, or not the one the ledger
    /// entry records.
    Kept {
        reference: String,
        run_id: String,
        seq: u64,
        path: PathBuf,
        problem: String,
    },
    /// `backdate = false`, but the kept linkage has no `recruited_on`.
    NoRecruitment { reference: String },
}

impl ReuseError {
    /// The problem, as `dars check` and `dars run` say it.
    pub fn problem(&self, file: &Path) -> Problem {
        let link_instead = "or remove `reuse` and give the cohort's `path` to link it";
        let (key, message, fix) = match self {
            Self::Unknown { reference } => (
                "cohort.reuse",
                format!("`{reference}` is not an agreement of this site: the ledger has no entry of it and the work directory no folder"),
                format!("name the agreement of this site whose release linked the same cohort, {link_instead}"),
            ),
            Self::NeverReleased { reference } => (
                "cohort.reuse",
                format!("`{reference}` has never been released: there is no released linkage to reuse"),
                format!("release `{reference}` first (`dars run`), {link_instead}"),
            ),
            Self::NotKept { reference, run_id, seq } => (
                "cohort.reuse",
                format!("the latest release of `{reference}` (run {run_id}, ledger entry {seq}) was made before dars kept released linkages"),
                format!("release `{reference}` again, then reuse it; {link_instead}"),
            ),
            Self::OtherOrganisation { reference, theirs, ours } => (
                "cohort.reuse",
                format!("`{reference}` belongs to `{theirs}`, not to `{ours}`: a linkage is reused only within one organisation"),
                format!("reuse an agreement of `{ours}`, {link_instead}"),
            ),
            Self::Kept { reference, run_id, seq, path, problem } => (
                "cohort.reuse",
                format!("the linkage of `{reference}`'s release {run_id} (ledger entry {seq}), {}, {problem}", path.display()),
                format!("restore that file from a backup of the work directory; or release `{reference}` again, then reuse it"),
            ),
            Self::NoRecruitment { reference } => (
                "cohort.backdate",
                format!("is false, but the released linkage of `{reference}` has no recruited_on (its cohort was linked with backdate = true)"),
                format!("remove `backdate = false`; or release `{reference}` with `backdate = false` and a recruited_on column, then reuse it"),
            ),
        };
        Problem::error(file, key, message, fix)
    }
}

/// A released linkage found for reuse, its file read and checked against
/// the ledger.
#[derive(Debug, Clone)]
pub struct Source {
    pub reused: ReusedLinkage,
    /// The kept pairs (`study_id`, `person_id`, maybe `recruited_on`).
    pub pairs: DataFrame,
}

/// The agreement a release entry or a destruction is of.
fn agreement_of(event: &LedgerEvent) -> Option<&str> {
    match event {
        LedgerEvent::Release { agreement, .. } | LedgerEvent::Destruction { agreement, .. } => {
            Some(agreement)
        }
        LedgerEvent::Recovery { .. } => None,
    }
}

/// The latest released linkage of the agreement `agreement` reuses, from
/// the entries of a verified ledger; `None` when it reuses none.
pub fn find(
    site: &Site,
    entries: &[LedgerEntry],
    agreement: &Agreement,
) -> Result<Option<Source>, ReuseError> {
    let Some(reference) = agreement.cohort.reuse.as_deref() else {
        return Ok(None);
    };
    let reference_owned = || reference.to_string();
    let last = entries.iter().rev().find_map(|e| match &e.event {
        LedgerEvent::Release {
            agreement,
            run_id,
            register,
            linkage,
            ..
        } if agreement == reference => Some((e.seq, run_id, register, linkage)),
        _ => None,
    });
    let agreement_dir = layout::agreement_dir(&site.work_dir, reference);
    let Some((seq, run_id, register, linkage)) = last else {
        let known = agreement_dir.is_dir()
            || entries
                .iter()
                .any(|e| agreement_of(&e.event) == Some(reference));
        return Err(if known {
            ReuseError::NeverReleased {
                reference: reference_owned(),
            }
        } else {
            ReuseError::Unknown {
                reference: reference_owned(),
            }
        });
    };
    let not_kept = || ReuseError::NotKept {
        reference: reference_owned(),
        run_id: run_id.clone(),
        seq,
    };
    // The organisation as the release recorded it, signed in its entry.
    let theirs = register.as_ref().ok_or_else(not_kept)?.organisation.trim();
    let ours = agreement.meta.organisation.trim();
    if theirs != ours {
        return Err(ReuseError::OtherOrganisation {
            reference: reference_owned(),
            theirs: theirs.to_string(),
            ours: ours.to_string(),
        });
    }
    let linkage: &ReleasedLinkage = linkage.as_ref().ok_or_else(not_kept)?;
    let path = layout::linkage_file(&agreement_dir, run_id);
    let kept = |problem: String| ReuseError::Kept {
        reference: reference_owned(),
        run_id: run_id.clone(),
        seq,
        path: path.clone(),
        problem,
    };
    let bytes = std::fs::read(&path).map_err(|e| {
        kept(if e.kind() == std::io::ErrorKind::NotFound {
            "is missing".to_string()
        } else {
            format!("cannot be read ({e})")
        })
    })?;
    let found = crate::package::sha256_hex(&bytes);
    if found != linkage.sha256 {
        return Err(kept(format!(
            "is not the file the ledger records (its SHA-256 is {found}, the entry's {}): it was changed after the release",
            linkage.sha256
        )));
    }
    let pairs = ParquetReader::new(Cursor::new(bytes))
        .finish()
        .map_err(|_| kept("is not a Parquet file of study_id and person_id pairs".into()))?;
    let has = |c: &str| pairs.get_column_names().iter().any(|n| n.as_str() == c);
    if !has(STUDY_ID) || !has(PERSON_ID) {
        return Err(kept("has no study_id and person_id columns".into()));
    }
    if !agreement.cohort.backdate && !has(RECRUITED_ON) {
        return Err(ReuseError::NoRecruitment {
            reference: reference_owned(),
        });
    }
    Ok(Some(Source {
        reused: ReusedLinkage {
            agreement: reference_owned(),
            run_id: run_id.clone(),
            ledger_seq: seq,
            sha256: linkage.sha256.clone(),
        },
        pairs,
    }))
}

/// For `dars check`: what stops the agreement's `reuse` (the ledger is
/// opened and verified; nothing else is read but the kept linkage file).
pub fn problems(site: &Site, agreement: &Agreement) -> Vec<Problem> {
    if agreement.cohort.reuse.is_none() {
        return Vec::new();
    }
    let file = &agreement.file;
    let fix = "run `dars ledger verify` for what is wrong; a linkage is reused only from a ledger that verifies";
    let ledger = match super::open_ledger(site) {
        Ok(l) => l,
        Err(e) => {
            return vec![Problem::error(
                file,
                "cohort.reuse",
                format!("the ledger cannot be opened to find the released linkage: {e}"),
                fix,
            )]
        }
    };
    let verified = match super::verify_ledger(site, &ledger) {
        Ok(v) => v,
        Err(e) => {
            return vec![Problem::error(
                file,
                "cohort.reuse",
                format!("the ledger does not verify, so no linkage in it can be trusted: {e}"),
                fix,
            )]
        }
    };
    match find(site, &verified.entries, agreement) {
        Ok(_) => Vec::new(),
        Err(e) => vec![e.problem(file)],
    }
}

/// The run's linked persons from a reused linkage: the kept pairs with the
/// index's current NHS number and date of birth (left join: a person no
/// longer in the index has none, and the objections stage withholds them).
/// `recruited_on` is kept only with `backdate = false`.
pub fn linked(site: &Site, source: &Source, backdate: bool) -> Result<Linked, PipelineError> {
    let wrap = |source| crate::link::LinkError::Demographics { source };
    let demographics = crate::tables::scan(&site.demographics).map_err(wrap)?;
    let index = demographics.select([
        col(PERSON_ID).cast(DataType::Int64),
        col("nhs_number").cast(DataType::String),
        col("date_of_birth").cast(DataType::Date),
    ]);
    let mut keep = vec![
        col(STUDY_ID).cast(DataType::String),
        col(PERSON_ID).cast(DataType::Int64),
        col("nhs_number"),
        col("date_of_birth"),
    ];
    if !backdate {
        keep.push(col(RECRUITED_ON).cast(DataType::Date));
    }
    let persons = crate::tables::collect(
        source
            .pairs
            .clone()
            .lazy()
            .with_column(col(PERSON_ID).cast(DataType::Int64))
            .join(
                index,
                [col(PERSON_ID)],
                [col(PERSON_ID)],
                JoinArgs::new(JoinType::Left),
            )
            .select(keep),
    )
    .map_err(wrap)?;
    Ok(Linked { persons })
}

/// Keeps the linkage a release used, `REFERENCE/linkage/RUN_ID.parquet`
/// from the run's `linked.parquet` (pairs and `recruited_on` only), and
/// says what its ledger entry records of it. A file already kept for the
/// run (a resumed push) is left as it is: the record may already hold its
/// hash.
pub fn keep(
    agreement_dir: &Path,
    run_id: &str,
    linked: &Path,
    reused_from: Option<ReusedLinkage>,
) -> Result<ReleasedLinkage, PipelineError> {
    let path = layout::linkage_file(agreement_dir, run_id);
    if !path.is_file() {
        let persons = super::read_parquet(linked)?;
        let mut columns = vec![col(STUDY_ID), col(PERSON_ID)];
        if persons
            .get_column_names()
            .iter()
            .any(|c| c.as_str() == RECRUITED_ON)
        {
            columns.push(col(RECRUITED_ON));
        }
        let mut pairs = crate::tables::collect(persons.lazy().select(columns)).map_err(|e| {
            PipelineError::work(agreement_dir, "keeping the released linkage")(
                std::io::Error::other(crate::tables::redact(e)),
            )
        })?;
        let dir = agreement_dir.join(layout::LINKAGE_DIR);
        crate::workdir::create_private_dir(&dir)
            .map_err(PipelineError::work(&dir, "creating the linkage folder"))?;
        super::write_parquet(&path, &mut pairs)?;
    }
    let bytes = std::fs::read(&path).map_err(PipelineError::work(
        agreement_dir,
        "reading the kept linkage",
    ))?;
    let pairs = ParquetReader::new(Cursor::new(&bytes))
        .finish()
        .map_err(|e| {
            PipelineError::work(agreement_dir, "reading the kept linkage")(std::io::Error::other(
                crate::tables::redact(e),
            ))
        })?
        .height() as u64;
    Ok(ReleasedLinkage {
        sha256: crate::package::sha256_hex(&bytes),
        pairs,
        reused_from,
    })
}

impl From<(ReuseError, &Path)> for PipelineError {
    fn from((e, file): (ReuseError, &Path)) -> Self {
        PipelineError::Config(ConfigError {
            problems: vec![e.problem(file)],
        })
    }
}
