//! Reading the objections register: finding its columns, normalising every
//! NHS number and objection type, and refusing the whole register when any
//! row cannot be read. Messages name the row and the column, never a value.

use std::fmt;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::ObjectionType;
use super::{ObjectionsError, NHS, TYPE};
use crate::domain::nhs_number::digits_of;
use crate::domain::NhsNumber;
use crate::ingest::normalise_header;

/// Bad rows listed in the error; the rest are counted.
const MAX_LISTED: usize = 50;

/// A checked register: `nhs_number` as ten digits and `objection_type` as
/// its code (`type1`, `ndoo`), one row per register row.
#[derive(Debug, Clone)]
pub struct Register {
    /// The file it was read from, for messages.
    pub file: PathBuf,
    pub frame: DataFrame,
    /// Rows read (all of them valid).
    pub rows: usize,
}

/// A bad row of the register. Carries the row and the column, never the
/// value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterProblem {
    /// 1-based, in the register's order (the header of a CSV file is not a
    /// row: row 1 is its second line).
    pub row: u64,
    /// The column as the register names it.
    pub column: String,
    pub reason: &'static str,
}

impl fmt::Display for RegisterProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "row {}, column `{}`: {}",
            self.row, self.column, self.reason
        )
    }
}

/// An objection type as registers write it: any case, spaces, hyphens and
/// underscores alike (`TYPE1`, `Type 1`, `type_1 `, `NDOO`, `National Data
/// Opt-Out`). `None` for a type dars does not know.
pub fn parse_objection_type(raw: &str) -> Option<ObjectionType> {
    let key: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '.'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match key.as_str() {
        "type1" | "type1optout" | "type1objection" => Some(ObjectionType::Type1),
        "ndoo" | "ndop" | "nationaldataoptout" => Some(ObjectionType::Ndoo),
        _ => None,
    }
}

/// The role of a register column, from its name (matched like the cohort's
/// header: case-insensitive, spaces, hyphens and underscores alike).
fn role(name: &str) -> Option<&'static str> {
    let n = normalise_header(name);
    match n.as_str() {
        "nhs_number" | "nhs_no" | "nhsno" | "nhsnumber" | "nhs" | "newnhsno" => Some(NHS),
        "objection_type" | "objectiontype" | "objection" | "type" | "opt_out_type"
        | "optout_type" => Some(TYPE),
        _ => None,
    }
}

/// Reads every row of the register, checking it as it goes.
pub fn read_register(mut register: LazyFrame, file: &Path) -> Result<Register, ObjectionsError> {
    let wrap = |source| ObjectionsError::Register {
        file: file.to_path_buf(),
        source: crate::tables::redact(source),
    };
    let schema = register.collect_schema().map_err(wrap)?;
    let mut found: [Option<(String, DataType)>; 2] = [None, None];
    let mut problems = Vec::new();
    for (name, dtype) in schema.iter() {
        let Some(r) = role(name) else { continue };
        let slot = &mut found[usize::from(r == TYPE)];
        match slot {
            Some((first, _)) => problems.push(format!(
                "columns `{first}` and `{name}` are both read as `{r}`; keep one"
            )),
            None => *slot = Some((name.to_string(), dtype.clone())),
        }
    }
    let [nhs, kind] = found;
    for (slot, want) in [(&nhs, NHS), (&kind, TYPE)] {
        if slot.is_none() {
            problems.push(format!("has no `{want}` column"));
        }
    }
    if let Some((name, dtype)) = &nhs {
        if !(dtype.is_string() || dtype.is_integer()) {
            problems.push(format!(
                "column `{name}` is of type {dtype}: NHS numbers must be text (or whole numbers)"
            ));
        }
    }
    if let Some((name, dtype)) = &kind {
        if !dtype.is_string() {
            problems.push(format!(
                "column `{name}` is of type {dtype}: objection types must be text"
            ));
        }
    }
    let (Some((nhs, nhs_type)), Some((kind, _)), true) = (nhs, kind, problems.is_empty()) else {
        return Err(ObjectionsError::Columns {
            file: file.to_path_buf(),
            problem: problems.join("; "),
        });
    };
    // A number stored as a whole number has lost its leading zeros: put
    // them back (only ten-digit numbers can be valid).
    let raw_nhs = if nhs_type.is_integer() {
        string_map(col(nhs.as_str()).cast(DataType::String), |s| {
            Some(format!("{s:0>10}"))
        })
    } else {
        col(nhs.as_str()).cast(DataType::String)
    };

    let checked = crate::tables::collect(
        register
            .select([raw_nhs.alias("raw_nhs"), col(kind.as_str()).alias("raw_type")])
            .with_row_index("row", Some(1))
            .select([
                col("row"),
                string_map(col("raw_nhs"), |s| normalise_nhs(s).ok()).alias(NHS),
                string_map(col("raw_nhs"), |s| normalise_nhs(s).err()).alias("nhs_problem"),
                string_map(col("raw_type"), |s| {
                    parse_objection_type(s).map(|t| t.code())
                })
                .alias(TYPE),
                string_map(col("raw_type"), |s| {
                    parse_objection_type(s).is_none().then_some(
                        "is not a known objection type (use type1 or ndoo, in any case and spacing)",
                    )
                })
                .alias("type_problem"),
                col("raw_nhs").is_null().alias("nhs_null"),
                col("raw_type").is_null().alias("type_null"),
            ]),
    )
    .map_err(wrap)?;
    let rows = checked.height();
    // A register with no rows is an export that failed or a file that was
    // truncated, not a population with no objectors (issue #12): applied,
    // it would remove nobody and say nothing.
    if rows == 0 {
        return Err(ObjectionsError::Empty {
            file: file.to_path_buf(),
        });
    }
    let bad = crate::tables::collect(
        checked
            .clone()
            .lazy()
            .filter(
                col("nhs_problem")
                    .is_not_null()
                    .or(col("type_problem").is_not_null())
                    .or(col("nhs_null"))
                    .or(col("type_null")),
            )
            .select([
                col("row"),
                col("nhs_problem"),
                col("type_problem"),
                col("nhs_null"),
                col("type_null"),
            ]),
    )
    .map_err(wrap)?;
    if bad.height() > 0 {
        let mut listed = Vec::new();
        let mut total = 0;
        let row = bad
            .column("row")
            .map_err(wrap)?
            .cast(&DataType::UInt64)
            .map_err(wrap)?;
        let row = row.u64().map_err(wrap)?;
        let nhs_problem = bad
            .column("nhs_problem")
            .map_err(wrap)?
            .str()
            .map_err(wrap)?
            .clone();
        let type_problem = bad
            .column("type_problem")
            .map_err(wrap)?
            .str()
            .map_err(wrap)?
            .clone();
        let nhs_null = bad
            .column("nhs_null")
            .map_err(wrap)?
            .bool()
            .map_err(wrap)?
            .clone();
        let type_null = bad
            .column("type_null")
            .map_err(wrap)?
            .bool()
            .map_err(wrap)?
            .clone();
        for i in 0..bad.height() {
            let r = row.get(i).unwrap_or(0);
            let mut push = |column: &str, reason: &'static str| {
                total += 1;
                if listed.len() < MAX_LISTED {
                    listed.push(RegisterProblem {
                        row: r,
                        column: column.to_string(),
                        reason,
                    });
                }
            };
            if nhs_null.get(i) == Some(true) {
                push(
                    &nhs,
                    "is empty: every objection needs the objector's NHS number",
                );
            } else if let Some(reason) = nhs_problem.get(i) {
                push(&nhs, nhs_reason(reason));
            }
            if type_null.get(i) == Some(true) {
                push(
                    &kind,
                    "is empty: every objection needs its type (type1 or ndoo)",
                );
            } else if type_problem.get(i).is_some() {
                push(
                    &kind,
                    "is not a known objection type (use type1 or ndoo, in any case and spacing)",
                );
            }
        }
        return Err(ObjectionsError::Rows {
            file: file.to_path_buf(),
            problems: listed,
            total,
        });
    }
    let frame = checked.select([NHS, TYPE]).map_err(wrap)?;
    tracing::debug!(rows, "objections register read");
    Ok(Register {
        file: file.to_path_buf(),
        frame,
        rows,
    })
}

/// The ten digits of a register's NHS number, or why it is not one.
fn normalise_nhs(raw: &str) -> Result<String, &'static str> {
    let digits = digits_of(raw).ok_or("not_ten_digits")?;
    NhsNumber::from_digits(digits)
        .map(|n| n.as_string())
        .map_err(|e| match e {
            crate::domain::NhsNumberError::NotTenDigits => "not_ten_digits",
            crate::domain::NhsNumberError::CheckDigit => "check_digit",
            crate::domain::NhsNumberError::IdenticalDigits => "identical_digits",
            crate::domain::NhsNumberError::TestRange => "test_range",
        })
}

/// The message for a reason code of [`normalise_nhs`].
fn nhs_reason(code: &str) -> &'static str {
    match code {
        "check_digit" => "fails the modulus 11 check digit",
        "identical_digits" => "is ten identical digits, not an NHS number",
        "test_range" => "is in the 999 test range, which is never issued",
        _ => "is not 10 digits after removing spaces and hyphens",
    }
}

/// Applies `f` to every non-null string of a column; `None` becomes null.
fn string_map<F, T>(c: Expr, f: F) -> Expr
where
    F: Fn(&str) -> Option<T> + Send + Sync + 'static,
    T: AsRef<str>,
{
    c.map(
        move |column: Column| {
            let ca = column.str()?;
            let out: StringChunked = ca
                .iter()
                .map(|v| v.and_then(&f).map(|t| t.as_ref().to_string()))
                .collect();
            Ok(out.with_name(column.name().clone()).into_column())
        },
        |_, field| Ok(Field::new(field.name().clone(), DataType::String)),
    )
}
