//! `dars suppress TABLE --profile hes|csds|FILE [--group-by COLS] --out FILE`:
//! the analysts' dry run of disclosure control on a sample table.
//!
//! TABLE (CSV or Parquet) either holds counts (a `count` column, the other
//! columns or `--group-by` as dimensions) or records, which are counted by
//! `--group-by`. The protected table goes to `--out`; beside it
//! `OUT_STEM.report.csv` and `OUT_STEM.report.html` say what happened to
//! every cell and why, with true values flagged internal (mode 0600). When
//! the audit fails, only the reports are written and the exit code is 9.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::{exit, Failure};
use crate::aggregate::{self, AggregateError, CountTable, Unit, UNKNOWN};
use crate::suppress::{self, Profile, ProfileSpec, ReleaseTable};
use crate::tables::FileFormat;

/// The column that marks a table of counts.
const COUNT: &str = "count";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sample table: CSV or Parquet, records or counts (a `count` column).
    pub table: PathBuf,
    /// `hes`, `csds` or a profile TOML file (the keys of a [suppression.NAME] table).
    #[arg(long)]
    pub profile: String,
    /// Dimensions, comma-separated: the columns records are counted by, or
    /// the columns of a count table to keep (summing over the others).
    #[arg(long, value_delimiter = ',')]
    pub group_by: Vec<String>,
    /// Add every margin and the national total (counted, or summed from a
    /// count table that has none).
    #[arg(long)]
    pub totals: bool,
    /// Count distinct values of this column (people) instead of rows.
    #[arg(long, value_name = "COLUMN")]
    pub persons: Option<String>,
    /// Add percentages of the total over these dimensions (needs --totals
    /// or margins in the table).
    #[arg(long, value_delimiter = ',', value_name = "DIMS")]
    pub percent_of: Vec<String>,
    /// The protected table (`.csv` or `.parquet`); the reports go beside it.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
enum SuppressCliError {
    #[error("{table}: there is no column `{column}` (--group-by)\n  fix: use one of: {available}")]
    UnknownColumn {
        table: String,
        column: String,
        available: String,
    },
    #[error("{table}: has no `count` column, so it is read as records, and records need --group-by\n  fix: pass --group-by COLS (e.g. --group-by region,sex), or add a `count` column")]
    RecordsWithoutGroupBy { table: String },
    #[error("--out {out} is the input table\n  fix: write the protected table to a new file")]
    OutIsInput { out: String },
    #[error("--out {out}: unknown format\n  fix: end the name in .csv or .parquet")]
    OutFormat { out: String },
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let profile = load_profile(&args.profile)?;
    let format = out_format(&args.out)?;
    if same_file(&args.table, &args.out) {
        return Err(Failure::new(
            exit::USAGE,
            SuppressCliError::OutIsInput {
                out: args.out.display().to_string(),
            },
        ));
    }
    let name = args
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "table".into());
    let table = read_table(args, &name)?;
    let release = ReleaseTable {
        name: name.clone(),
        table,
        profile: profile.clone(),
    };
    let protected =
        suppress::protect_tables(&[&release]).map_err(|e| Failure::new(exit::INTERNAL, e))?;
    let protected = protected
        .into_iter()
        .next()
        .ok_or_else(|| Failure::new(exit::INTERNAL, "no table came back from suppression"))?;

    let dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io = |what: &str, e: std::io::Error| {
        Failure::new(
            exit::INTERNAL,
            format!(
                "{}: {what}: {e}\n  fix: check the folder exists and is writable",
                dir.display()
            ),
        )
    };
    let report_stem = format!("{name}.report");
    suppress::report::write_files(&dir, &report_stem, &protected, &profile)
        .map_err(|e| io("writing the report", e))?;
    let c = &protected.counts;
    println!(
        "{} cells: {} suppressed ({} primary, {} secondary), {} rounded, {} exempt; audit: {} of {} suppressed cells checked, {} failed",
        c.cells,
        c.suppressed(),
        c.primary,
        c.secondary,
        c.rounded,
        c.exempt,
        c.audited,
        c.suppressed(),
        c.audit_failures
    );
    println!(
        "report: {} and {}",
        dir.join(format!("{report_stem}.csv")).display(),
        dir.join(format!("{report_stem}.html")).display()
    );
    suppress::check_audit(std::slice::from_ref(&protected), &[&release])
        .map_err(|e| Failure::new(exit::DISCLOSURE, e))?;

    let mut frame = protected
        .to_frame(COUNT)
        .map_err(|e| Failure::new(exit::INTERNAL, e))?;
    let mut file = crate::workdir::AtomicFile::create(&args.out, 0o644)
        .map_err(|e| io("writing the protected table", e))?;
    crate::tables::write_frame(&mut frame, format, &mut file)
        .map_err(|e| Failure::new(exit::INTERNAL, e))?;
    file.commit()
        .map_err(|e| io("writing the protected table", e))?;
    println!("protected table: {}", args.out.display());
    Ok(())
}

fn load_profile(name: &str) -> Result<Profile, Failure> {
    match name {
        "hes" => Ok(Profile::hes()),
        "csds" => Ok(Profile::csds()),
        path => Ok(ProfileSpec::load(Path::new(path))?),
    }
}

fn out_format(out: &Path) -> Result<FileFormat, Failure> {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(e) if e == "csv" => Ok(FileFormat::Csv),
        Some(e) if e == "parquet" => Ok(FileFormat::Parquet),
        _ => Err(Failure::new(
            exit::USAGE,
            SuppressCliError::OutFormat {
                out: out.display().to_string(),
            },
        )),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Reads TABLE as counts or records into a count table.
fn read_table(args: &Args, name: &str) -> Result<CountTable, Failure> {
    let input = |e: AggregateError| Failure::new(exit::INPUT, e);
    let shown = args.table.display().to_string();
    let polars = |e: PolarsError| {
        input(AggregateError::Polars {
            output: shown.clone(),
            source: e,
        })
    };
    let mut lf = crate::tables::scan(&args.table).map_err(polars)?;
    let available = crate::tables::column_names(&mut lf).map_err(polars)?;
    for c in args.group_by.iter().chain(&args.persons) {
        if !available.contains(c) {
            return Err(Failure::new(
                exit::INPUT,
                SuppressCliError::UnknownColumn {
                    table: shown.clone(),
                    column: c.clone(),
                    available: crate::minimise::listable(&available),
                },
            ));
        }
    }
    let counts = available.iter().any(|c| c == COUNT);
    let dims: Vec<String> = if !args.group_by.is_empty() {
        args.group_by.clone()
    } else if counts {
        available.iter().filter(|c| *c != COUNT).cloned().collect()
    } else {
        return Err(Failure::new(
            exit::INPUT,
            SuppressCliError::RecordsWithoutGroupBy { table: shown },
        ));
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
        aggregate::from_count_rows(&dims, rows, &row_of, args.totals, &shown).map_err(input)?
    } else {
        let mut select = as_text;
        let unit = match &args.persons {
            Some(p) => {
                select.push(col(p.as_str()).alias("__dars_person"));
                Unit::DistinctOf("__dars_person".into())
            }
            None => Unit::Records,
        };
        aggregate::count_frame(lf.select(select), &dims, &unit, args.totals, &shown)
            .map_err(input)?
    };
    table.universe = name.to_string();
    aggregate::set_percent_of(&mut table, args.percent_of.clone(), &shown).map_err(input)?;
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
        if let Some(i) = key
            .iter()
            .position(|v| v != aggregate::TOTAL && aggregate::is_reserved_label(v))
        {
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
            .filter(|s| *s <= aggregate::MAX_COUNT)
            .ok_or_else(|| AggregateError::CountOverflow {
                output: table.to_string(),
                level: "cell (rows with the same dimension values are added up)",
            })?;
    }
    Ok((rows, row_of))
}

/// A whole, non-negative count (`12` or `12.0`) no larger than
/// [`aggregate::MAX_COUNT`], or what is wrong with it.
fn parse_count(value: Option<&str>) -> Result<u64, &'static str> {
    const TOO_LARGE: &str = "a count larger than 2^53 (9007199254740992)";
    let text = value.map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Err("an empty value");
    }
    if let Ok(n) = text.parse::<u64>() {
        return if n <= aggregate::MAX_COUNT {
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
        Ok(x) if x <= aggregate::MAX_COUNT as f64 => Ok(x as u64),
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
