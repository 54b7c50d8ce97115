//! The window of an incremental output (`incremental = true` on a monthly
//! agreement): the rows of its period new since the agreement's last
//! release. The watermark is the ledger itself: the last release's file for
//! the output carries its window, and the next window starts the day after
//! it ended, so no file beside the ledger can drift from it.
//!
//! Also the other limits on the rows an output lets out by date: an
//! output's period ([`within_period`]) and, with `[cohort] backdate =
//! false`, each person's `recruited_on` carried with the linked persons
//! ([`with_recruitment`], [`require_recruitment_dates`]).

use std::path::Path;

use chrono::{Datelike, NaiveDate};

use super::PipelineError;
use crate::ingest;
use crate::ledger::{LedgerEntry, LedgerEvent};
use crate::period::{Period, Window};

/// The window recorded on `file` in the agreement's latest release that
/// released it, if any.
pub fn last_window(entries: &[LedgerEntry], reference: &str, file: &str) -> Option<Window> {
    entries.iter().rev().find_map(|e| match &e.event {
        LedgerEvent::Release {
            agreement, files, ..
        } if agreement == reference => files
            .iter()
            .find(|f| f.name == file)
            .and_then(|f| f.window.clone()),
        _ => None,
    })
}

/// What this release of an incremental output covers: from the day after
/// the last window (the period's `from` at first) to the last day of the
/// month before `today` (or the period's `to`, if earlier); so a missed
/// month is caught up in one release. When nothing is new, a forced
/// release repeats the last window and says so; otherwise `Err` with the
/// last day already released.
pub fn next_window(
    period: &Period,
    last: Option<&Window>,
    today: NaiveDate,
    forced: bool,
) -> Result<Window, NaiveDate> {
    let month_start = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).expect("a day");
    let end = month_start.pred_opt().expect("a day before").min(period.to);
    let start = match last {
        Some(w) => w.to.succ_opt().expect("a day after"),
        None => period.from,
    };
    if start <= end {
        return Ok(Window {
            column: period.column.clone(),
            from: start,
            to: end,
            repeats_last_window: false,
        });
    }
    match last {
        Some(w) if forced => Ok(Window {
            repeats_last_window: true,
            ..w.clone()
        }),
        Some(w) => Err(w.to),
        None => Err(start.pred_opt().expect("a day before")),
    }
}

/// With `cohort.backdate = false`, a row without a usable `recruited_on`
/// is a value problem with its reason (an unreadable date already is): the
/// linkage table says why, and no row of that person leaves.
pub(super) fn require_recruitment_dates(cohort: &mut ingest::Cohort) {
    for row in &mut cohort.rows {
        let said = row
            .problems
            .iter()
            .any(|p| p.field == ingest::CohortField::RecruitedOn);
        if row.recruited_on.is_none() && !said {
            row.problems.push(ingest::ValueProblem {
                field: ingest::CohortField::RecruitedOn,
                reason: "is missing, and `cohort.backdate = false` releases only rows on or \
                         after it: nothing is released for this row"
                    .into(),
            });
        }
    }
}

/// The linked persons with each study ID's `recruited_on` (null where the
/// cohort row has none), for `cohort.backdate = false`.
pub(super) fn with_recruitment(
    persons: &polars::prelude::DataFrame,
    cohort: &ingest::Cohort,
) -> Result<polars::prelude::DataFrame, PipelineError> {
    use polars::prelude::*;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a day");
    let ids: Vec<&str> = cohort.rows.iter().map(|r| r.study_id.as_str()).collect();
    let days: Vec<Option<i32>> = cohort
        .rows
        .iter()
        .map(|r| r.recruited_on.map(|d| (d - epoch).num_days() as i32))
        .collect();
    let wrap = |source: PolarsError| PipelineError::Recruitment(crate::tables::redact(source));
    let dates = DataFrame::new_infer_height(vec![
        Column::new("study_id".into(), ids),
        Int32Chunked::from_iter_options("recruited_on".into(), days.into_iter())
            .into_date()
            .into_column(),
    ])
    .map_err(wrap)?;
    let joined = persons
        .clone()
        .lazy()
        .join(
            dates.lazy(),
            [col("study_id")],
            [col("study_id")],
            JoinArgs::new(JoinType::Left),
        )
        .collect()
        .map_err(wrap)?;
    Ok(joined)
}

/// Only the dataset's rows whose period column falls inside the period
/// (both ends included; a row without a date is outside). A column that is
/// missing or not a date is the agreement's problem, naming the key.
pub(super) fn within_period(
    mut dataset: polars::prelude::LazyFrame,
    period: &crate::period::Period,
    file: &Path,
    i: usize,
) -> Result<
    polars::prelude::LazyFrame,
    Result<crate::config_file::Problem, polars::prelude::PolarsError>,
> {
    use polars::prelude::*;
    let schema = dataset
        .collect_schema()
        .map_err(|e| Err(crate::tables::redact(e)))?;
    if let Some(problem) =
        crate::period::schema_problem(period, file, &format!("outputs[{i}]"), &schema)
    {
        return Err(Ok(problem));
    }
    let day = col(period.column.as_str()).cast(DataType::Date);
    Ok(dataset.filter(
        day.clone()
            .gt_eq(lit(period.from))
            .and(day.lt_eq(lit(period.to))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn period() -> Period {
        Period {
            column: "admission_date".into(),
            from: d("2024-12-01"),
            to: d("2025-12-31"),
        }
    }

    #[test]
    fn windows_follow_each_other_and_catch_up() {
        let p = period();
        let first = next_window(&p, None, d("2025-02-05"), false).unwrap();
        assert_eq!((first.from, first.to), (d("2024-12-01"), d("2025-01-31")));
        let second = next_window(&p, Some(&first), d("2025-03-01"), false).unwrap();
        assert_eq!((second.from, second.to), (d("2025-02-01"), d("2025-02-28")));
        // April missed: one release covers March and April.
        let third = next_window(&p, Some(&second), d("2025-05-20"), false).unwrap();
        assert_eq!((third.from, third.to), (d("2025-03-01"), d("2025-04-30")));
        assert!(!third.repeats_last_window);
        // Nothing new the same month: refused, or repeated when forced.
        assert_eq!(
            next_window(&p, Some(&third), d("2025-05-28"), false),
            Err(d("2025-04-30"))
        );
        let again = next_window(&p, Some(&third), d("2025-05-28"), true).unwrap();
        assert_eq!((again.from, again.to), (third.from, third.to));
        assert!(again.repeats_last_window);
        // Forced with a new month: it moves on.
        let on = next_window(&p, Some(&third), d("2025-06-02"), true).unwrap();
        assert_eq!(
            (on.from, on.to, on.repeats_last_window),
            (d("2025-05-01"), d("2025-05-31"), false)
        );
        // Never past the period's end.
        let last = next_window(&p, Some(&on), d("2027-01-09"), false).unwrap();
        assert_eq!(last.to, d("2025-12-31"));
    }
}
