//! Reading the site's tables lazily: a Parquet or CSV file, a directory of
//! them, or a glob. Every stage that reads site data goes through here so
//! that scans are lazy and collected on polars' streaming engine, which
//! keeps memory bounded for datasets larger than memory.

use std::path::Path;

use polars::prelude::*;
use serde::Deserialize;

/// How an output table is written inside its age envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    Parquet,
    Csv,
}

impl FileFormat {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
        }
    }
}

/// A lazy scan of `path`: `.csv` files are read as CSV with a header,
/// anything else as Parquet; a directory means every Parquet file in it.
pub fn scan(path: &Path) -> PolarsResult<LazyFrame> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let target = if path.is_dir() {
        path.join("*.parquet")
    } else {
        path.to_path_buf()
    };
    let p = PlRefPath::try_from_path(&target)?;
    if is_csv {
        LazyCsvReader::new(p).with_has_header(true).finish()
    } else {
        LazyFrame::scan_parquet(p, ScanArgsParquet::default())
    }
}

/// Collects on the streaming engine.
pub fn collect(lf: LazyFrame) -> PolarsResult<DataFrame> {
    // A query built here has one sink, so the result is always `Single`
    // (`Multiple` comes only from plans with several sinks).
    Ok(lf.collect_with_engine(Engine::Streaming)?.unwrap_single())
}

/// The column names of a lazy frame, for errors that list what exists.
pub fn column_names(lf: &mut LazyFrame) -> PolarsResult<Vec<String>> {
    Ok(lf
        .collect_schema()?
        .iter_names()
        .map(|n| n.to_string())
        .collect())
}

/// Writes `df` as Parquet or CSV into any writer (an age stream).
pub fn write_frame(
    df: &mut DataFrame,
    format: FileFormat,
    w: &mut dyn std::io::Write,
) -> PolarsResult<()> {
    match format {
        FileFormat::Parquet => {
            ParquetWriter::new(w)
                .with_statistics(StatisticsOptions::full())
                .finish(df)?;
        }
        FileFormat::Csv => {
            CsvWriter::new(w).include_header(true).finish(df)?;
        }
    }
    Ok(())
}
