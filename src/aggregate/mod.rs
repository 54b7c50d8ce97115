//! Stage 5a, aggregation: counts of persons or records by `group_by`, with
//! a margin per dimension and a grand total when `totals = true`.
//!
//! The table is a full grid: every combination of the observed values of
//! each dimension, so a true zero is present as 0 and can never be confused
//! with a suppressed cell. Margins are counted from the records, not summed
//! from cells, because one person can fall in several cells. Counts are
//! taken on the linked, non-objecting cohort before any disclosure control;
//! [`crate::suppress`] protects them.

mod config;
#[cfg(test)]
mod tests;

pub use config::{AggregateOutput, CountKind};

use std::collections::{BTreeSet, HashMap};

use polars::prelude::*;

use crate::minimise::{field_expr, FieldSpec, PseudonymKey};
use crate::objections::Released;

/// The label of a dimension summed over in a margin.
pub const TOTAL: &str = "Total";
/// The label of a missing (null) dimension value.
pub const UNKNOWN: &str = "Unknown";
/// Refuse grids larger than this: a group_by this fine is a re-identification
/// risk and a memory hazard, not a table.
pub const MAX_CELLS: usize = 2_000_000;

/// Where a cell sits in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellLevel {
    Interior,
    /// Summed over at least one dimension, but not all.
    Margin,
    /// Summed over every dimension: the national total.
    GrandTotal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// One value per dimension; [`TOTAL`] where summed over.
    pub key: Vec<String>,
    pub count: u64,
    pub level: CellLevel,
}

/// True (unprotected) counts. Internal: never released as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountTable {
    pub dims: Vec<String>,
    pub cells: Vec<Cell>,
}

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("output `{output}`: dataset has no column `{column}` (group_by `{field}`)\n  fix: use one of: {available}")]
    UnknownColumn {
        output: String,
        field: String,
        column: String,
        available: String,
    },
    #[error("output `{output}`: the table would have {cells} cells (more than {MAX_CELLS})\n  fix: group by fewer or coarser columns (e.g. admission_date:year)")]
    TooManyCells { output: String, cells: usize },
    #[error("output `{output}`: {source}")]
    Polars {
        output: String,
        #[source]
        source: PolarsError,
    },
}

/// Counts the released cohort's rows of `dataset` by the output's dimensions.
pub fn count(
    spec: &AggregateOutput,
    released: &Released,
    mut dataset: LazyFrame,
    key: &str,
    pseudonym: &PseudonymKey,
) -> Result<CountTable, AggregateError> {
    let wrap = |source| AggregateError::Polars {
        output: spec.name.clone(),
        source,
    };
    let available = crate::tables::column_names(&mut dataset).map_err(wrap)?;
    let fields = spec.field_specs();
    for (raw, f) in spec.group_by.iter().zip(&fields) {
        if !available.iter().any(|c| *c == f.column) {
            return Err(AggregateError::UnknownColumn {
                output: spec.name.clone(),
                field: raw.clone(),
                column: f.column.clone(),
                available: available.join(", "),
            });
        }
    }
    let dims: Vec<String> = fields.iter().map(FieldSpec::output_name).collect();
    let persons = released.persons.clone().lazy().select([col("person_id")]);
    let mut select: Vec<Expr> = fields
        .iter()
        .map(|f| {
            field_expr(f, pseudonym)
                .cast(DataType::String)
                .fill_null(lit(UNKNOWN))
        })
        .collect();
    select.push(col("__dars_key").alias("__dars_person"));
    let joined = dataset
        .with_column(col(key).cast(DataType::Int64).alias("__dars_key"))
        .join(
            persons,
            [col("__dars_key")],
            [col("person_id")],
            JoinArgs::new(JoinType::Semi),
        )
        .select(select);
    let measure = match spec.count {
        CountKind::Persons => col("__dars_person")
            .n_unique()
            .cast(DataType::UInt64)
            .alias("n"),
        CountKind::Records => len().cast(DataType::UInt64).alias("n"),
    };

    // One grouping per level: all dimensions, then (with totals) each
    // dimension summed over, then the grand total.
    let mut groupings: Vec<(Vec<usize>, CellLevel)> =
        vec![((0..dims.len()).collect(), CellLevel::Interior)];
    if spec.totals {
        if dims.len() > 1 {
            for skip in 0..dims.len() {
                groupings.push((
                    (0..dims.len()).filter(|&i| i != skip).collect(),
                    CellLevel::Margin,
                ));
            }
        }
        groupings.push((vec![], CellLevel::GrandTotal));
    }
    let mut counted: Vec<(Vec<usize>, CellLevel, HashMap<Vec<String>, u64>)> = Vec::new();
    for (kept, level) in groupings {
        let by: Vec<Expr> = kept.iter().map(|&i| col(dims[i].as_str())).collect();
        let lf = if by.is_empty() {
            joined.clone().select([measure.clone()])
        } else {
            joined.clone().group_by(by).agg([measure.clone()])
        };
        let df = crate::tables::collect(lf).map_err(wrap)?;
        let mut map = HashMap::with_capacity(df.height());
        let n = df.column("n").map_err(wrap)?.u64().map_err(wrap)?.clone();
        let cols: Vec<StringChunked> = kept
            .iter()
            .map(|&i| Ok(df.column(&dims[i])?.str()?.clone()))
            .collect::<PolarsResult<_>>()
            .map_err(wrap)?;
        for row in 0..df.height() {
            let key: Vec<String> = cols
                .iter()
                .map(|c| c.get(row).unwrap_or(UNKNOWN).to_string())
                .collect();
            map.insert(key, n.get(row).unwrap_or(0));
        }
        counted.push((kept, level, map));
    }

    // The observed values of each dimension, sorted, for the full grid.
    let mut values: Vec<BTreeSet<String>> = vec![BTreeSet::new(); dims.len()];
    for key in counted[0].2.keys() {
        for (i, v) in key.iter().enumerate() {
            values[i].insert(v.clone());
        }
    }
    let mut cells = Vec::new();
    for (kept, level, map) in &counted {
        let size: usize = kept.iter().map(|&i| values[i].len().max(1)).product();
        if size.saturating_add(cells.len()) > MAX_CELLS {
            return Err(AggregateError::TooManyCells {
                output: spec.name.clone(),
                cells: size,
            });
        }
        for combo in grid(
            kept.iter()
                .map(|&i| &values[i])
                .collect::<Vec<_>>()
                .as_slice(),
        ) {
            let count = map.get(&combo).copied().unwrap_or(0);
            let mut key = vec![TOTAL.to_string(); dims.len()];
            for (slot, v) in kept.iter().zip(combo) {
                key[*slot] = v;
            }
            cells.push(Cell {
                key,
                count,
                level: *level,
            });
        }
    }
    Ok(CountTable { dims, cells })
}

/// The cartesian product of the value sets, in order.
fn grid(sets: &[&BTreeSet<String>]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![vec![]];
    for set in sets {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                set.iter().map(move |v| {
                    let mut k = prefix.clone();
                    k.push(v.clone());
                    k
                })
            })
            .collect();
    }
    out
}
