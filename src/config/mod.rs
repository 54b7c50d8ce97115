//! The two TOML files that say what a run does: the site config (where the
//! custodian's data and keys live) and an agreement (what one Data Sharing
//! Agreement allows). How a run goes (dry run, log format) is in flags.
//!
//! Each stage owns the struct for its own part of the agreement (the
//! `[cohort]` table belongs to linkage, `[[outputs]]` to minimisation and
//! aggregation, `[release]` to push); this module assembles the file from
//! them, resolves relative paths against the file's own folder, and collects
//! every problem at once for `dars check` instead of stopping at the first.

mod agreement;

pub use crate::link::CohortSection;
pub use crate::objections::{ObjectionType, ObjectionsSection};
pub use agreement::{
    Agreement, AgreementMeta, AgreementRef, AgreementStatus, LegalBasis, OutputSpec, Schedule,
};
// The shared parts live in leaf modules so that stages can use them without
// importing `config` (which imports every stage's section): re-exported here
// for the callers that read a whole file.
pub use crate::config_file::{ConfigError, Problem, Severity};
pub use crate::period::{Period, Window};
pub use crate::site::{DatasetSource, Site};

use chrono::NaiveDate;

/// Today. Only a build with the test-only `fault-injection` feature reads
/// `DARS_TODAY` (YYYY-MM-DD) instead, for reproducible tests: the binary
/// users run has no way to backdate a release past its agreement's end.
pub fn today() -> NaiveDate {
    #[cfg(feature = "fault-injection")]
    if let Some(day) = std::env::var("DARS_TODAY")
        .ok()
        .and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok())
    {
        return day;
    }
    chrono::Local::now().date_naive()
}
