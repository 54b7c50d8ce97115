//! Stage 4, minimisation: nothing leaves but the fields an output lists.
//!
//! A field is `column[:transform]`. The transforms generalise: `year` and
//! `month` (YYYY-MM) for dates, `district` and `sector` for postcodes,
//! `band5` and `band10` for ages (the lower bound of the band), and
//! `pseudonym`, a keyed HMAC-SHA-256 with one key per agreement, for
//! identifiers. Direct identifiers (NHS number, names, full postcode, full
//! date of birth) and the custodian's own person key are refused unless the
//! agreement says `identifiable = true`. Every record output carries
//! `study_id` as its key: the applicant's own identifier for the person.

mod config;
#[cfg(test)]
mod tests;
mod transform;

pub use config::{FieldSpec, RecordsOutput, Transform};
pub use transform::{field_expr, PseudonymKey};

use polars::prelude::*;

use crate::objections::Released;

#[derive(Debug, thiserror::Error)]
pub enum MinimiseError {
    #[error("output `{output}`: dataset `{dataset}` has no column `{column}` (field `{field}`)\n  fix: use one of: {available}")]
    UnknownField {
        output: String,
        dataset: String,
        field: String,
        column: String,
        available: String,
    },
    #[error("output `{output}`: dataset `{dataset}` has no key column `{key}`\n  fix: correct `datasets.{dataset}.key` in the site config")]
    MissingKey {
        output: String,
        dataset: String,
        key: String,
    },
    #[error("output `{output}`: {source}\n  fix: check that each transform suits its column's type (dates: year, month; postcodes: district, sector; ages: band5, band10)")]
    Polars {
        output: String,
        #[source]
        source: PolarsError,
    },
}

/// The minimised record-level frame of one output: `study_id` first, then
/// one column per listed field, for the linked, non-objecting cohort only.
pub fn records(
    spec: &RecordsOutput,
    released: &Released,
    mut dataset: LazyFrame,
    key: &str,
    pseudonym: &PseudonymKey,
) -> Result<DataFrame, MinimiseError> {
    let wrap = |source| MinimiseError::Polars {
        output: spec.name.clone(),
        source,
    };
    let available = crate::tables::column_names(&mut dataset).map_err(wrap)?;
    if !available.iter().any(|c| c == key) {
        return Err(MinimiseError::MissingKey {
            output: spec.name.clone(),
            dataset: spec.dataset.clone(),
            key: key.to_string(),
        });
    }
    let fields = spec.field_specs();
    let mut exprs = vec![col("study_id")];
    for (raw, field) in spec.fields.iter().zip(&fields) {
        if field.column == "study_id" {
            continue;
        }
        if !available.contains(&field.column) {
            return Err(MinimiseError::UnknownField {
                output: spec.name.clone(),
                dataset: spec.dataset.clone(),
                field: raw.clone(),
                column: field.column.clone(),
                available: available.join(", "),
            });
        }
        exprs.push(field_expr(field, pseudonym));
    }
    let persons = released
        .persons
        .clone()
        .lazy()
        .select([col("study_id"), col("person_id")]);
    let key_alias = "__dars_key";
    let lf = dataset
        .with_column(col(key).cast(DataType::Int64).alias(key_alias))
        .inner_join(persons, col(key_alias), col("person_id"))
        .select(exprs);
    // Sorted on every column, so that the same inputs always give the same
    // file: a resumed run, or a re-run, releases identical plaintext.
    let mut out = crate::tables::collect(lf).map_err(wrap)?;
    let names: Vec<String> = out
        .get_column_names_owned()
        .into_iter()
        .map(|n| n.to_string())
        .collect();
    out = out
        .sort(names, SortMultipleOptions::default().with_nulls_last(true))
        .map_err(wrap)?;
    Ok(out)
}
