//! Stage 3, objections: removes every linked person whose NHS number has an
//! objection of a type the agreement applies (type 1, national data
//! opt-out). The NHS number used is the master person index's, not the
//! applicant's, so a typo in the cohort cannot let an objector through.
//!
//! The register is read as real registers are written, and a register that
//! cannot be read is never ignored (issue #12): NHS numbers are compared as
//! their ten digits (`471 177 9965`, `471-177-9965` and `4711779965` are one
//! number, on the register's side and the index's), objection types in any
//! case and spacing (`TYPE1`, `Type 1`, `type1 `, `NDOO`, `National data
//! opt-out`). Every row is checked before anything is removed: a number
//! that fails modulus 11, an unknown type, a missing column or a column of
//! an unusable type stops the run, naming the row and the column, never the
//! value. A linked person whose index NHS number is missing or invalid
//! cannot be checked against the register, so is withheld, not released.

mod config;
mod register;
#[cfg(test)]
mod tests;

pub use config::{ObjectionType, ObjectionsSection};
pub use register::{parse_objection_type, read_register, Register, RegisterProblem};

use std::path::{Path, PathBuf};

use polars::prelude::*;

pub use crate::link::Linked;

/// The cohort that may be released: `study_id`, `person_id`, and the
/// index's `date_of_birth` when the link stage gave it.
#[derive(Debug, Clone)]
pub struct Released {
    pub persons: DataFrame,
    pub counts: ObjectionCounts,
}

impl Released {
    #[cfg(test)]
    pub(crate) fn for_tests(persons: DataFrame) -> Self {
        let n = persons.height();
        Self {
            persons,
            counts: ObjectionCounts {
                linked: n,
                released: n,
                ..Default::default()
            },
        }
    }
}

/// What the objections stage did, for the run summary. Counts only.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ObjectionCounts {
    /// Rows of the register read, every one of them checked.
    pub register_rows: usize,
    pub linked: usize,
    /// Linked people with at least one objection in the register, of any
    /// type, applied or not ("objections matched").
    pub matched: usize,
    /// Of `matched`, the people whose cohort row did not carry the NHS
    /// number the objection is recorded under (no NHS number, one failing
    /// modulus 11, or someone else's): objections found only because the
    /// index's number is used. `None` when the link stage did not hand over
    /// the cohort's numbers (a checkpoint from an older run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_not_in_cohort: Option<usize>,
    /// Of `matched`, the people none of whose objections is of a type the
    /// agreement applies: released, as the agreement says.
    pub matched_not_applied: usize,
    /// Linked people with a type 1 objection (applied or not).
    pub type1: usize,
    /// Linked people with a national data opt-out (applied or not).
    pub ndoo: usize,
    /// Linked people removed: an objection of an applied type.
    pub removed: usize,
    /// Linked people withheld because the index holds no valid NHS number
    /// for them, so the register cannot be checked.
    pub withheld_no_nhs_number: usize,
    pub released: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectionsError {
    #[error("objections register {}: {source}\n  fix: check `sources.objections` in the site config points at a Parquet file with nhs_number, objection_type and recorded_on", file.display())]
    Register {
        file: PathBuf,
        #[source]
        source: PolarsError,
    },
    #[error("objections register {}: {problem}\n  fix: the register needs an `nhs_number` column (text, or whole numbers) and an `objection_type` column (text: type1 or ndoo); check `sources.objections` in the site config", file.display())]
    Columns { file: PathBuf, problem: String },
    #[error("objections register {} has no rows: applied, it would remove nobody, so nothing was released\n  fix: point `sources.objections` in the site config at the current register (a register always holds objections); if the export failed, export it again", file.display())]
    Empty { file: PathBuf },
    #[error("objections register {} has {total} bad row{}; nothing was removed or released:\n{}{}\n  fix: correct those rows of the register (the file named by `sources.objections`) and run again: a register that cannot be read in full is never applied in part",
        file.display(),
        if *total == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"),
        if *total > problems.len() { format!("\n  … and {} more", total - problems.len()) } else { String::new() })]
    Rows {
        file: PathBuf,
        /// The first problems, in register order (at most 50).
        problems: Vec<RegisterProblem>,
        total: usize,
    },
}

/// Reads and checks the register, then removes objectors of the applied
/// types. Refuses the whole register if any row of it is bad.
pub fn remove_objectors(
    linked: &Linked,
    register: LazyFrame,
    file: &Path,
    apply: &[ObjectionType],
) -> Result<Released, ObjectionsError> {
    let register = read_register(register, file)?;
    remove_with(linked, &register, apply)
}

/// Column names used inside this stage.
const NHS: &str = "nhs_number";
const TYPE: &str = "objection_type";
const COHORT_NHS: &str = "cohort_nhs_number";
const DOB: &str = "date_of_birth";
/// The cohort's recruitment date, carried for `cohort.backdate = false`.
pub const RECRUITED_ON: &str = "recruited_on";
const CANONICAL: &str = "__dars_nhs";

/// Removes objectors of the applied types, given a checked register.
pub fn remove_with(
    linked: &Linked,
    register: &Register,
    apply: &[ObjectionType],
) -> Result<Released, ObjectionsError> {
    let wrap = |source| ObjectionsError::Register {
        file: register.file.clone(),
        source: crate::tables::redact(source),
    };
    let has = |name: &str| {
        linked
            .persons
            .get_column_names()
            .iter()
            .any(|c| c.as_str() == name)
    };
    let has_cohort_nhs = has(COHORT_NHS);
    let has_dob = has(DOB);
    // The index's NHS number as ten digits, null where it is not a valid
    // number (such a person cannot be checked and is withheld).
    let mut persons = linked
        .persons
        .clone()
        .lazy()
        .with_column(canonical_nhs(col(NHS)).alias(CANONICAL));
    if has_cohort_nhs {
        persons = persons.with_column(canonical_nhs(col(COHORT_NHS)).alias(COHORT_NHS));
    }
    let persons = crate::tables::collect(persons).map_err(wrap)?;

    // Which linked people have which objection, applied or not, so that the
    // run summary says what the agreement chose not to apply.
    let objecting = crate::tables::collect(
        register
            .frame
            .clone()
            .lazy()
            .join(
                persons
                    .clone()
                    .lazy()
                    .select([col(CANONICAL)])
                    .filter(col(CANONICAL).is_not_null())
                    .unique(None, UniqueKeepStrategy::Any),
                [col(NHS)],
                [col(CANONICAL)],
                JoinArgs::new(JoinType::Semi),
            )
            .unique(None, UniqueKeepStrategy::Any),
    )
    .map_err(wrap)?;
    let people_with = |filter: Expr| -> PolarsResult<DataFrame> {
        crate::tables::collect(
            objecting
                .clone()
                .lazy()
                .filter(filter)
                .select([col(NHS)])
                .unique(None, UniqueKeepStrategy::Any),
        )
    };
    let applied: Vec<&str> = apply.iter().map(|t| t.code()).collect();
    let applied = Series::new("applied".into(), applied);
    let all = people_with(lit(true)).map_err(wrap)?;
    let objectors =
        people_with(col(TYPE).is_in(lit(applied).implode(false), false)).map_err(wrap)?;
    let count_type = |t: ObjectionType| -> PolarsResult<usize> {
        Ok(people_with(col(TYPE).eq(lit(t.code())))?.height())
    };
    let (type1, ndoo) = (
        count_type(ObjectionType::Type1).map_err(wrap)?,
        count_type(ObjectionType::Ndoo).map_err(wrap)?,
    );

    // Linked people (rows) whose number is in a set of numbers.
    let linked_in = |numbers: &DataFrame, extra: Option<Expr>| -> PolarsResult<usize> {
        let mut lf = persons.clone().lazy().join(
            numbers.clone().lazy(),
            [col(CANONICAL)],
            [col(NHS)],
            JoinArgs::new(JoinType::Semi),
        );
        if let Some(e) = extra {
            lf = lf.filter(e);
        }
        Ok(crate::tables::collect(lf)?.height())
    };
    let matched = linked_in(&all, None).map_err(wrap)?;
    let matched_not_in_cohort = if has_cohort_nhs {
        let differs = col(COHORT_NHS)
            .is_null()
            .or(col(COHORT_NHS).neq(col(CANONICAL)));
        Some(linked_in(&all, Some(differs)).map_err(wrap)?)
    } else {
        None
    };
    let removed_rows = linked_in(&objectors, None).map_err(wrap)?;

    let mut keep = vec![col("study_id"), col("person_id")];
    if has_dob {
        keep.push(col(DOB));
    }
    // `cohort.backdate = false`: each study ID's date goes on.
    if has(RECRUITED_ON) {
        keep.push(col(RECRUITED_ON));
    }
    let released = crate::tables::collect(
        persons
            .clone()
            .lazy()
            .filter(col(CANONICAL).is_not_null())
            .join(
                objectors.lazy(),
                [col(CANONICAL)],
                [col(NHS)],
                JoinArgs::new(JoinType::Anti),
            )
            .select(keep),
    )
    .map_err(wrap)?;
    let withheld = persons.column(CANONICAL).map_err(wrap)?.null_count();
    let counts = ObjectionCounts {
        register_rows: register.rows,
        linked: linked.persons.height(),
        matched,
        matched_not_in_cohort,
        matched_not_applied: matched - removed_rows,
        type1,
        ndoo,
        removed: removed_rows,
        withheld_no_nhs_number: withheld,
        released: released.height(),
    };
    if counts.withheld_no_nhs_number > 0 {
        tracing::warn!(
            withheld = counts.withheld_no_nhs_number,
            "linked people without a valid NHS number in the index are withheld: the objections register cannot be checked for them"
        );
    }
    tracing::info!(
        register_rows = counts.register_rows,
        matched = counts.matched,
        matched_not_in_cohort = ?counts.matched_not_in_cohort,
        matched_not_applied = counts.matched_not_applied,
        removed = counts.removed,
        released = counts.released,
        "objections register applied"
    );
    Ok(Released {
        persons: released,
        counts,
    })
}

/// An NHS number column as ten digits, null where it is not a valid number
/// (the cohort reader's rule: spaces and hyphens removed, modulus 11).
fn canonical_nhs(c: Expr) -> Expr {
    c.cast(DataType::String).map(
        |column: Column| {
            let ca = column.str()?;
            let out: StringChunked = ca
                .iter()
                .map(|v| {
                    v.and_then(|s| crate::domain::NhsNumber::parse(s).ok())
                        .map(|n| n.as_string())
                })
                .collect();
            Ok(out.with_name(column.name().clone()).into_column())
        },
        |_, field| Ok(Field::new(field.name().clone(), DataType::String)),
    )
}
