//! The outcome rules: what each cohort row becomes (DESIGN.md, "Outputs"),
//! in cohort order, with its reason, and the persons linked for the
//! objections stage.
//!
//! - nothing to match on: `invalid`;
//! - tier 1 validated it: `validated`, tier 1, score 100;
//! - an accepted decision: `reviewed`, tier 3, the candidate's score;
//! - every candidate rejected in review: `unmatched`;
//! - candidates queued: `queued`, tier 2, the best candidate's score (a
//!   partial match and an ambiguous pair are counted);
//! - otherwise `unmatched`, with the best score when there was a candidate.
//!
//! Only `validated` and `reviewed` rows carry a person; a person linked
//! from two study IDs is counted, not dropped.

use std::collections::HashMap;

use polars::prelude::*;

use super::candidates::QueueEntry;
use super::index::Index;
use super::tier1::CrossCheck;
use super::tier3::Reviewed;
use super::{LinkConfig, LinkCounts, LinkageRow, Outcome};
use crate::ingest::CohortRow;

pub struct Input<'a> {
    pub rows: &'a [CohortRow],
    pub checks: &'a [CrossCheck],
    pub index: &'a Index,
    pub queue: &'a [QueueEntry],
    pub reviewed: &'a Reviewed,
    /// The best score of rows whose candidates all fell below the bar.
    pub best_below: &'a HashMap<usize, f64>,
    pub config: &'a LinkConfig,
    pub counts: &'a mut LinkCounts,
}

/// The linkage rows, in cohort order, and the linked persons: `study_id`,
/// `person_id`, the index's `nhs_number` and `date_of_birth`, and the
/// cohort's own `cohort_nhs_number`.
pub fn build(input: Input<'_>) -> PolarsResult<(Vec<LinkageRow>, DataFrame)> {
    let Input {
        rows,
        checks,
        index,
        queue,
        reviewed,
        best_below,
        config,
        counts,
    } = input;
    let queued: HashMap<usize, usize> = queue.iter().enumerate().map(|(i, e)| (e.row, i)).collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut linked_study = Vec::new();
    let mut linked_person = Vec::new();
    let mut linked_nhs = Vec::new();
    // For the later stages (issue #12): the index's date of birth, which
    // minimisation compares dataset columns with, and the cohort's own NHS
    // number, for the count of objections found only through the index.
    let mut linked_dob = Vec::new();
    let mut linked_cohort_nhs = Vec::new();
    let mut seen_person: HashMap<i64, usize> = HashMap::new();
    for (i, (row, check)) in rows.iter().zip(checks).enumerate() {
        let problems: Vec<String> = row.problems.iter().map(ToString::to_string).collect();
        let with_problems = |reason: String| {
            if problems.is_empty() {
                reason
            } else {
                format!("{reason}; {}", problems.join("; "))
            }
        };
        let mut result = LinkageRow {
            study_id: row.study_id.clone(),
            person_id: None,
            outcome: Outcome::Unmatched,
            tier: None,
            score: None,
            reason: String::new(),
        };
        let mut link_to: Option<(i64, String, Option<i32>)> = None;
        match check {
            CrossCheck::Invalid => {
                result.outcome = Outcome::Invalid;
                result.reason = with_problems("nothing to match on".into());
            }
            CrossCheck::Validated { idx, reason } => {
                let person_id = index.person_id(*idx);
                result.outcome = Outcome::Validated;
                result.person_id = Some(person_id);
                result.tier = Some(1);
                result.score = Some(100.0);
                result.reason = with_problems((*reason).into());
                link_to = Some((
                    person_id,
                    index.nhs_number(*idx).unwrap_or_default().into(),
                    index.dob_days(*idx),
                ));
            }
            CrossCheck::Candidates { reason, partial } => {
                if let Some((c, why)) = reviewed.accepted.get(&i) {
                    result.outcome = Outcome::Reviewed;
                    result.person_id = Some(c.person_id);
                    result.tier = Some(3);
                    result.score = Some(c.score);
                    result.reason = with_problems(format!("{reason}; {why}"));
                    link_to = Some((
                        c.person_id,
                        c.index_nhs_number.clone(),
                        index.dob_days(c.idx),
                    ));
                } else if reviewed.rejected_all.contains(&i) {
                    result.reason =
                        with_problems(format!("{reason}; every candidate rejected in review"));
                } else if let Some(&q) = queued.get(&i) {
                    let e = &queue[q];
                    result.outcome = Outcome::Queued;
                    result.tier = Some(2);
                    result.score = e.candidates.first().map(|c| c.score);
                    let n = e.candidates.len();
                    let mut why = format!(
                        "{reason}; {n} candidate{} queued for review",
                        if n == 1 { "" } else { "s" }
                    );
                    if e.ambiguous {
                        why.push_str(&format!(
                            "; ambiguous: top two within {} points",
                            config.ambiguity_margin
                        ));
                    }
                    if *partial {
                        counts.partial += 1;
                    }
                    if e.ambiguous {
                        counts.ambiguous += 1;
                    }
                    result.reason = with_problems(why);
                } else if let Some(best) = best_below.get(&i) {
                    result.reason = with_problems(format!(
                        "{reason}; no candidate scored {} or more or was {}% likely (best score {best:.1})",
                        config.review_threshold,
                        100.0 * config.review_probability
                    ));
                } else {
                    result.reason = with_problems(format!("{reason}; no candidate found"));
                }
            }
        }
        match result.outcome {
            Outcome::Validated => counts.validated += 1,
            Outcome::Reviewed => counts.reviewed += 1,
            Outcome::Queued => counts.queued += 1,
            Outcome::Unmatched => counts.unmatched += 1,
            Outcome::Invalid => counts.invalid += 1,
        }
        if let Some((pid, nhs, dob)) = link_to {
            let times = seen_person.entry(pid).or_insert(0);
            *times += 1;
            if *times == 2 {
                counts.persons_linked_twice += 1;
            }
            linked_study.push(row.study_id.clone());
            linked_person.push(pid);
            linked_nhs.push(nhs);
            linked_dob.push(dob);
            linked_cohort_nhs.push(row.nhs_number.map(|n| n.as_string()));
        }
        out.push(result);
    }
    counts.rows = out.len();
    let persons = DataFrame::new_infer_height(vec![
        Column::new("study_id".into(), linked_study),
        Column::new("person_id".into(), linked_person),
        Column::new("nhs_number".into(), linked_nhs),
        Column::new("date_of_birth".into(), linked_dob).cast(&DataType::Date)?,
        Column::new("cohort_nhs_number".into(), linked_cohort_nhs),
    ])?;
    Ok((out, persons))
}
