//! A sample table read for `dars suppress` (an analyst's dry run): a file of
//! records counted by some of its columns, or a file that already holds
//! counts (a `count` column, margins as `Total`), made into a [`CountTable`]
//! with every value checked.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;

use super::{
    count_frame, from_count_rows, is_reserved_label, set_percent_of, AggregateError, CountTable,
    Unit, MAX_COUNT, TOTAL, UNKNOWN,
};

/// The column that marks a table of counts.
pub const COUNT: &str = "count";

/// How to read a sample table.
#[derive(Debug, Clone, Copy)]
pub struct SampleTable<'a> {
    pub path: &'a Path,
    /// Dimensions: the columns records are counted by, or the columns of a
    /// count table to keep (summing over the others). Empty: every column
    /// of a count table but `count`.
    pub group_by: &'a [String],
    /// Add every margin and the national total.
    pub totals: bool,
    /// Count distinct values of this column (people) instead of rows.
    pub persons: Option<&'a str>,
    /// Dimensions the percentages divide over.
    pub percent_of: &'a [String],
}

#[derive(Debug, thiserror::Error)]
pub enum SampleTableError {
    #[error("{table}: there is no column `{column}` (--group-by)\n  fix: use one of: {available}")]
    UnknownColumn {
        table: String,
        column: String,
        available: String,
    },
    #[error("{table}: has no `count` column, so it is read as records, and records need --group-by\n  fix: pass --group-by COLS (e.g. --group-by region,sex), or add a `count` column")]
    RecordsWithoutGroupBy { table: String },
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
}

/// Reads a sample table as counts (it has a `count` column) or records
/// into a count table of `universe`.
pub fn read_sample_table(
    spec: &SampleTable<'_>,
    universe: &str,
) -> Result<CountTable, SampleTableError> {
    let input = SampleTableError::Aggregate;
    let shown = spec.path.display().to_string();
    let polars = |e: PolarsError| {
        input(AggregateError::Polars {
            output: shown.clone(),
            source: e,
        })
    };
    let mut lf = crate::tables::scan(spec.path).map_err(polars)?;
    let available = crate::tables::column_names(&mut lf).map_err(polars)?;
    for c in spec.group_by.iter().map(String::as_str).chain(spec.persons) {
        if !available.iter().any(|a| a == c) {
            return Err(SampleTableError::UnknownColumn {
                table: shown.clone(),
                column: c.to_string(),
                available: crate::minimise::listable(&available),
            });
        }
    }
    let counts = available.iter().any(|c| c == COUNT);
    let dims: Vec<String> = if !spec.group_by.is_empty() {
        spec.group_by.to_vec()
    } else if counts {
        available.iter().filter(|c| *c != COUNT).cloned().collect()
    } else {
        return Err(SampleTableError::RecordsWithoutGroupBy { table: shown });
    };
    let as_text: Vec<Expr> = dims
        .iter()
        .map(|d| {
            col(d.as_str())
                .cast(DataType::String)
                .fill_null(lit(UNKNOWN))
        })
        .collect();
    let mut table = if counts {
        let df = crate::tables::collect(
            lf.select(
                as_text
                    .into_iter()
                    .chain([col(COUNT).cast(DataType::String)])
                    .collect::<Vec<_>>(),
            ),
        )
        .map_err(polars)?;
        let (rows, row_of) = count_rows(&df, &dims, &shown).map_err(input)?;
        from_count_rows(&dims, rows, &row_of, spec.totals, &shown).map_err(input)?
    } else {
        let mut select = as_text;
        let unit = match spec.persons {
            Some(p) => {
                select.push(col(p).alias("__dars_person"));
                Unit::DistinctOf("__dars_person".into())
            }
            None => Unit::Records,
        };
        count_frame(lf.select(select), &dims, &unit, spec.totals, &shown).map_err(input)?
    };
    table.universe = universe.to_string();
    set_percent_of(&mut table, spec.percent_of.to_vec(), &shown).map_err(input)?;
    Ok(table)
}

/// Key → the first row (1-based) that holds it.
type RowOf = HashMap<Vec<String>, usize>;

/// The counts of a count table, summed by `dims`, and the row each key
/// was first seen on; every value checked.
fn count_rows(
    df: &DataFrame,
    dims: &[String],
    table: &str,
) -> Result<(HashMap<Vec<String>, u64>, RowOf), AggregateError> {
    let polars = |e: PolarsError| AggregateError::Polars {
        output: table.to_string(),
        source: e,
    };
    let keys: Vec<StringChunked> = dims
        .iter()
        .map(|d| Ok(df.column(d)?.str()?.clone()))
        .collect::<PolarsResult<_>>()
        .map_err(polars)?;
    let counts = df
        .column(COUNT)
        .and_then(|c| c.str().cloned())
        .map_err(polars)?;
    let mut rows: HashMap<Vec<String>, u64> = HashMap::new();
    let mut row_of: RowOf = HashMap::new();
    for (row, value) in counts.iter().enumerate() {
        let n = parse_count(value).map_err(|problem| AggregateError::BadCount {
            output: table.to_string(),
            column: COUNT.into(),
            problem,
            row: row + 1,
        })?;
        let key: Vec<String> = keys
            .iter()
            .map(|k| k.get(row).unwrap_or(UNKNOWN).to_string())
            .collect();
        // `Total` exactly marks a margin row; `TOTAL` or ` total` would be
        // a real value a reader could not tell from it.
        if let Some(i) = key.iter().position(|v| v != TOTAL && is_reserved_label(v)) {
            return Err(AggregateError::ReservedLabel {
                output: table.to_string(),
                dimension: dims[i].clone(),
                row: Some(row + 1),
            });
        }
        row_of.entry(key.clone()).or_insert(row + 1);
        let sum = rows.entry(key).or_default();
        *sum = sum
            .checked_add(n)
            .filter(|s| *s <= MAX_COUNT)
            .ok_or_else(|| AggregateError::CountOverflow {
                output: table.to_string(),
                level: "cell (rows with the same dimension values are added up)",
            })?;
    }
    Ok((rows, row_of))
}

/// A whole, non-negative count (`12` or `12.0`) no larger than
/// [`MAX_COUNT`], or what is wrong with it.
fn parse_count(value: Option<&str>) -> Result<u64, &'static str> {
    const TOO_LARGE: &str = "a count larger than 2^53 (9007199254740992)";
    let text = value.map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Err("an empty value");
    }
    if let Ok(n) = text.parse::<u64>() {
        return if n <= MAX_COUNT {
            Ok(n)
        } else {
            Err(TOO_LARGE)
        };
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only, but past u64.
        return Err(TOO_LARGE);
    }
    match text.parse::<f64>() {
        Ok(x) if x < 0.0 => Err("a negative count"),
        Ok(x) if x.fract() != 0.0 || !x.is_finite() => Err("a count that is not a whole number"),
        Ok(x) if x <= MAX_COUNT as f64 => Ok(x as u64),
        Ok(_) => Err(TOO_LARGE),
        _ => Err("a value that is not a number"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_count;

    #[test]
    fn counts_must_be_whole_and_not_negative() {
        assert_eq!(parse_count(Some("12")), Ok(12));
        assert_eq!(parse_count(Some("12.0")), Ok(12));
        assert_eq!(parse_count(Some("-3")), Err("a negative count"));
        assert_eq!(
            parse_count(Some("2.5")),
            Err("a count that is not a whole number")
        );
        assert_eq!(
            parse_count(Some("many")),
            Err("a value that is not a number")
        );
        assert_eq!(parse_count(None), Err("an empty value"));
    }
}
