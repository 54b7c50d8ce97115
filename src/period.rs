//! An output's `period = { column = "admission_date", from = 2019-04-01,
//! to = 2022-03-31 }`: only rows whose `column` falls inside `from..=to`
//! leave, and a partitioned dataset's folders wholly outside it are not read.

use std::path::Path;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::config_file::{toml_date, Problem};

/// The rows an output may release, by a date column, both ends included.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// A date (or datetime) column of the output's dataset.
    pub column: String,
    #[serde(deserialize_with = "toml_date", serialize_with = "iso_date")]
    pub from: NaiveDate,
    #[serde(deserialize_with = "toml_date", serialize_with = "iso_date")]
    pub to: NaiveDate,
}

/// The part of a period one release of an incremental output covers: the
/// rows new since the agreement's last release. Recorded on the file in
/// the manifest and so in the ledger, where the next release reads its
/// start from (the day after this one's `to`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub column: String,
    #[serde(deserialize_with = "toml_date", serialize_with = "iso_date")]
    pub from: NaiveDate,
    #[serde(deserialize_with = "toml_date", serialize_with = "iso_date")]
    pub to: NaiveDate,
    /// A forced re-release that repeats the last window (`true`), rather
    /// than one that moves it on to the rows new since (`false`).
    pub repeats_last_window: bool,
}

impl Window {
    /// The window as the period its rows are selected by.
    pub fn as_period(&self) -> Period {
        Period {
            column: self.column.clone(),
            from: self.from,
            to: self.to,
        }
    }
}

/// `2019-04-01`, as written in the agreement (the manifest and the ledger
/// carry the period this way).
fn iso_date<S: serde::Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&d.format("%Y-%m-%d").to_string())
}

impl Period {
    /// What is wrong with the period as written (no data is read).
    pub fn problems(&self, file: &Path, key: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.column.trim().is_empty() {
            problems.push(Problem::error(
                file,
                format!("{key}.period.column"),
                "names no column",
                "name the dataset's date column the period is read on, e.g. \"admission_date\"",
            ));
        }
        if self.from > self.to {
            problems.push(Problem::error(
                file,
                format!("{key}.period.from"),
                format!(
                    "the period starts ({}) after it ends ({})",
                    self.from, self.to
                ),
                "make `from` the first day and `to` the last day of the period (both included)",
            ));
        }
        problems
    }

    /// Whether a Hive partition folder `name=value` may hold rows inside
    /// the period. Only folders keyed on the period column (`column=`,
    /// `column_year=`, `column_month=`) whose value reads as a day
    /// (`2019-04-01`), a month (`2019-04`) or a year (`2019`) are judged;
    /// every other folder may.
    pub fn keeps_partition(&self, name: &str, value: &str) -> bool {
        let c = self.column.as_str();
        if name != c && name != format!("{c}_year") && name != format!("{c}_month") {
            return true;
        }
        match partition_range(value) {
            Some((first, last)) => last >= self.from && first <= self.to,
            None => true,
        }
    }
}

/// The days a partition value covers: a day, a month or a year.
fn partition_range(value: &str) -> Option<(NaiveDate, NaiveDate)> {
    let v = value.trim();
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Some((d, d));
    }
    let parts: Vec<&str> = v.split('-').collect();
    let year: i32 = parts.first()?.parse().ok()?;
    match parts.len() {
        1 if v.len() == 4 => Some((
            NaiveDate::from_ymd_opt(year, 1, 1)?,
            NaiveDate::from_ymd_opt(year, 12, 31)?,
        )),
        2 => {
            let month: u32 = parts[1].parse().ok()?;
            let first = NaiveDate::from_ymd_opt(year, month, 1)?;
            let next = if month == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(year, month + 1, 1)?
            };
            Some((first, next.pred_opt()?))
        }
        _ => None,
    }
    .filter(|(first, _)| first.year() == year)
}

/// What is wrong with the period column in a dataset's schema: missing,
/// or of a type that holds no dates. Said with the key `KEY.period.column`.
pub fn schema_problem(
    period: &Period,
    file: &Path,
    key: &str,
    schema: &polars::prelude::Schema,
) -> Option<Problem> {
    use polars::prelude::DataType;
    let column = period.column.as_str();
    let problem = |message: String, fix: &str| {
        Some(Problem::error(
            file,
            format!("{key}.period.column"),
            message,
            fix,
        ))
    };
    match schema.get(column) {
        None => problem(
            format!("`{column}` is not a column of the dataset"),
            "name a date column of the output's dataset, e.g. \"admission_date\"",
        ),
        Some(DataType::Date | DataType::Datetime(..)) => None,
        Some(other) => problem(
            format!("`{column}` is of type {other}, not a date"),
            "name a column of type date or datetime, or write this one as a date in the extract",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period() -> Period {
        Period {
            column: "admission_date".into(),
            from: NaiveDate::from_ymd_opt(2019, 4, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2022, 3, 31).unwrap(),
        }
    }

    #[test]
    fn partitions_wholly_outside_are_pruned() {
        let p = period();
        assert!(!p.keeps_partition("admission_date_year", "2018"));
        assert!(p.keeps_partition("admission_date_year", "2019"));
        assert!(p.keeps_partition("admission_date_year", "2022"));
        assert!(!p.keeps_partition("admission_date_year", "2023"));
        assert!(!p.keeps_partition("admission_date_month", "2019-03"));
        assert!(p.keeps_partition("admission_date_month", "2019-04"));
        assert!(!p.keeps_partition("admission_date_month", "2022-04"));
        assert!(!p.keeps_partition("admission_date", "2019-03-31"));
        assert!(p.keeps_partition("admission_date", "2022-03-31"));
        // Other keys, and values that are not dates, are read.
        assert!(p.keeps_partition("region", "2018"));
        assert!(p.keeps_partition("admission_date_year", "unknown"));
    }

    #[test]
    fn from_after_to_is_an_error_naming_the_key() {
        let mut p = period();
        std::mem::swap(&mut p.from, &mut p.to);
        let problems = p.problems(Path::new("a.toml"), "outputs[0]");
        assert_eq!(problems.len(), 1);
        assert!(format!("{:?}", problems[0]).contains("outputs[0].period.from"));
    }
}
