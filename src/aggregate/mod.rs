//! Stage 5a, aggregation: counts of persons or records by `group_by`, with
//! every margin and a grand total when `totals = true`.
//!
//! The table is a full grid: every combination of the observed values of
//! each dimension, so a true zero is present as 0 and can never be confused
//! with a suppressed cell. With totals, every sub-table is added: for three
//! dimensions the three two-way margins, the three one-way margins and the
//! grand total, so that each margin cell is the total of the cells one
//! dimension finer. Margins of persons are counted from the records, not
//! summed from cells, because one person can fall in several cells; margins
//! of records are sums. Counts are taken on the linked, non-objecting cohort
//! before any disclosure control; [`crate::suppress`] protects them.

mod config;
pub mod table_input;
#[cfg(test)]
mod tests;

pub use crate::counts::{Cell, CellLevel, CountTable, MAX_COUNT, TOTAL, UNKNOWN};
pub use config::{AggregateOutput, CountKind};

use std::collections::{BTreeSet, HashMap};

use polars::prelude::*;

use crate::minimise::{field_expr, FieldSpec, PseudonymKey};
use crate::objections::Released;

/// Refuse grids larger than this: a group_by this fine is a re-identification
/// risk and a memory hazard, not a table.
pub const MAX_CELLS: usize = 2_000_000;
/// Refuse more dimensions than this: 2^dims sub-tables are counted.
pub const MAX_DIMS: usize = 8;

/// Whether a dimension value could be read as the margin label: `Total`
/// itself, or anything a reader would take for it once case, spaces,
/// invisible characters (zero-width spaces, bidi controls, a BOM),
/// compatibility forms (full-width letters) and look-alike letters of
/// other scripts (Cyrillic `Т`, Greek `Τ`, a digit `1` for `l`) are set
/// aside: the Unicode confusables skeleton (UTS #39) of the case-folded
/// NFKC form.
pub fn is_reserved_label(value: &str) -> bool {
    // No spelling of five letters with invisible characters between them
    // is this long; the skeleton of every long label would cost for nothing.
    if value.len() > 256 {
        return false;
    }
    label_skeleton(value) == label_skeleton(TOTAL)
}

/// What a reader sees of a label: NFKC, without spaces or format
/// characters, confusables folded before and after lower-casing (so that
/// `ТОТAL` and `tоtal` both fold to `total`).
fn label_skeleton(value: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_security::skeleton;
    let visible: String = value.nfkc().filter(|c| !invisible(*c)).collect();
    let lower = skeleton(&visible).collect::<String>().to_lowercase();
    skeleton(&lower).collect()
}

/// Spaces and the format characters that render as nothing.
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        )
}

/// What a count counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// Rows.
    Records,
    /// Distinct values of this column (people).
    DistinctOf(String),
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
    #[error("output `{output}`: {dims} group_by dimensions (at most {MAX_DIMS})\n  fix: group by fewer columns")]
    TooManyDims { output: String, dims: usize },
    #[error("output `{output}`: percent_of `{name}` is not a group_by dimension, so the denominator of the percentages is not in the table\n  fix: use one of: {dims}")]
    PercentOfUnknown {
        output: String,
        name: String,
        dims: String,
    },
    #[error("output `{output}`: percent_of needs the totals it divides by, but the table has no margins\n  fix: set totals = true (or pass --totals), or remove percent_of")]
    PercentWithoutTotals { output: String },
    #[error("{output}: count column `{column}` has {problem} on row {row}\n  fix: a count is a whole number of people or records, from 0 to {MAX_COUNT}: correct that row")]
    BadCount {
        output: String,
        column: String,
        problem: &'static str,
        row: usize,
    },
    #[error("{output}: the counts add up to more than {MAX_COUNT} in a {level} of the table, more than any real count of people or records\n  fix: check the count column holds counts")]
    CountOverflow { output: String, level: &'static str },
    #[error("{output}: dimension `{dimension}` has a real value that reads as `{TOTAL}`, the label of a margin, so a reader could not tell that value's count from the total{}\n  fix: recode that value in the data, or group by a transform of the column; `{TOTAL}` marks margins only",
        match row { Some(r) => format!(" (row {r})"), None => String::new() })]
    ReservedLabel {
        output: String,
        dimension: String,
        row: Option<usize>,
    },
    #[error("{output}: the margin{} (summed over `{dimension}`) is {problem} the cells it totals, so the table contradicts itself\n  fix: a margin counts at least its largest cell and at most all of them together: correct that row, or leave the margins out and pass --totals",
        match row { Some(r) => format!(" on row {r}"), None => String::new() })]
    InconsistentMargin {
        output: String,
        dimension: String,
        problem: &'static str,
        row: Option<usize>,
    },
    #[error("output `{output}`: group_by `{field}` of dataset `{dataset}` holds {what} ({rule}): its values would be the labels of the table's cells, and nothing was released\n  fix: group by a generalised column (region, admission_date:year, age:band10)")]
    DirectIdentifier {
        output: String,
        dataset: String,
        field: String,
        what: &'static str,
        rule: crate::minimise::Rule,
    },
    #[error("output `{output}`: dataset has no key column `{key}`\n  fix: correct the dataset's `key` in the site config; if the dataset is a CSV file, check its first line names the columns")]
    MissingKey { output: String, key: String },
    #[error("output `{output}`: the dataset's key column `{key}` holds {found}, not integers\n  fix: write `{key}` as integers (the index's person_id, Int64), or name the dataset's integer key column in the site config's `datasets.NAME.key`")]
    KeyType {
        output: String,
        key: String,
        found: String,
    },
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
    dataset: LazyFrame,
    key: &str,
    pseudonym: &PseudonymKey,
) -> Result<CountTable, AggregateError> {
    count_fields(spec, &spec.field_specs(), released, dataset, key, pseudonym)
}

/// [`count`] with the dimensions already parsed (`dars run` parses them
/// once, in its plan), one per `group_by` entry, in order.
pub fn count_fields(
    spec: &AggregateOutput,
    fields: &[FieldSpec],
    released: &Released,
    mut dataset: LazyFrame,
    key: &str,
    pseudonym: &PseudonymKey,
) -> Result<CountTable, AggregateError> {
    let wrap = |source| AggregateError::Polars {
        output: spec.name.clone(),
        source: crate::tables::redact(source),
    };
    let schema = dataset.collect_schema().map_err(&wrap)?;
    let available: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    // The key first: a CSV file without a header has no key column, and its
    // "column names" are values that must not be listed.
    let Some(key_type) = schema.get(key) else {
        return Err(AggregateError::MissingKey {
            output: spec.name.clone(),
            key: key.to_string(),
        });
    };
    if let Some(found) = crate::tables::key_type_problem(key_type) {
        return Err(AggregateError::KeyType {
            output: spec.name.clone(),
            key: key.to_string(),
            found,
        });
    }
    for (raw, f) in spec.group_by.iter().zip(fields) {
        if !available.contains(&f.column) {
            return Err(AggregateError::UnknownColumn {
                output: spec.name.clone(),
                field: raw.clone(),
                column: f.column.clone(),
                available: crate::minimise::listable(&available),
            });
        }
    }
    let dims: Vec<String> = fields.iter().map(FieldSpec::output_name).collect();
    let percent_of = spec
        .percent_dims(&dims)
        .map_err(|name| AggregateError::PercentOfUnknown {
            output: spec.name.clone(),
            name,
            dims: spec.group_by.join(", "),
        })?;
    let recruited = crate::minimise::recruitment_filter(released, spec.period.as_ref());
    let persons = match recruited {
        None => released.persons.clone().lazy().select([col("person_id")]),
        // One date a person: the latest of their study IDs', none if any
        // has none (never a row before any of them).
        Some(_) => {
            let r = crate::objections::RECRUITED_ON;
            released
                .persons
                .clone()
                .lazy()
                .group_by([col("person_id")])
                .agg([when(col(r).null_count().gt(lit(0)))
                    .then(lit(NULL).cast(DataType::Date))
                    .otherwise(col(r).max())
                    .alias(r)])
        }
    };
    let mut select: Vec<Expr> = fields
        .iter()
        .map(|f| {
            field_expr(f, pseudonym)
                .cast(DataType::String)
                .fill_null(lit(UNKNOWN))
        })
        .collect();
    select.push(col("__dars_key").alias("__dars_person"));
    let dataset = crate::tables::keep_persons(
        dataset,
        col(key).strict_cast(DataType::Int64),
        &released.persons,
    )
    .map_err(&wrap)?;
    let semi = dataset
        .with_column(col(key).strict_cast(DataType::Int64).alias("__dars_key"))
        .join(
            persons,
            [col("__dars_key")],
            [col("person_id")],
            JoinArgs::new(if recruited.is_some() {
                JoinType::Inner
            } else {
                JoinType::Semi
            }),
        )
        .filter(recruited.unwrap_or(lit(true)));
    let joined = semi.clone().select(select);
    check_dimensions(spec, &dims, released, joined.clone())?;
    let unit = match spec.count {
        CountKind::Persons => Unit::DistinctOf("__dars_person".into()),
        CountKind::Records => Unit::Records,
    };
    // Persons are counted again for every margin (one person can fall in
    // several cells), so scan the dataset once: keep each distinct
    // (dimensions, person) row in memory (at most the cohort's rows) and
    // count every grouping from that.
    // The distinct rows are found on the values as the dataset holds them
    // (dates, numbers), and only those (at most the cohort's rows per
    // cell) are made text: casting every row of the dataset to text first
    // cost more than the scan. The cast may map two values to one label;
    // the count of distinct persons per cell is unaffected.
    let joined = match unit {
        Unit::Records => joined,
        Unit::DistinctOf(_) => {
            let mut native: Vec<Expr> = fields.iter().map(|f| field_expr(f, pseudonym)).collect();
            native.push(col("__dars_key").alias("__dars_person"));
            let distinct = semi.select(native).unique(None, UniqueKeepStrategy::Any);
            let as_text: Vec<Expr> = dims
                .iter()
                .map(|d| {
                    col(d.as_str())
                        .cast(DataType::String)
                        .fill_null(lit(UNKNOWN))
                })
                .collect();
            crate::tables::collect(distinct)
                .and_then(crate::tables::owned_strings)
                .map_err(|source| AggregateError::Polars {
                    output: spec.name.clone(),
                    source,
                })?
                .lazy()
                .with_columns(as_text)
        }
    };
    let mut table = count_frame(joined, &dims, &unit, spec.totals, &spec.name)?;
    table.universe = format!("{}/{}", spec.dataset, spec.count.as_str());
    set_percent_of(&mut table, percent_of, &spec.name)?;
    Ok(table)
}

/// The content rules (see [`crate::minimise::identifiers`]) on a sample of
/// each dimension's values: a dimension holding NHS numbers, postcodes or
/// the people's dates of birth would put them in the cells' labels.
/// `joined` holds the dimensions as text and `__dars_person`, in the
/// dataset's order; its first rows are the sample.
pub fn check_dimensions(
    spec: &AggregateOutput,
    dims: &[String],
    released: &Released,
    joined: LazyFrame,
) -> Result<(), AggregateError> {
    let wrap = |source| AggregateError::Polars {
        output: spec.name.clone(),
        source: crate::tables::redact(source),
    };
    let has_dob = released
        .persons
        .get_column_names()
        .iter()
        .any(|c| c.as_str() == "date_of_birth");
    let mut sample = joined.limit(crate::minimise::identifiers::SAMPLE as IdxSize);
    if has_dob {
        let dob = released
            .persons
            .clone()
            .lazy()
            .select([col("person_id"), col("date_of_birth").alias("__dars_dob")])
            .unique_generic(Some(vec![col("person_id")]), UniqueKeepStrategy::First);
        sample = sample.join(
            dob,
            [col("__dars_person")],
            [col("person_id")],
            JoinArgs::new(JoinType::Left),
        );
    }
    let sample = crate::tables::collect(sample).map_err(wrap)?;
    let dob = sample.column("__dars_dob").ok();
    for (raw, dim) in spec.group_by.iter().zip(dims) {
        let values = sample.column(dim).map_err(wrap)?;
        // Missing values were filled with the label for them.
        let values = values
            .as_materialized_series()
            .str()
            .map_err(wrap)?
            .apply(|v| v.filter(|v| *v != UNKNOWN).map(Into::into))
            .into_column();
        if let Some((kind, rule)) =
            crate::minimise::identifiers::kind_by_content(&values, dob).map_err(wrap)?
        {
            return Err(AggregateError::DirectIdentifier {
                output: spec.name.clone(),
                dataset: spec.dataset.clone(),
                field: raw.clone(),
                what: kind.describe(),
                rule,
            });
        }
    }
    Ok(())
}

/// Sets the percentage denominators, refusing a table that lacks them.
pub fn set_percent_of(
    table: &mut CountTable,
    percent_of: Vec<String>,
    output: &str,
) -> Result<(), AggregateError> {
    for name in &percent_of {
        if !table.dims.contains(name) {
            return Err(AggregateError::PercentOfUnknown {
                output: output.to_string(),
                name: name.clone(),
                dims: table.dims.join(", "),
            });
        }
    }
    table.percent_of = percent_of;
    if !table.percent_of.is_empty() {
        let keys: BTreeSet<&Vec<String>> = table.cells.iter().map(|c| &c.key).collect();
        let missing = table
            .cells
            .iter()
            .filter_map(|c| table.denominator_key(&c.key))
            .any(|k| !keys.contains(&k));
        if missing {
            return Err(AggregateError::PercentWithoutTotals {
                output: output.to_string(),
            });
        }
    }
    Ok(())
}

/// Counts `frame` (string columns `dims`, plus the unit's column) into a
/// full grid, with every margin when `totals`.
pub fn count_frame(
    frame: LazyFrame,
    dims: &[String],
    unit: &Unit,
    totals: bool,
    output: &str,
) -> Result<CountTable, AggregateError> {
    let wrap = |source| AggregateError::Polars {
        output: output.to_string(),
        source,
    };
    if dims.len() > MAX_DIMS {
        return Err(AggregateError::TooManyDims {
            output: output.to_string(),
            dims: dims.len(),
        });
    }
    let measure = match unit {
        Unit::DistinctOf(c) => col(c.as_str()).n_unique().cast(DataType::UInt64).alias("n"),
        Unit::Records => len().cast(DataType::UInt64).alias("n"),
    };
    let all: Vec<usize> = (0..dims.len()).collect();
    let interior = group_counts(&frame, dims, &all, &measure).map_err(wrap)?;
    check_labels(&interior, dims, output)?;
    let subsets = if totals {
        margin_subsets(dims.len())
    } else {
        Vec::new()
    };
    let mut counted = vec![(all, interior)];
    for kept in subsets {
        // Records add up; people do not (one person, several cells), so
        // their margins are counted again from the rows.
        let map = match unit {
            Unit::Records => sum_to(&counted[0].1, &kept, output)?,
            Unit::DistinctOf(_) => group_counts(&frame, dims, &kept, &measure).map_err(wrap)?,
        };
        counted.push((kept, map));
    }
    table_from_sets(dims, counted, matches!(unit, Unit::DistinctOf(_)), output)
}

/// Every value of the data is a real value in the interior: none may read
/// as the margin label.
fn check_labels(
    interior: &HashMap<Vec<String>, u64>,
    dims: &[String],
    output: &str,
) -> Result<(), AggregateError> {
    for key in interior.keys() {
        if let Some(i) = key.iter().position(|v| is_reserved_label(v)) {
            return Err(AggregateError::ReservedLabel {
                output: output.to_string(),
                dimension: dims[i].clone(),
                row: None,
            });
        }
    }
    Ok(())
}

/// The table of sub-tables counted elsewhere (issue #14: one aggregate per
/// grouping set on Spark), the interior (every dimension kept) first and
/// then each margin in the order polars counts them: the same checks and
/// the same full grid as [`count_frame`].
pub fn table_from_sets(
    dims: &[String],
    counted: Vec<SubTable>,
    persons: bool,
    output: &str,
) -> Result<CountTable, AggregateError> {
    if let Some((_, interior)) = counted.first() {
        check_labels(interior, dims, output)?;
    }
    let mut table = grid_table(dims, counted, output)?;
    table.persons = persons;
    Ok(table)
}

/// Builds a table from rows that already hold counts: `rows` maps each
/// key (one value per dimension, [`TOTAL`] in a given margin) to its count.
/// Interior keys fill a full grid (a missing combination is a true zero);
/// margins given in `rows` are kept as given, others are summed when
/// `totals`.
pub fn from_counts(
    dims: &[String],
    rows: HashMap<Vec<String>, u64>,
    totals: bool,
    output: &str,
) -> Result<CountTable, AggregateError> {
    from_count_rows(dims, rows, &HashMap::new(), totals, output)
}

/// [`from_counts`], with the row of the input each key came from
/// (`row_of`), so that a margin that contradicts its cells is named by its
/// row. A given margin must count at least its largest cell and at most
/// their sum (for records exactly the sum; for people, who can fall in
/// several cells, anything between): else no table of true counts has
/// these margins, and the audit would have nothing to solve.
pub fn from_count_rows(
    dims: &[String],
    rows: HashMap<Vec<String>, u64>,
    row_of: &HashMap<Vec<String>, usize>,
    totals: bool,
    output: &str,
) -> Result<CountTable, AggregateError> {
    let given_margins: Vec<Vec<String>> = rows
        .keys()
        .filter(|k| k.iter().any(|v| v == TOTAL))
        .cloned()
        .collect();
    let table = from_counts_unchecked(dims, rows, totals, output)?;
    check_given_margins(&table, &given_margins, row_of, output)?;
    Ok(table)
}

fn check_given_margins(
    table: &CountTable,
    given: &[Vec<String>],
    row_of: &HashMap<Vec<String>, usize>,
    output: &str,
) -> Result<(), AggregateError> {
    if given.is_empty() {
        return Ok(());
    }
    let index = table.index_by_key();
    let mut values: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); table.dims.len()];
    for c in &table.cells {
        for (j, v) in c.key.iter().enumerate() {
            if v != TOTAL {
                values[j].insert(v);
            }
        }
    }
    let mut given: Vec<&Vec<String>> = given.iter().collect();
    // The first row first, so the error names the earliest bad row.
    given.sort_by_key(|k| row_of.get(*k).copied().unwrap_or(usize::MAX));
    for key in given {
        let Some(&m) = index.get(key.as_slice()) else {
            continue;
        };
        let margin = table.cells[m].count;
        for j in (0..key.len()).filter(|&j| key[j] == TOTAL) {
            let mut child = key.clone();
            let (mut largest, mut sum) = (0u64, 0u64);
            for v in &values[j] {
                child[j] = v.to_string();
                let n = index
                    .get(child.as_slice())
                    .map_or(0, |&c| table.cells[c].count);
                largest = largest.max(n);
                sum = sum.saturating_add(n);
            }
            let problem = if margin < largest {
                "smaller than one of"
            } else if margin > sum {
                "larger than the sum of"
            } else {
                continue;
            };
            return Err(AggregateError::InconsistentMargin {
                output: output.to_string(),
                dimension: table.dims[j].clone(),
                problem,
                row: row_of.get(key).copied(),
            });
        }
    }
    Ok(())
}

fn from_counts_unchecked(
    dims: &[String],
    rows: HashMap<Vec<String>, u64>,
    totals: bool,
    output: &str,
) -> Result<CountTable, AggregateError> {
    if dims.len() > MAX_DIMS {
        return Err(AggregateError::TooManyDims {
            output: output.to_string(),
            dims: dims.len(),
        });
    }
    let all: Vec<usize> = (0..dims.len()).collect();
    let mut interior = HashMap::new();
    let mut given: HashMap<Vec<usize>, HashMap<Vec<String>, u64>> = HashMap::new();
    for (key, n) in rows {
        // `Total` exactly marks a margin row of a count table; anything
        // else a reader would take for it is ambiguous.
        if let Some(i) = key.iter().position(|v| v != TOTAL && is_reserved_label(v)) {
            return Err(AggregateError::ReservedLabel {
                output: output.to_string(),
                dimension: dims[i].clone(),
                row: None,
            });
        }
        if n > MAX_COUNT {
            return Err(AggregateError::CountOverflow {
                output: output.to_string(),
                level: "cell",
            });
        }
        let kept: Vec<usize> = (0..dims.len()).filter(|&i| key[i] != TOTAL).collect();
        if kept.len() == dims.len() {
            interior.insert(key, n);
        } else {
            let short: Vec<String> = kept.iter().map(|&i| key[i].clone()).collect();
            given.entry(kept).or_default().insert(short, n);
        }
    }
    let mut counted = vec![(all, interior)];
    let mut subsets: Vec<Vec<usize>> = given.keys().cloned().collect();
    if totals {
        for s in margin_subsets(dims.len()) {
            if !subsets.contains(&s) {
                subsets.push(s);
            }
        }
    }
    subsets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    for kept in subsets {
        let map = match given.remove(&kept) {
            Some(m) => m,
            None => sum_to(&counted[0].1, &kept, output)?,
        };
        counted.push((kept, map));
    }
    grid_table(dims, counted, output)
}

/// Every proper subset of the dimensions, finest first, the grand total last.
fn margin_subsets(d: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = (0..(1usize << d) - 1)
        .map(|mask| (0..d).filter(|i| mask & (1 << i) != 0).collect())
        .collect();
    out.sort_by(|a: &Vec<usize>, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    out
}

/// Counts per combination of the `kept` dimensions.
fn group_counts(
    frame: &LazyFrame,
    dims: &[String],
    kept: &[usize],
    measure: &Expr,
) -> PolarsResult<HashMap<Vec<String>, u64>> {
    let by: Vec<Expr> = kept.iter().map(|&i| col(dims[i].as_str())).collect();
    let lf = if by.is_empty() {
        frame.clone().select([measure.clone()])
    } else {
        frame.clone().group_by(by).agg([measure.clone()])
    };
    let df = crate::tables::collect(lf)?;
    let n = df.column("n")?.u64()?.clone();
    let cols: Vec<StringChunked> = kept
        .iter()
        .map(|&i| Ok(df.column(&dims[i])?.str()?.clone()))
        .collect::<PolarsResult<_>>()?;
    let mut map = HashMap::with_capacity(df.height());
    for row in 0..df.height() {
        let key: Vec<String> = cols
            .iter()
            .map(|c| c.get(row).unwrap_or(UNKNOWN).to_string())
            .collect();
        map.insert(key, n.get(row).unwrap_or(0));
    }
    Ok(map)
}

/// Sums interior counts (keyed by every dimension) down to `kept`; a sum
/// past [`MAX_COUNT`] is refused, never wrapped or a panic.
fn sum_to(
    interior: &HashMap<Vec<String>, u64>,
    kept: &[usize],
    output: &str,
) -> Result<HashMap<Vec<String>, u64>, AggregateError> {
    let mut out: HashMap<Vec<String>, u64> = HashMap::new();
    for (key, n) in interior {
        let short: Vec<String> = kept.iter().map(|&i| key[i].clone()).collect();
        let sum = out.entry(short).or_default();
        *sum = sum
            .checked_add(*n)
            .filter(|s| *s <= MAX_COUNT)
            .ok_or_else(|| AggregateError::CountOverflow {
                output: output.to_string(),
                level: if kept.is_empty() {
                    "grand total"
                } else {
                    "margin"
                },
            })?;
    }
    Ok(out)
}

/// The kept dimensions of a sub-table and its counts by their values.
pub type SubTable = (Vec<usize>, HashMap<Vec<String>, u64>);

/// Lays counted sub-tables out as a full grid of cells.
fn grid_table(
    dims: &[String],
    counted: Vec<SubTable>,
    output: &str,
) -> Result<CountTable, AggregateError> {
    // The observed values of each dimension, sorted, for the full grid.
    let mut values: Vec<BTreeSet<String>> = vec![BTreeSet::new(); dims.len()];
    for (kept, map) in &counted {
        for key in map.keys() {
            for (slot, v) in kept.iter().zip(key) {
                values[*slot].insert(v.clone());
            }
        }
    }
    let mut cells = Vec::new();
    for (kept, map) in &counted {
        let level = if kept.len() == dims.len() {
            CellLevel::Interior
        } else if kept.is_empty() {
            CellLevel::GrandTotal
        } else {
            CellLevel::Margin
        };
        let size: usize = kept.iter().map(|&i| values[i].len().max(1)).product();
        if size.saturating_add(cells.len()) > MAX_CELLS {
            return Err(AggregateError::TooManyCells {
                output: output.to_string(),
                cells: size.saturating_add(cells.len()),
            });
        }
        let sets: Vec<&BTreeSet<String>> = kept.iter().map(|&i| &values[i]).collect();
        for combo in grid(&sets) {
            let count = map.get(&combo).copied().unwrap_or(0);
            let mut key = vec![TOTAL.to_string(); dims.len()];
            for (slot, v) in kept.iter().zip(combo) {
                key[*slot] = v;
            }
            cells.push(Cell { key, count, level });
        }
    }
    Ok(CountTable::new(dims.to_vec(), cells))
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
