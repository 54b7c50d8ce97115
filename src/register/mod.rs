//! The public register of releases (`dars register`), built from the
//! ledger alone.
//!
//! The custodian's policy is to inform the public when data is shared. Each
//! release's ledger entry carries [`RegisterFacts`]: what the agreement
//! said when the release was made (organisation, legal basis, datasets,
//! identifiable or not) and the persons released, already protected. The
//! register is one line per release entry of a verified ledger, so it
//! cannot say anything the signed chain does not, and a later edit to an
//! agreement file does not rewrite history.
//!
//! Counts. The ledger's file rows and the persons released are not
//! published anywhere else under disclosure control (the manifest goes to
//! the recipient only), so both are published protected by the `hes` rule
//! whatever the agreement's profile: 1–7 shown as `*`, every other count
//! rounded to the nearest 5, a true 0 stays 0. `hes` is the rule for DARS
//! tabulations and an agreement with only record outputs has no profile of
//! its own. The persons count is protected before it enters the ledger, so
//! the true count never leaves the run's `summary.json`.

#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::config::{Agreement, LegalBasis};
use crate::ledger::{LedgerEntry, LedgerEvent};
use crate::package::ManifestFile;

pub use crate::ledger::register_facts::{protect, RegisterFacts, RegisterOutput};

impl RegisterFacts {
    /// The facts of a release of `agreement` that released `persons` in
    /// `files` (its manifest's). An output's period is the one its file
    /// covers: an incremental output's window, else the output's period.
    pub fn of(agreement: &Agreement, persons: usize, files: &[ManifestFile]) -> Self {
        RegisterFacts {
            organisation: agreement.meta.organisation.clone(),
            legal_basis: legal_basis_code(agreement.meta.legal_basis).to_string(),
            identifiable: agreement.meta.identifiable,
            outputs: agreement
                .outputs
                .iter()
                .map(|o| RegisterOutput {
                    name: o.name().to_string(),
                    dataset: o.dataset().to_string(),
                    kind: match o {
                        crate::config::OutputSpec::Records(_) => "records",
                        crate::config::OutputSpec::Aggregate(_) => "aggregate",
                    }
                    .to_string(),
                    period: released_period(o, files),
                })
                .collect(),
            persons: protect(persons as u64),
        }
    }
}

/// `FROM..TO` of the rows `output`'s file in `files` holds, if it is
/// scoped by a period; the agreement's period when no file is named.
fn released_period(output: &crate::config::OutputSpec, files: &[ManifestFile]) -> Option<String> {
    let name = format!("{}.{}.age", output.name(), output.format().extension());
    let (from, to) = match files.iter().find(|f| f.name == name) {
        Some(f) => match (&f.window, &f.period) {
            (Some(w), _) => (w.from, w.to),
            (None, Some(p)) => (p.from, p.to),
            (None, None) => return None,
        },
        None => output.period().map(|p| (p.from, p.to))?,
    };
    Some(format!(
        "{}..{}",
        from.format("%Y-%m-%d"),
        to.format("%Y-%m-%d")
    ))
}

fn legal_basis_code(basis: LegalBasis) -> &'static str {
    match basis {
        LegalBasis::Consent => "consent",
        LegalBasis::Section251 => "section-251",
        LegalBasis::Statutory => "statutory",
    }
}

/// The register's columns, in order.
pub const COLUMNS: [&str; 11] = [
    "agreement",
    "run_id",
    "organisation",
    "legal_basis",
    "datasets",
    "outputs",
    "identifiable",
    "period",
    "release_date",
    "persons",
    "rows",
];

/// One line of the register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterLine {
    pub release_date: NaiveDate,
    pub cells: [String; 11],
}

/// Why the register could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(
        "ledger entry {seq}: its date `{at}` is not an RFC 3339 time\n  fix: the ledger verified, \
         so this is a bug; report it"
    )]
    BadDate { seq: u64, at: String },
    #[error(
        "--out {}: the register is written as .csv or .html\n  fix: name the file FILE.csv or FILE.html",
        .0.display()
    )]
    UnknownFormat(PathBuf),
    #[error("writing {}: {source}\n  fix: check the folder exists and is writable", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One line per release entry of a verified ledger, oldest first, whose
/// release date is within `from..=to` (either end open).
pub fn lines(
    entries: &[LedgerEntry],
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Vec<RegisterLine>, RegisterError> {
    let mut out = Vec::new();
    for entry in entries {
        let LedgerEvent::Release {
            agreement,
            run_id,
            files,
            register,
            ..
        } = &entry.event
        else {
            continue;
        };
        let date = chrono::DateTime::parse_from_rfc3339(&entry.at)
            .map_err(|_| RegisterError::BadDate {
                seq: entry.seq,
                at: entry.at.clone(),
            })?
            .date_naive();
        if from.is_some_and(|f| date < f) || to.is_some_and(|t| date > t) {
            continue;
        }
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        // A release recorded before the ledger carried register facts:
        // its outputs are named by its files, the rest is unknown.
        let (organisation, legal_basis, datasets, outputs, identifiable, period, persons) =
            match register {
                Some(r) => {
                    let mut datasets: Vec<&str> =
                        r.outputs.iter().map(|o| o.dataset.as_str()).collect();
                    datasets.sort_unstable();
                    datasets.dedup();
                    let periods: Vec<String> = r
                        .outputs
                        .iter()
                        .filter_map(|o| o.period.as_ref().map(|p| format!("{}: {p}", o.name)))
                        .collect();
                    (
                        r.organisation.clone(),
                        r.legal_basis.clone(),
                        datasets.join("; "),
                        r.outputs
                            .iter()
                            .map(|o| format!("{} ({})", o.name, o.kind))
                            .collect::<Vec<_>>()
                            .join("; "),
                        if r.identifiable { "yes" } else { "no" }.to_string(),
                        periods.join("; "),
                        r.persons.clone(),
                    )
                }
                None => (
                    String::new(),
                    String::new(),
                    String::new(),
                    files
                        .iter()
                        .map(|f| format!("{} ({})", output_name(&f.name), f.kind))
                        .collect::<Vec<_>>()
                        .join("; "),
                    String::new(),
                    String::new(),
                    String::new(),
                ),
            };
        out.push(RegisterLine {
            release_date: date,
            cells: [
                agreement.clone(),
                run_id.clone(),
                organisation,
                legal_basis,
                datasets,
                outputs,
                identifiable,
                period,
                date.format("%Y-%m-%d").to_string(),
                persons,
                protect(rows),
            ],
        });
    }
    Ok(out)
}

/// `episodes.parquet.age` → `episodes`.
fn output_name(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

/// The register as CSV: a header, then one row per line.
pub fn to_csv(lines: &[RegisterLine]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = w.write_record(COLUMNS);
    for line in lines {
        let _ = w.write_record(&line.cells);
    }
    w.into_inner().unwrap_or_default()
}

const HEADINGS: [&str; 11] = [
    "Agreement",
    "Run",
    "Organisation",
    "Legal basis",
    "Datasets",
    "Outputs",
    "Identifiable",
    "Period",
    "Release date",
    "Persons",
    "Rows",
];

/// The register as one HTML page: a captioned table with column and row
/// headers, no script.
pub fn to_html(lines: &[RegisterLine], from: Option<NaiveDate>, to: Option<NaiveDate>) -> Vec<u8> {
    let span = match (from, to) {
        (None, None) => "all releases".to_string(),
        (Some(f), None) => format!("releases from {f}"),
        (None, Some(t)) => format!("releases up to {t}"),
        (Some(f), Some(t)) => format!("releases from {f} to {t}"),
    };
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>Register of data releases</title>\n<style>\n");
    h.push_str(
        "body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #0b0c0c; background: #fff; }\n\
         table { border-collapse: collapse; }\n\
         caption { text-align: left; font-weight: bold; padding: 0.5rem 0; }\n\
         th, td { border: 1px solid #505a5f; padding: 0.35rem 0.5rem; text-align: left; vertical-align: top; }\n\
         thead th { background: #f3f2f1; }\n\
         td.count { text-align: right; font-variant-numeric: tabular-nums; }\n",
    );
    h.push_str("</style>\n</head>\n<body>\n<main>\n<h1>Register of data releases</h1>\n");
    h.push_str(
        "<p>One row per release of data under a Data Sharing Agreement, from the release \
         ledger. It holds no patient data. Persons and rows are rounded to the nearest 5; \
         <abbr title=\"a count from 1 to 7\">*</abbr> stands for a count from 1 to 7.</p>\n",
    );
    h.push_str(&format!(
        "<table>\n<caption>{}: {} ({} {})</caption>\n<thead>\n<tr>",
        "Releases",
        escape(&span),
        lines.len(),
        if lines.len() == 1 {
            "release"
        } else {
            "releases"
        }
    ));
    for heading in HEADINGS {
        h.push_str(&format!("<th scope=\"col\">{heading}</th>"));
    }
    h.push_str("</tr>\n</thead>\n<tbody>\n");
    for line in lines {
        h.push_str("<tr>");
        for (i, cell) in line.cells.iter().enumerate() {
            match i {
                0 => h.push_str(&format!("<th scope=\"row\">{}</th>", escape(cell))),
                9 | 10 => h.push_str(&format!("<td class=\"count\">{}</td>", escape(cell))),
                _ => h.push_str(&format!("<td>{}</td>", escape(cell))),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</main>\n</body>\n</html>\n");
    h.into_bytes()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes the register to `out` (its format by its extension) under a
/// temporary name, then renames it: never half a register under the name.
/// Mode 0644: the register is public.
pub fn write(
    out: &Path,
    lines: &[RegisterLine],
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<(), RegisterError> {
    let bytes = match out.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => to_csv(lines),
        Some(e) if e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm") => {
            to_html(lines, from, to)
        }
        _ => return Err(RegisterError::UnknownFormat(out.to_path_buf())),
    };
    let fail = |source| RegisterError::Write {
        path: out.to_path_buf(),
        source,
    };
    let mut file = crate::workdir::AtomicFile::create(out, 0o644).map_err(fail)?;
    file.write_all(&bytes).map_err(fail)?;
    file.commit().map_err(fail)
}
