//! Reading the site's tables lazily: a Parquet or CSV file, a directory of
//! them, or a glob. Every stage that reads site data goes through here so
//! that scans are lazy and collected on polars' streaming engine, which
//! keeps memory bounded for datasets larger than memory.
//!
//! It is also where polars errors on data are made safe to print: polars
//! quotes the values it could not read (`could not parse '405 489 3988'`,
//! `valid columns: [...]` of a CSV file without a header), and those values
//! are NHS numbers, names and postcodes. [`redact`] keeps the kind of error,
//! the column and the position, and drops every value.

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
/// anything else as Parquet; a directory means every file under it, in
/// subfolders too, with Hive partition folders (`year=2020/`) read as
/// columns. A folder is refused whole, naming the file, when any file in it
/// is not Parquet or is empty, and when it holds no file at all: a part
/// left out would be rows silently not released, or released without the
/// checks (see [`dataset_files`]).
///
/// A CSV file's types are inferred from every row, not the first hundred,
/// so that a value further down cannot fail to parse as a type guessed from
/// the top (polars' message for that quotes the value). A CSV file whose
/// first line looks like data rather than a header is refused here, before
/// anything could list its "column names", which would be values.
///
/// Errors never quote a value of the data: see [`redact`].
pub fn scan(path: &Path) -> PolarsResult<LazyFrame> {
    scan_pruned(path, &|_, _| true)
}

/// [`scan`], leaving out of a dataset folder every file under a Hive
/// partition folder `name=value` for which `keep(name, value)` is false:
/// those files are neither checked nor read (an output's period prunes a
/// partitioned extract this way). Refused, naming the folder, when no file
/// is left.
pub fn scan_pruned(path: &Path, keep: &dyn Fn(&str, &str) -> bool) -> PolarsResult<LazyFrame> {
    if path.is_dir() {
        let files =
            dataset_files(path).map_err(|problem| PolarsError::ComputeError(problem.into()))?;
        let kept: Vec<&std::path::PathBuf> = files
            .iter()
            .filter(|file| in_kept_partitions(path, file, keep))
            .collect();
        if kept.len() < files.len() {
            if kept.is_empty() {
                return Err(PolarsError::ComputeError(
                    format!(
                        "dataset folder {}: no partition folder falls inside the output's period\n  fix: check the period's dates, or that the extract covers them",
                        path.display()
                    )
                    .into(),
                ));
            }
            for file in &kept {
                check_parquet_types(file, Some(path))?;
            }
            let paths = kept
                .iter()
                .map(|f| PlRefPath::try_from_path(f))
                .collect::<PolarsResult<Vec<_>>>()
                .map_err(redact)?;
            let args = ScanArgsParquet {
                hive_options: polars::io::HiveOptions::new_enabled(),
                ..ScanArgsParquet::default()
            };
            return LazyFrame::scan_parquet_files(paths.into_iter().collect(), args)
                .map_err(redact);
        }
    }
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if path.is_dir() {
        // Every file under the folder, partitions included, or nothing.
        let files =
            dataset_files(path).map_err(|problem| PolarsError::ComputeError(problem.into()))?;
        for file in &files {
            check_parquet_types(file, Some(path))?;
        }
        let p = PlRefPath::try_from_path(path).map_err(redact)?;
        let args = ScanArgsParquet {
            // `key=value` folders (Hive partitions) become columns.
            hive_options: polars::io::HiveOptions::new_enabled(),
            ..ScanArgsParquet::default()
        };
        return LazyFrame::scan_parquet(p, args).map_err(redact);
    }
    let p = PlRefPath::try_from_path(path).map_err(redact)?;
    if is_csv {
        let mut lf = LazyCsvReader::new(p)
            .with_has_header(true)
            .with_infer_schema_length(None)
            .finish()
            .map_err(redact)?;
        let names = column_names(&mut lf)?;
        if let Some(position) = names.iter().position(|n| looks_like_value(n)) {
            return Err(PolarsError::ComputeError(
                format!(
                    "CSV file {}: its first line looks like data, not a header (column {} is a \
                     number, a date, an NHS number or a postcode, not a column name)\n  fix: add \
                     a header row naming the columns (the key column among them)",
                    path.display(),
                    position + 1
                )
                .into(),
            ));
        }
        Ok(lf)
    } else {
        if !path.is_file() {
            // A glob, or a path that does not exist: polars' own error.
            return LazyFrame::scan_parquet(p, ScanArgsParquet::default()).map_err(redact);
        }
        check_parquet_types(path, None)?;
        // Scanned from a mapping of dars's own, whose pages are handed back
        // as the scan passes them: polars' own mapping would keep every
        // page read resident until the query ends (see MappedFile).
        let mapped = crate::memory::MappedFile::open(path)?;
        LazyFrame::scan_parquet_sources(
            ScanSources::Buffers(std::sync::Arc::from([mapped.buffer()])),
            ScanArgsParquet {
                // One file: no partition folders to read columns from.
                hive_options: polars::io::HiveOptions::new_disabled(),
                ..ScanArgsParquet::default()
            },
        )
        .map_err(redact)
    }
}

/// Whether every Hive partition folder `name=value` between the dataset
/// folder `dir` and `file` is one that `keep(name, value)` keeps.
fn in_kept_partitions(dir: &Path, file: &Path, keep: &dyn Fn(&str, &str) -> bool) -> bool {
    let rel = file.strip_prefix(dir).unwrap_or(file);
    rel.parent()
        .into_iter()
        .flat_map(|p| p.components())
        .all(|c| match c.as_os_str().to_string_lossy().split_once('=') {
            Some((name, value)) => keep(name, value),
            None => true,
        })
}

/// Refuses a Parquet file with a column of a type this build of polars
/// cannot hold (a decimal, a 128-bit integer, a half float, a fixed-size
/// list, an interval), naming the column: polars would panic on it
/// (issue #12). Reads the file's footer only.
fn check_parquet_types(file: &Path, folder: Option<&Path>) -> PolarsResult<()> {
    let shown = || match folder {
        Some(dir) => format!(
            "dataset folder {}: {}",
            dir.display(),
            file.strip_prefix(dir).unwrap_or(file).display()
        ),
        None => file.display().to_string(),
    };
    let opened = std::fs::File::open(file)?;
    let file_len = opened.metadata()?.len();
    let unreadable = |e: PolarsError| {
        PolarsError::ComputeError(
            format!(
                "{} is not a Parquet file polars can read: {}",
                shown(),
                sanitise(&e.to_string())
            )
            .into(),
        )
    };
    let mut reader = ParquetReader::new(opened);
    // Every column chunk the footer lists must lie inside the file, before
    // the footer: a copy cut short with its footer written after what
    // arrived lists chunks past the end, and polars' reader slices those
    // ranges unchecked (a panic in a test build, an out-of-bounds read in
    // a release build).
    let data_end = file_len.saturating_sub(8);
    if let Some(range) = reader
        .get_metadata()
        .map_err(unreadable)?
        .row_groups
        .iter()
        .flat_map(|rg| rg.byte_ranges_iter())
        .find(|r| r.start > r.end || r.end > data_end)
    {
        return Err(PolarsError::ComputeError(
            format!(
                "{} is truncated or damaged: its footer lists data at bytes {}..{}, past the end of its {} bytes\n  fix: copy the file again from its source (compare its size and checksum with the source's), then run again",
                shown(),
                range.start,
                range.end,
                file_len
            )
            .into(),
        ));
    }
    let schema = reader.schema().map_err(unreadable)?;
    for (name, field) in schema.iter() {
        if let Some(kind) = unreadable_type(&field.dtype) {
            return Err(PolarsError::ComputeError(
                format!(
                    "{}: column `{}` is of type {kind}, which dars cannot read\n  fix: write the column as float64, int64 or text in the extract (for money, pence as int64)",
                    shown(),
                    name.escape_debug()
                )
                .into(),
            ));
        }
    }
    Ok(())
}

/// What an Arrow type is when this build cannot read it, or `None`.
fn unreadable_type(dtype: &ArrowDataType) -> Option<String> {
    use ArrowDataType as A;
    match dtype {
        A::Null
        | A::Boolean
        | A::Int8
        | A::Int16
        | A::Int32
        | A::Int64
        | A::UInt8
        | A::UInt16
        | A::UInt32
        | A::UInt64
        | A::Float32
        | A::Float64
        | A::Date32
        | A::Date64
        | A::Timestamp(..)
        | A::Duration(_)
        | A::Time32(_)
        | A::Time64(_)
        | A::Utf8
        | A::LargeUtf8
        | A::Utf8View
        | A::Binary
        | A::LargeBinary
        | A::BinaryView
        | A::FixedSizeBinary(_) => None,
        A::List(f) | A::LargeList(f) | A::Map(f, _) => unreadable_type(&f.dtype),
        A::Struct(fields) => fields.iter().find_map(|f| unreadable_type(&f.dtype)),
        A::Dictionary(_, values, _) => unreadable_type(values),
        A::Decimal(p, s) | A::Decimal32(p, s) | A::Decimal64(p, s) | A::Decimal256(p, s) => {
            Some(format!("decimal({p}, {s})"))
        }
        other => Some(format!("{other:?}").to_lowercase()),
    }
}

/// The data files of a dataset folder, every level down, in path order;
/// or what is wrong with the folder, naming the file (a path, never a
/// value). Every file must be a Parquet file (`PAR1` at both ends) and
/// all must share one extension (`part-0`, `*.parquet`, `*.parq`, as
/// long as it is one), since that is what the scan reads. Empty files whose
/// names start with `_` are the markers Spark and Hadoop write (`_SUCCESS`)
/// and are skipped; any other empty file is a part that failed to write.
pub fn dataset_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), String> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read dataset folder {}: {e}", dir.display()))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| format!("cannot read dataset folder {}: {e}", dir.display()))?;
            let path = entry.path();
            let metadata = std::fs::metadata(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if metadata.is_dir() {
                walk(&path, out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let fix = "every file under a dataset folder is read: remove or move what is not part of the dataset, or point the site config at the files themselves";
    let mut data = Vec::new();
    for file in files {
        let shown = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        let len = std::fs::metadata(&file)
            .map_err(|e| format!("dataset folder {}: cannot read {shown}: {e}", dir.display()))?
            .len();
        let marker = file
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('_'));
        if len == 0 && marker {
            continue;
        }
        if len < 12
            || !has_parquet_magic(&file).map_err(|e| {
                format!("dataset folder {}: cannot read {shown}: {e}", dir.display())
            })?
        {
            return Err(format!(
                "dataset folder {}: {shown} is {}\n  fix: {fix}",
                dir.display(),
                if len == 0 {
                    "empty (0 bytes), a part that failed to write or was cut short".to_string()
                } else {
                    "not a Parquet file".to_string()
                }
            ));
        }
        data.push(file);
    }
    let Some(first) = data.first() else {
        return Err(format!(
            "dataset folder {} holds no data file\n  fix: point the site config at the folder the extract was written to",
            dir.display()
        ));
    };
    let ext = |p: &Path| p.extension().map(|e| e.to_os_string());
    if let Some(other) = data.iter().find(|p| ext(p) != ext(first)) {
        return Err(format!(
            "dataset folder {}: {} and {} have different extensions, and a folder is read as files of one kind\n  fix: rename the parts alike (all `.parquet`, say)",
            dir.display(),
            first.strip_prefix(dir).unwrap_or(first).display(),
            other.strip_prefix(dir).unwrap_or(other).display()
        ));
    }
    Ok(data)
}

/// Whether a file starts and ends with Parquet's magic bytes.
fn has_parquet_magic(file: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file)?;
    let mut head = [0u8; 4];
    f.read_exact(&mut head)?;
    let mut tail = [0u8; 4];
    f.seek(SeekFrom::End(-4))?;
    f.read_exact(&mut tail)?;
    Ok(&head == b"PAR1" && &tail == b"PAR1")
}

/// The first file of a dataset (a file, or a folder's files left after
/// `keep` prunes its partitions, in the order they are scanned) that cannot
/// be read to its end, with the error it gives: a file truncated or damaged
/// midway, whose footer still reads. Every row of every file is decoded and
/// dropped batch by batch, so memory stays bounded; a run calls this only
/// after a scan failed, to name the file instead of leaving a decoder's
/// message without one (polars' errors do not say which file of a folder).
pub fn damaged_file(
    path: &Path,
    keep: &dyn Fn(&str, &str) -> bool,
) -> Option<(std::path::PathBuf, PolarsError)> {
    let files = if path.is_dir() {
        let files = dataset_files(path).ok()?;
        files
            .into_iter()
            .filter(|file| in_kept_partitions(path, file, keep))
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    for file in files {
        if let Err(e) = read_to_end(&file) {
            return Some((file, redact(e)));
        }
    }
    None
}

/// Decodes every row of one file and drops it.
fn read_to_end(file: &Path) -> PolarsResult<()> {
    let lf = scan(file)?;
    let callback = PlanCallback::new(|_df: DataFrame| Ok(false));
    lf.sink_batches(callback, false, None)?
        .collect_with_engine(Engine::Streaming)
        .map(|_| ())
}

/// `df` with every text column's values copied into buffers of its own.
/// A polars text column holds views into buffers that may be shared: rows
/// taken from a batch keep the whole batch's buffers (and the scanned row
/// groups' behind them) alive. What is kept across a stream (a sample of
/// it, the distinct rows of a count) must not pin every batch it saw, or
/// memory would grow with the dataset (issue #11; on the bench's data the
/// texts are short enough to sit inside their views, so the measured peak
/// did not change, but a dataset with long texts would pin its batches).
pub fn owned_strings(df: DataFrame) -> PolarsResult<DataFrame> {
    if !df.columns().iter().any(|c| c.dtype() == &DataType::String) {
        return Ok(df);
    }
    let height = df.height();
    let columns = df
        .into_columns()
        .into_iter()
        .map(|c| {
            if c.dtype() != &DataType::String {
                return Ok(c);
            }
            let ca = c.str()?;
            let ca = StringChunked::from_chunk_iter(
                ca.name().clone(),
                ca.downcast_iter().map(|a| a.clone().gc()),
            );
            Ok(ca.into_column())
        })
        .collect::<PolarsResult<Vec<Column>>>()?;
    DataFrame::new(height, columns)
}

/// Collects on the streaming engine.
pub fn collect(lf: LazyFrame) -> PolarsResult<DataFrame> {
    // A query built here has one sink, so the result is always `Single`
    // (`Multiple` comes only from plans with several sinks).
    Ok(lf
        .collect_with_engine(Engine::Streaming)
        .map_err(redact)?
        .unwrap_single())
}

/// The column names of a lazy frame, for errors that list what exists.
pub fn column_names(lf: &mut LazyFrame) -> PolarsResult<Vec<String>> {
    Ok(lf
        .collect_schema()
        .map_err(redact)?
        .iter_names()
        .map(|n| n.to_string())
        .collect())
}

/// What a dataset's key column holds when it is not whole numbers, for an
/// error that names the column and the type it expected; `None` for the
/// integer types, which join to `demographics.person_id` (Int64). A float
/// or text key is refused rather than cast: a cast would turn `P123` into
/// no person and `123.5` into person 123, and rows would be released for
/// the wrong people or silently left out.
pub fn key_type_problem(dtype: &DataType) -> Option<String> {
    if dtype.is_integer() {
        return None;
    }
    let what = match dtype {
        DataType::String => "text".to_string(),
        DataType::Float32 | DataType::Float64 => "floating-point numbers".to_string(),
        DataType::Boolean => "true/false values".to_string(),
        DataType::Date | DataType::Datetime(..) => "dates".to_string(),
        DataType::Null => "only empty values".to_string(),
        other => format!("values of type {other}"),
    };
    Some(format!("{what} ({dtype})"))
}

/// Keeps the rows of a dataset whose `key` is one of the released persons'
/// `person_id`s, as a filter on the scan itself: polars pushes it into the
/// Parquet reader, which decodes the key column first and every other
/// column only for the rows kept (its pre-filtered decode), and the join
/// after it probes one row in ten instead of every row (issue #11). The
/// join still gives each row its person; this only drops rows early.
/// `key` is the dataset's key cast to Int64, as the join casts it.
///
/// The test is [`PersonSet`], built once: polars' own `is_in` builds its
/// hash set again for every batch it tests (a fifth of the run's time at
/// 100M episodes in a profile).
pub fn keep_persons(dataset: LazyFrame, key: Expr, persons: &DataFrame) -> PolarsResult<LazyFrame> {
    let ids = persons.column("person_id")?.cast(&DataType::Int64)?;
    let ids: Vec<i64> = ids.i64()?.iter().flatten().collect();
    let set = std::sync::Arc::new(PersonSet::new(&ids));
    let kept = key.map(
        move |c: Column| {
            let ca = c.i64()?;
            let kept: BooleanChunked =
                polars::chunked_array::ops::arity::unary_elementwise_values(ca, |v: i64| {
                    set.contains(v)
                });
            Ok(kept.with_name(c.name().clone()).into_column())
        },
        |_, field| Ok(Field::new(field.name().clone(), DataType::Boolean)),
    );
    Ok(dataset.filter(kept))
}

/// A set of person ids with a test cheaper than a hash lookup when the ids
/// lie in a range a bitmap can hold (an index's person_ids are usually
/// 1..N): one bit per id of the range, at most [`PersonSet::MAX_BITS`].
pub enum PersonSet {
    Bits { min: i64, bits: Vec<u64> },
    Hashed(PlHashSet<i64>),
}

impl PersonSet {
    /// 16 MiB of bitmap at most.
    pub const MAX_BITS: u64 = 1 << 27;

    pub fn new(ids: &[i64]) -> Self {
        let (min, max) = ids
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let range = (max as i128 - min as i128 + 1).max(0) as u128;
        if min > max || range > Self::MAX_BITS as u128 {
            return Self::Hashed(ids.iter().copied().collect());
        }
        let mut bits = vec![0u64; (range as usize).div_ceil(64)];
        for &v in ids {
            let i = (v - min) as usize;
            bits[i / 64] |= 1 << (i % 64);
        }
        Self::Bits { min, bits }
    }

    #[inline]
    pub fn contains(&self, v: i64) -> bool {
        match self {
            Self::Bits { min, bits } => {
                let Some(i) = v.checked_sub(*min).and_then(|i| usize::try_from(i).ok()) else {
                    return false;
                };
                bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
            }
            Self::Hashed(set) => set.contains(&v),
        }
    }
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

/// A file written batch by batch, in the same format [`write_frame`]
/// writes: for Parquet one row group per batch (with the same options), for
/// CSV one header then the rows. An output with no rows is still a valid
/// file with its columns.
// One writer per output at a time: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum BatchWriter<'w> {
    Parquet(polars::io::parquet::write::BatchedWriter<&'w mut dyn std::io::Write>),
    Csv {
        writer: polars::io::csv::write::BatchedWriter<&'w mut dyn std::io::Write>,
        empty: Option<DataFrame>,
    },
}

impl<'w> BatchWriter<'w> {
    pub fn new(
        format: FileFormat,
        w: &'w mut dyn std::io::Write,
        schema: &Schema,
    ) -> PolarsResult<Self> {
        Ok(match format {
            FileFormat::Parquet => Self::Parquet(
                ParquetWriter::new(w)
                    .with_statistics(StatisticsOptions::full())
                    .batched(schema)?,
            ),
            FileFormat::Csv => Self::Csv {
                writer: CsvWriter::new(w).include_header(true).batched(schema)?,
                empty: Some(DataFrame::empty_with_schema(schema)),
            },
        })
    }

    pub fn write(&mut self, df: &DataFrame) -> PolarsResult<()> {
        match self {
            Self::Parquet(w) => w.write_batch(df),
            Self::Csv { writer, empty } => {
                *empty = None;
                writer.write_batch(df)
            }
        }
    }

    pub fn finish(self) -> PolarsResult<()> {
        match self {
            Self::Parquet(w) => w.finish().map(|_| ()),
            Self::Csv { mut writer, empty } => match empty {
                // The header alone.
                Some(df) => writer.write_batch(&df),
                None => Ok(()),
            },
        }
    }
}

/// The same error with every value of the data it may quote removed: what
/// is kept is the kind of error, column names and data types (each only
/// when it cannot be a value), counts and byte offsets. Anything quoted that
/// is not one of those, and any word that looks like a value (a number of
/// four digits or more, a date, an NHS number, a postcode, an address), is
/// replaced by `<value withheld>`. Polars' advice for Python users (after
/// the first blank line) is dropped.
pub fn redact(e: PolarsError) -> PolarsError {
    use PolarsError as E;
    let safe = |m: &str| -> polars::error::ErrString { sanitise(m).into() };
    match e {
        E::AssertionError(m) => E::AssertionError(safe(&m)),
        E::ColumnNotFound(m) => E::ColumnNotFound(safe(&m)),
        E::ComputeError(m) => E::ComputeError(safe(&m)),
        E::Duplicate(m) => E::Duplicate(safe(&m)),
        E::InvalidOperation(m) => E::InvalidOperation(safe(&m)),
        E::NoData(m) => E::NoData(safe(&m)),
        E::OutOfBounds(m) => E::OutOfBounds(safe(&m)),
        E::SchemaFieldNotFound(m) => E::SchemaFieldNotFound(safe(&m)),
        E::SchemaMismatch(m) => E::SchemaMismatch(safe(&m)),
        E::ShapeMismatch(m) => E::ShapeMismatch(safe(&m)),
        E::SQLInterface(m) => E::SQLInterface(safe(&m)),
        E::SQLSyntax(m) => E::SQLSyntax(safe(&m)),
        E::StringCacheMismatch(m) => E::StringCacheMismatch(safe(&m)),
        E::StructFieldNotFound(m) => E::StructFieldNotFound(safe(&m)),
        // An I/O error's own text comes from the operating system (a path,
        // "No space left on device"); polars' added message may not.
        E::IO { error, msg } => E::IO {
            error,
            msg: msg.map(|m| safe(&m)),
        },
        E::Context { error, msg } => E::Context {
            error: Box::new(redact(*error)),
            msg: safe(&msg),
        },
        E::ExprContext { error, expr } => E::ExprContext {
            error: Box::new(redact(*error)),
            expr: safe(&expr),
        },
    }
}

/// Said instead of anything that might be a value of the data.
pub const WITHHELD: &str = "<value withheld>";

/// Words that, when they come right before a quoted name, say that the name
/// is a column's or a data type's, which [`sanitise`] may keep.
const NAME_WORDS: [&str; 8] = [
    "column", "columns", "dtype", "type", "from", "to", "field", "col(",
];

/// The text of a polars error with values withheld (see [`redact`]).
pub fn sanitise(message: &str) -> String {
    // Polars puts its suggestions after a blank line; they quote the value
    // again (`adding `X` to the null_values list`).
    let first = message.split("\n\n").next().unwrap_or("");
    let mut out = String::with_capacity(first.len());
    let mut rest = first;
    while let Some(open_at) = rest.find(['`', '\'', '"', '[', '{']) {
        let (before, from) = rest.split_at(open_at);
        out.push_str(&sanitise_words(before));
        let open = from.as_bytes()[0];
        let close = match open {
            b'[' => ']',
            b'{' => '}',
            q => char::from(q),
        };
        let body = &from[1..];
        let Some(len) = body.find(close) else {
            // Unbalanced: withhold everything after it.
            out.push_str(WITHHELD);
            return out;
        };
        let inner = &body[..len];
        let word = before
            .trim_end()
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_name_position = NAME_WORDS.iter().any(|w| word.ends_with(w));
        let keep = open != b'[' && open != b'{' && is_name_position && is_safe_name(inner);
        out.push(char::from(open));
        out.push_str(if keep { inner } else { WITHHELD });
        out.push(close);
        rest = &body[len + close.len_utf8()..];
    }
    out.push_str(&sanitise_words(rest));
    out.trim_end().to_string()
}

/// Unquoted text with every word that looks like a value withheld: a word
/// with four digits or more mixed with other characters (`1980-01-01`,
/// `LS14AP`), a run of words that together hold ten digits or more (an NHS
/// number written `405 489 3988`), two words that make a postcode, and any
/// e-mail address.
fn sanitise_words(text: &str) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let bare = |w: &str| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string();
    let mut withheld = vec![false; words.len()];
    for (i, word) in words.iter().enumerate() {
        let b = bare(word);
        let digits = b.chars().filter(char::is_ascii_digit).count();
        if (digits >= 4 && !b.chars().all(|c| c.is_ascii_digit()))
            || word.contains('@')
            || looks_like_identifier(&b)
        {
            withheld[i] = true;
        }
        if let Some(next) = words.get(i + 1) {
            if crate::domain::Postcode::parse(&format!("{b} {}", bare(next))).is_some() {
                withheld[i] = true;
                withheld[i + 1] = true;
            }
        }
    }
    // Runs of words made only of digits and hyphens.
    let numeric = |w: &str| {
        let b = bare(w);
        !b.is_empty() && b.chars().all(|c| c.is_ascii_digit() || c == '-')
    };
    let mut i = 0;
    while i < words.len() {
        if !numeric(words[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = 0;
        while i < words.len() && numeric(words[i]) {
            digits += words[i].chars().filter(char::is_ascii_digit).count();
            i += 1;
        }
        if digits >= 10 {
            withheld[start..i].iter_mut().for_each(|w| *w = true);
        }
    }
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    for (word, hide) in words.iter().zip(&withheld) {
        if !*hide {
            out.push(word);
        } else if out.last() != Some(&WITHHELD) {
            out.push(WITHHELD);
        }
    }
    out.join(" ")
}

/// A quoted column or type name that may be printed: short, printable,
/// and not something that looks like a value.
fn is_safe_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && !s.chars().any(char::is_control) && !looks_like_value(s)
}

/// Whether a name (a CSV header cell, a quoted name in an error) looks like
/// a value of the data rather than a column name: a number, a date, an NHS
/// number, a postcode or an e-mail address.
pub fn looks_like_value(s: &str) -> bool {
    let t = s.trim();
    if t.is_empty() {
        return false;
    }
    looks_like_identifier(t)
        || (t.chars().any(|c| c.is_ascii_digit())
            && (t.parse::<f64>().is_ok()
                || t.chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '/' | '.' | ':'))))
        || t.contains('@')
}

/// An NHS number, a date or a postcode, as the cohort reader would read one.
fn looks_like_identifier(t: &str) -> bool {
    !t.is_empty()
        && (crate::domain::nhs_number::digits_of(t).is_some()
            || crate::domain::parse_date(t).is_ok()
            || crate::domain::Postcode::parse(t).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages polars 0.55 gives on data it cannot read (from its
    /// source), with identifiers where it quotes the value.
    #[test]
    fn issue_12_polars_messages_keep_columns_and_types_and_lose_values() {
        let parse = "could not parse `405 489 3988` as dtype `i64` at column 'age_at_admission' (column number 3)\n\nThe current offset in the file is 5123 bytes.\n\nYou might want to try:\n- adding `405 489 3988` to the `null_values` list.";
        let s = sanitise(parse);
        assert!(
            s.contains("`i64`")
                && s.contains("'age_at_admission'")
                && s.contains("column number 3"),
            "{s}"
        );
        assert!(
            !s.contains("405") && !s.contains("3988") && !s.contains("null_values"),
            "{s}"
        );

        let cast = "conversion from `str` to `i64` failed in column 'nhs' for 2 out of 9 values: [\"943 476 5919\", \"Michael\"]";
        let s = sanitise(cast);
        assert!(
            s.contains("`str`")
                && s.contains("`i64`")
                && s.contains("'nhs'")
                && s.contains("2 out of 9"),
            "{s}"
        );
        assert!(!s.contains("943") && !s.contains("Michael"), "{s}");

        let not_found =
            "unable to find column \"regoin\"; valid columns: [\"1\", \"6925165528\", \"Michael\"]";
        let s = sanitise(not_found);
        assert!(s.contains("\"regoin\""), "{s}");
        assert!(!s.contains("6925165528") && !s.contains("Michael"), "{s}");

        // A quoted value in a column's place is withheld all the same.
        let s = sanitise("at column 'LS1 4AP' and column \"1980-01-01\", value 'Okafor'");
        assert!(
            !s.contains("LS1") && !s.contains("1980") && !s.contains("Okafor"),
            "{s}"
        );
        // Values outside quotes.
        let s = sanitise("value 943 476 5919 or 9434765919 on 1980-01-01 in LS1 4AP by a@b.org");
        for v in ["943", "9434765919", "1980", "LS1", "4AP", "a@b"] {
            assert!(!s.contains(v), "{v}: {s}");
        }
        assert!(sanitise("unbalanced `Michael").ends_with(WITHHELD));
    }

    #[test]
    fn redact_keeps_the_kind_of_error() {
        let e = redact(PolarsError::ColumnNotFound(
            "unable to find column \"x\"; valid columns: [\"Okafor\"]".into(),
        ));
        assert!(matches!(e, PolarsError::ColumnNotFound(_)));
        assert!(!e.to_string().contains("Okafor"));
        let io = redact(PolarsError::from(std::io::Error::from_raw_os_error(28)));
        assert!(io.to_string().contains("No space left"), "{io}");
    }

    #[test]
    fn issue_12_a_csv_file_without_a_header_is_refused_without_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hes.csv");
        std::fs::write(
            &path,
            "1,6925165528,1983-12-16,1,LS1 4AP,Michael,Okafor\n2,4010232137,1970-01-01,2,M1 1AE,Ada,Lovelace\n",
        )
        .unwrap();
        let err = scan(&path).err().unwrap().to_string();
        assert!(err.contains("looks like data, not a header"), "{err}");
        for v in ["6925165528", "Michael", "LS1", "1983"] {
            assert!(!err.contains(v), "{v}: {err}");
        }
        std::fs::write(&path, "person_id,age\n1,40\n").unwrap();
        assert!(scan(&path).is_ok());
    }

    #[test]
    fn a_csv_value_far_down_does_not_fail_the_types_guessed_from_the_top() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hes.csv");
        let mut text = String::from("person_id,age\n");
        for i in 0..500 {
            text.push_str(&format!("{i},40\n"));
        }
        text.push_str("500,943 476 5919\n");
        std::fs::write(&path, text).unwrap();
        let df = collect(scan(&path).unwrap()).unwrap();
        assert_eq!(df.height(), 501);
        // The column is text, and a strict cast that fails is redacted.
        let err = collect(
            scan(&path)
                .unwrap()
                .select([col("age").strict_cast(DataType::Int64)]),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("943"), "{err}");
    }

    #[test]
    fn issue_11_rows_kept_from_a_batch_do_not_keep_its_buffers() {
        // 10 000 texts of 40 bytes each (longer than the 12 a view inlines).
        let texts: Vec<String> = (0..10_000).map(|i| format!("{i:040}")).collect();
        let batch = df!("t" => texts, "n" => (0..10_000i64).collect::<Vec<_>>()).unwrap();
        let taken = batch
            .take(&IdxCa::from_vec("idx".into(), vec![3, 9_000]))
            .unwrap();
        let buffers = |df: &DataFrame| -> usize {
            df.column("t")
                .unwrap()
                .str()
                .unwrap()
                .downcast_iter()
                .map(|a| a.total_buffer_len())
                .sum()
        };
        assert!(
            buffers(&taken) >= 400_000,
            "taking rows shares the batch's buffers"
        );
        let owned = owned_strings(taken.clone()).unwrap();
        assert!(
            buffers(&owned) <= 80,
            "{} bytes kept for 2 rows",
            buffers(&owned)
        );
        assert!(owned.equals_missing(&taken));
    }

    #[test]
    fn names_that_look_like_values() {
        for v in [
            "1",
            "6925165528",
            "943 476 5919",
            "1983-12-16",
            "16/12/1983",
            "LS1 4AP",
            "a@b.org",
            "2.5",
        ] {
            assert!(looks_like_value(v), "{v}");
        }
        for n in [
            "person_id",
            "age_at_admission",
            "Michael",
            "inf",
            "NaN",
            "icd10",
            "diag_4_01",
        ] {
            assert!(!looks_like_value(n), "{n}");
        }
    }

    #[test]
    fn issue_11_person_sets_hold_their_ids_and_no_others() {
        use super::PersonSet;
        let ids = [3i64, 5, 64, 65, 130, -2];
        let bits = PersonSet::new(&ids);
        assert!(matches!(bits, PersonSet::Bits { .. }));
        let far = PersonSet::new(&[&ids[..], &[i64::MAX, i64::MIN]].concat());
        assert!(matches!(far, PersonSet::Hashed(_)));
        for set in [&bits, &far] {
            for v in -5..200 {
                assert_eq!(set.contains(v), ids.contains(&v), "{v}");
            }
        }
        assert!(!bits.contains(i64::MAX) && !bits.contains(i64::MIN));
        assert!(far.contains(i64::MAX) && far.contains(i64::MIN));
        let none = PersonSet::new(&[]);
        assert!(!none.contains(0));
    }
}
