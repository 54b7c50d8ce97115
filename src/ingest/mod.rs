//! Stage 1, ingest: reads the applicant's cohort CSV into typed rows.
//!
//! Two kinds of problem, never a silent drop (DESIGN.md, "Cohort file"):
//! structural problems (the file is not what it claims) stop the run before
//! linking and are all listed with their lines; value problems (a wrong
//! value in a well-formed row) leave the row in, treat the value as missing
//! for matching and are carried to the linkage table as the reason.

mod config;
// Named after the stage like every stage's function file (vector's layout).
#[allow(clippy::module_inception)]
mod ingest;
#[cfg(test)]
mod tests;

pub use config::IngestConfig;
pub use ingest::read_cohort;

use std::fmt;
use std::path::PathBuf;

use chrono::NaiveDate;

use crate::domain::{Gender, NhsNumber, Postcode};

/// A column of the cohort file, in DESIGN order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CohortField {
    StudyId,
    NhsNumber,
    DateOfBirth,
    Gender,
    Postcode,
    Forename,
    Surname,
    /// The date the participant joined the study (for `backdate = false`).
    RecruitedOn,
}

impl CohortField {
    pub const ALL: [CohortField; 8] = [
        Self::StudyId,
        Self::NhsNumber,
        Self::DateOfBirth,
        Self::Gender,
        Self::Postcode,
        Self::Forename,
        Self::Surname,
        Self::RecruitedOn,
    ];

    /// The canonical column name (`nhs_number`).
    pub fn name(self) -> &'static str {
        match self {
            Self::StudyId => "study_id",
            Self::NhsNumber => "nhs_number",
            Self::DateOfBirth => "date_of_birth",
            Self::Gender => "gender",
            Self::Postcode => "postcode",
            Self::Forename => "forename",
            Self::Surname => "surname",
            Self::RecruitedOn => "recruited_on",
        }
    }

    /// Matches a header cell: case-insensitive, spaces, hyphens and
    /// underscores alike (`NHS Number`, `nhs_number`, `Date-of-Birth`).
    pub fn from_header(raw: &str) -> Option<Self> {
        let norm = normalise_header(raw).replace('.', "");
        if let Some(f) = Self::ALL.into_iter().find(|f| f.name() == norm) {
            return Some(f);
        }
        // Spellings applicants use for the same columns.
        let alias = match norm.as_str() {
            "studyid" | "study_number" | "participant_id" => Self::StudyId,
            "nhs_no" | "nhsno" | "nhsnumber" | "nhs" => Self::NhsNumber,
            "dob" | "birth_date" | "dateofbirth" => Self::DateOfBirth,
            "sex" | "gender_code" => Self::Gender,
            "post_code" | "postal_code" => Self::Postcode,
            "first_name" | "firstname" | "given_name" | "forenames" => Self::Forename,
            "last_name" | "lastname" | "family_name" => Self::Surname,
            "recruited"
            | "recruitment_date"
            | "date_recruited"
            | "recruited_date"
            | "date_of_recruitment"
            | "recruitedon"
            | "enrolled_on"
            | "enrolment_date"
            | "enrollment_date"
            | "date_enrolled" => Self::RecruitedOn,
            _ => return None,
        };
        Some(alias)
    }
}

impl fmt::Display for CohortField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A CSV header cell as we compare it: trimmed, without a BOM, lower case,
/// spaces and hyphens as underscores (`NHS Number` -> `nhs_number`).
pub fn normalise_header(raw: &str) -> String {
    raw.trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// A wrong value in a well-formed row. Says which field and why; never
/// carries the value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueProblem {
    pub field: CohortField,
    pub reason: String,
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

/// One row of the cohort. A field is `None` when the column is absent, the
/// cell is blank or the value is wrong (then `problems` says why).
#[derive(Clone, Default)]
pub struct CohortRow {
    /// 1-based line number of the record in the file (the header is line 1).
    pub line: u64,
    pub study_id: String,
    pub nhs_number: Option<NhsNumber>,
    /// Ten digits that failed the modulus 11 check: a typo signal that the
    /// linkage stage uses to look for candidates one edit away.
    pub nhs_number_typo: Option<[u8; 10]>,
    pub date_of_birth: Option<NaiveDate>,
    /// `Some(Gender::NotKnown)` for 9, 0, X or blank; `None` when the
    /// column is absent or the code is one nobody uses.
    pub gender: Option<Gender>,
    pub postcode: Option<Postcode>,
    pub forename: Option<String>,
    pub surname: Option<String>,
    /// The date the participant joined the study.
    pub recruited_on: Option<NaiveDate>,
    pub problems: Vec<ValueProblem>,
}

impl fmt::Debug for CohortRow {
    // Only the study ID and line: a row's identifiers must never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CohortRow")
            .field("line", &self.line)
            .field("study_id", &self.study_id)
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

/// The same NHS number given under two study IDs (reported, not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateNhsNumber {
    pub first_study_id: String,
    pub study_id: String,
    pub line: u64,
}

/// The typed cohort handed to the linkage stage.
#[derive(Debug, Clone, Default)]
pub struct Cohort {
    pub path: PathBuf,
    /// The columns the file has, in file order.
    pub columns: Vec<CohortField>,
    pub rows: Vec<CohortRow>,
    pub duplicate_nhs_numbers: Vec<DuplicateNhsNumber>,
}

impl Cohort {
    /// Rows with at least one value problem.
    pub fn rows_with_value_problems(&self) -> usize {
        self.rows.iter().filter(|r| !r.problems.is_empty()).count()
    }
}

/// A structural problem: the file is not what it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuralProblem {
    /// 1-based line, or `None` for a problem with the whole file.
    pub line: Option<u64>,
    pub message: String,
}

impl fmt::Display for StructuralProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read cohort file {path}: {source}\n  fix: check the [cohort] path key in the agreement")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cohort file {path} is malformed ({total} problem{}); nothing was linked:\n{}{}\n  fix: correct the file and send it again",
        if *total == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"),
        if *total > problems.len() { format!("\n  … and {} more", total - problems.len()) } else { String::new() })]
    Malformed {
        path: PathBuf,
        /// The first problems found, in file order (at most 50 are listed).
        problems: Vec<StructuralProblem>,
        /// How many problems the file has in all.
        total: usize,
    },
}
