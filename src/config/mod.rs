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
mod period;
mod problem;
mod site;

pub use agreement::{
    Agreement, AgreementMeta, AgreementRef, AgreementStatus, CohortSection, LegalBasis,
    ObjectionType, ObjectionsSection, OutputSpec, Schedule,
};
pub use period::{schema_problem, Period, Window};
pub(crate) use problem::fields_of;
pub use problem::{ConfigError, Problem, Severity};
pub use site::{DatasetSource, Site};

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};

/// Resolves `p` against the folder of the config file it came from.
/// `..` is folded lexically, so messages show `outbox/…`, not
/// `config/agreements/../../outbox/…`.
pub(crate) fn resolve(base: &Path, p: &Path) -> PathBuf {
    use std::path::Component;
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// A TOML date (`2026-01-01`) as a calendar date; times are refused.
/// (Through a `toml::Value` a date arrives as its text, so both forms are
/// accepted.)
pub(crate) fn toml_date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Datetime(toml::value::Datetime),
        Text(String),
    }
    let dt = match Repr::deserialize(d)? {
        Repr::Datetime(dt) => dt,
        Repr::Text(s) => s.parse::<toml::value::Datetime>().map_err(|_| {
            serde::de::Error::custom(format!("`{s}` is not a date like 2026-01-01"))
        })?,
    };
    match (dt.date, dt.time, dt.offset) {
        (Some(date), None, None) => NaiveDate::from_ymd_opt(
            i32::from(date.year),
            u32::from(date.month),
            u32::from(date.day),
        )
        .ok_or_else(|| serde::de::Error::custom("not a day of the calendar")),
        _ => Err(serde::de::Error::custom(
            "expected a bare date like 2026-01-01, without a time",
        )),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_file_and_fold_dot_dot() {
        let r = |b: &str, p: &str| resolve(Path::new(b), Path::new(p));
        assert_eq!(
            r("config/agreements", "../../outbox"),
            PathBuf::from("outbox")
        );
        assert_eq!(
            r("config", "../testdata/site/x.parquet"),
            PathBuf::from("testdata/site/x.parquet")
        );
        assert_eq!(r("config", "/srv/outbox"), PathBuf::from("/srv/outbox"));
        assert_eq!(r("", "../x"), PathBuf::from("../x"));
        assert_eq!(r("/a", "../../x"), PathBuf::from("/x"));
        assert_eq!(r("a", ".."), PathBuf::from("."));
    }
}
