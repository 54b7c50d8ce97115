//! `dars suppress TABLE --profile hes|csds|FILE [--group-by COLS] --out FILE`:
//! the analysts' dry run of disclosure control on a sample table.
//!
//! TABLE (CSV or Parquet) either holds counts (a `count` column, the other
//! columns or `--group-by` as dimensions) or records, which are counted by
//! `--group-by`. The protected table goes to `--out`; beside it
//! `OUT_STEM.report.csv` and `OUT_STEM.report.html` say what happened to
//! every cell and why, with true values flagged internal (mode 0600). When
//! the audit fails, only the reports are written and the exit code is 9.

use std::path::{Path, PathBuf};

use super::{exit, Failure};
use crate::aggregate::table_input::{read_sample_table, SampleTable};
use crate::aggregate::CountTable;
use crate::suppress::{self, Profile, ProfileSpec, ReleaseTable};
use crate::tables::FileFormat;

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
        .to_frame(crate::aggregate::table_input::COUNT)
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
    let spec = SampleTable {
        path: &args.table,
        group_by: &args.group_by,
        totals: args.totals,
        persons: args.persons.as_deref(),
        percent_of: &args.percent_of,
    };
    read_sample_table(&spec, name).map_err(|e| Failure::new(exit::INPUT, e))
}
