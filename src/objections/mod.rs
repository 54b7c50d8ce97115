//! Stage 3, objections: removes every linked person whose NHS number has an
//! objection of a type the agreement applies (type 1, national data
//! opt-out). The NHS number used is the master person index's, not the
//! applicant's, so a typo in the cohort cannot let an objector through.

#[cfg(test)]
mod tests;

use polars::prelude::*;

use crate::config::ObjectionType;

/// The linked cohort handed over by the link stage: one row per linked
/// study ID with `study_id` (String), `person_id` (Int64) and the index's
/// `nhs_number` (String).
#[derive(Debug, Clone)]
pub struct Linked {
    pub persons: DataFrame,
}

/// The cohort that may be released: `study_id`, `person_id`.
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

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectionCounts {
    pub linked: usize,
    /// Linked people with a type 1 objection (applied or not).
    pub type1: usize,
    /// Linked people with a national data opt-out (applied or not).
    pub ndoo: usize,
    pub removed: usize,
    pub released: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectionsError {
    #[error("objections register: {source}\n  fix: check `sources.objections` in the site config points at a Parquet file with nhs_number, objection_type and recorded_on")]
    Register {
        #[source]
        source: PolarsError,
    },
}

/// Removes objectors of the applied types.
pub fn remove_objectors(
    linked: &Linked,
    register: LazyFrame,
    apply: &[ObjectionType],
) -> Result<Released, ObjectionsError> {
    let wrap = |source| ObjectionsError::Register { source };
    let linked_lf = linked.persons.clone().lazy();
    // Which linked people have which objection, whether applied or not, so
    // that the run summary says what the agreement chose not to apply.
    let objecting = crate::tables::collect(
        register
            .select([
                col("nhs_number").cast(DataType::String),
                col("objection_type").cast(DataType::String),
            ])
            .join(
                linked_lf.clone().select([col("nhs_number")]),
                [col("nhs_number")],
                [col("nhs_number")],
                JoinArgs::new(JoinType::Semi),
            )
            .unique(None, UniqueKeepStrategy::Any),
    )
    .map_err(wrap)?;
    let count_type = |t: ObjectionType| -> PolarsResult<usize> {
        Ok(objecting
            .clone()
            .lazy()
            .filter(col("objection_type").eq(lit(t.code())))
            .select([col("nhs_number").n_unique()])
            .collect()?
            .column("nhs_number")?
            .u32()?
            .get(0)
            .unwrap_or(0) as usize)
    };
    let (type1, ndoo) = (
        count_type(ObjectionType::Type1).map_err(wrap)?,
        count_type(ObjectionType::Ndoo).map_err(wrap)?,
    );
    let applied: Vec<&str> = apply.iter().map(|t| t.code()).collect();
    let applied = Series::new("applied".into(), applied);
    let objectors = objecting
        .lazy()
        .filter(col("objection_type").is_in(lit(applied).implode(false), false))
        .select([col("nhs_number")]);
    let persons = crate::tables::collect(
        linked_lf
            .join(
                objectors,
                [col("nhs_number")],
                [col("nhs_number")],
                JoinArgs::new(JoinType::Anti),
            )
            .select([col("study_id"), col("person_id")]),
    )
    .map_err(wrap)?;
    let counts = ObjectionCounts {
        linked: linked.persons.height(),
        type1,
        ndoo,
        removed: linked.persons.height() - persons.height(),
        released: persons.height(),
    };
    Ok(Released { persons, counts })
}
