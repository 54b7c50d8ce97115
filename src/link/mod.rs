//! Stage 2, link: matches each cohort row to the master person index, in
//! the tiers of the NHS master person service's trace (DESIGN.md,
//! "Linkage tiers").
//!
//! **Tier 1, cross-check.** A valid NHS number found once in the index
//! where every validation field the agreement selects agrees (date of
//! birth exactly, postcode in full, gender equal or not known on either
//! side) is `validated`. A field blank on both sides (a postcode the index
//! never recorded) is neutral, but at least one selected field besides the
//! NHS number must positively agree. This is the only automatic
//! validation, and it never looks at names.
//!
//! **Tier 2, candidates.** Every other row with something to match on is
//! blocked on a union of keys (see `block`): its NHS number; the valid
//! numbers one edit or one transposition away when its number fails
//! modulus 11 (the check digit says it is a typo); date of birth with the
//! postcode district, and the same with day and month swapped; and, only
//! when the agreement sets `manual_validation = true`, date of birth with
//! the surname initial (also swapped) and forename, surname and year of
//! birth. Blocks are sized before any pair is made, and capped with a
//! report, so a key that degenerates (a default date of birth shared by a
//! million people) cannot exhaust memory. Pairs come from polars joins;
//! scoring runs on rayon.
//!
//! **Scoring model (Fellegi–Sunter).** Each field of a pair is compared at
//! a level of agreement: NHS number exact / one edit / transposition;
//! date of birth exact / day-month swapped / one component (or one day)
//! out / year only; postcode full / sector / district / area; gender agree
//! / not known; names exact / swapped / Jaro-Winkler ≥ 0.92 / a shared
//! part of a multi-part name / ≥ 0.88 / ≥ 0.70; each field also disagree
//! or missing. A level weighs `log2(m / u)` bits: `m` is the chance of that
//! level for a true match (round error rates, in `model`), `u` the chance
//! for two different people, measured on this index — the coincidence
//! `Σ (n_v / N)²` of dates of birth, years and each postcode level, and,
//! for names, the share of the index holding the agreeing value itself, so
//! that agreeing on a rare surname weighs about 16 bits and on Smith about
//! 6. Missing values, gender not known and names not in use weigh 0. The
//! score is the summed weight as a share of the weight a perfect match
//! would give that row (every field its cohort file has, at the best
//! level), clamped to 0–100: a blank field lowers the score instead of
//! being ignored, and scores are comparable across rows. (A posterior
//! probability would saturate at 100 for twins and hide how close they
//! are.) Candidates scoring at least the review threshold are queued, best
//! first, at most `max_candidates` per study ID; a study ID whose top two
//! are within the ambiguity margin (twins without names) is flagged.
//!
//! **Partial matches.** A row whose valid NHS number is found but where a
//! validation field disagrees or is missing on one side (someone who moved
//! house) is queued with that person ranked first, whatever the scores,
//! and the queue shows the disagreeing field's level and both values.
//!
//! **Tier 3, reviewed.** The agreement's `review_decisions` file is read
//! back and checked whole against the current queue (see `decisions`);
//! each accepted pair becomes `reviewed`, rejected pairs leave the queue,
//! and a study ID whose candidates are all rejected is `unmatched`.
//!
//! Nothing here logs an identifier: counts and study IDs only.

mod block;
mod candidates;
mod compare;
mod config;
pub mod decisions;
mod index;
mod model;
mod output;
#[cfg(test)]
mod tests;

pub use block::{BlockingReport, KeyReport};
pub use candidates::{Candidate, QueueEntry};
pub use compare::{Field, Level};
pub use config::LinkConfig;
pub use decisions::{DecisionProblem, DecisionProblemKind, DecisionsError};
pub use output::{write_linkage_csv, write_review_queue_csv, REVIEW_QUEUE_HEADER};

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::time::Instant;

use polars::prelude::*;
use rayon::prelude::*;

use crate::domain::gender::GenderAgreement;
use crate::ingest::{Cohort, CohortField, CohortRow};
use crate::objections::Linked;
use block::{Key, Limits, Pair};
use candidates::Scoring;
use index::{column, Index};
use model::Model;

/// What linkage decided for one cohort row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Validated,
    Reviewed,
    Queued,
    Unmatched,
    Invalid,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validated => "validated",
            Self::Reviewed => "reviewed",
            Self::Queued => "queued",
            Self::Unmatched => "unmatched",
            Self::Invalid => "invalid",
        }
    }
}

/// One row of `linkage.csv`, in cohort order.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkageRow {
    pub study_id: String,
    /// Set only for `validated` and `reviewed`.
    pub person_id: Option<i64>,
    pub outcome: Outcome,
    pub tier: Option<u8>,
    pub score: Option<f64>,
    pub reason: String,
}

/// Counts per outcome, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkCounts {
    pub rows: usize,
    pub validated: usize,
    pub reviewed: usize,
    pub queued: usize,
    pub unmatched: usize,
    pub invalid: usize,
    /// Persons linked from more than one study ID (reported, not dropped).
    pub persons_linked_twice: usize,
    /// Queued study IDs whose valid NHS number was found but a validation
    /// field disagreed (partial matches).
    #[serde(default)]
    pub partial: usize,
    /// Queued study IDs whose top two candidates score close together.
    #[serde(default)]
    pub ambiguous: usize,
    /// Candidate pairs in the review queue.
    #[serde(default)]
    pub queue_pairs: usize,
    /// Decisions read back: accepted and rejected pairs.
    #[serde(default)]
    pub accepted: usize,
    #[serde(default)]
    pub rejected: usize,
}

/// Wall time of each tier, for the bench and the run summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LinkTimings {
    /// Collecting the index and measuring the model.
    pub index_seconds: f64,
    pub tier1_seconds: f64,
    pub tier1_rows: usize,
    pub tier2_seconds: f64,
    pub tier2_rows: usize,
    pub decisions_seconds: f64,
    pub index_people: usize,
    /// The process's peak resident memory (Linux `VmHWM`, MiB) at the end
    /// of each step: a high-water mark, so each is at least the one before.
    pub index_peak_mib: Option<u64>,
    pub tier1_peak_mib: Option<u64>,
    pub tier2_peak_mib: Option<u64>,
}

/// The process's peak resident memory so far, MiB (None off Linux).
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// The linkage stage's result.
#[derive(Debug, Clone)]
pub struct Linkage {
    pub rows: Vec<LinkageRow>,
    pub counts: LinkCounts,
    /// `study_id`, `person_id`, and the index's `nhs_number` of every
    /// validated or reviewed row: the input of the objections stage.
    pub linked: Linked,
    /// The pending review queue: study IDs still `queued`, in cohort
    /// order, each with its candidates best first.
    pub queue: Vec<QueueEntry>,
    /// What each blocking key cost and what was capped.
    pub blocking: BlockingReport,
    pub timings: LinkTimings,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("master person index: {source}\n  fix: check `sources.demographics` in the site config points at Parquet with the DESIGN.md columns (person_id, nhs_number, date_of_birth, gender, postcode, forename, surname)")]
    Demographics {
        #[source]
        source: PolarsError,
    },
    #[error(transparent)]
    ReviewDecisions(#[from] DecisionsError),
}

/// Tier 1's verdict on one row.
enum CrossCheck {
    Validated {
        idx: u32,
        reason: &'static str,
    },
    Invalid,
    /// Go to tier 2; the reason says why tier 1 could not validate, and
    /// `partial` whether the NHS number was found once.
    Candidates {
        reason: String,
        partial: bool,
    },
}

/// Links the cohort to the index.
pub fn link(
    cohort: &Cohort,
    demographics: LazyFrame,
    config: &LinkConfig,
) -> Result<Linkage, LinkError> {
    let wrap = |source| LinkError::Demographics { source };
    let mut timings = LinkTimings::default();
    let started = Instant::now();
    let names = config.manual_validation;
    let index = Index::load(demographics, names)?;
    let model = Model::measure(&index, names)?;
    timings.index_people = index.len();
    timings.index_seconds = started.elapsed().as_secs_f64();
    timings.index_peak_mib = peak_rss_mib();

    // Tier 1.
    let started = Instant::now();
    let limits = Limits {
        max_block: config.max_block,
        max_comparisons: config.max_comparisons,
    };
    let mut blocking = BlockingReport::default();
    let rows = &cohort.rows;
    let nhs_pairs = block::candidates(
        &index,
        vec![(Key::NhsNumber, candidates::nhs_lookup(rows).map_err(wrap)?)],
        limits,
        &mut blocking,
    )?;
    let nhs_ranges = ranges_by_row(&nhs_pairs, rows.len());
    let checks: Vec<CrossCheck> = rows
        .par_iter()
        .zip(nhs_ranges.par_iter())
        .map(|(row, range)| cross_check(row, &nhs_pairs[range.clone()], &index, config))
        .collect();
    timings.tier1_rows = rows.len();
    timings.tier1_seconds = started.elapsed().as_secs_f64();
    timings.tier1_peak_mib = peak_rss_mib();

    // Tier 2.
    let started = Instant::now();
    let wanted: Vec<u32> = checks
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, CrossCheck::Candidates { .. }))
        .map(|(i, _)| i as u32)
        .collect();
    let lookups = candidates::lookups(rows, &wanted, names).map_err(wrap)?;
    let mut pairs = block::candidates(&index, lookups, limits, &mut blocking)?;
    let wanted_set: HashSet<u32> = wanted.iter().copied().collect();
    pairs.extend(
        nhs_pairs
            .iter()
            .filter(|p| wanted_set.contains(&p.row))
            .copied(),
    );
    let pairs = block::merge_pairs(pairs);
    let ranges = ranges_by_row(&pairs, rows.len());
    let scoring = Scoring {
        names,
        fields: [
            CohortField::NhsNumber,
            CohortField::DateOfBirth,
            CohortField::Gender,
            CohortField::Postcode,
            CohortField::Forename,
            CohortField::Surname,
        ]
        .map(|f| {
            cohort.columns.contains(&f)
                && (names || !matches!(f, CohortField::Forename | CohortField::Surname))
        }),
        review_threshold: config.review_threshold,
        ambiguity_margin: config.ambiguity_margin,
        max_candidates: config.max_candidates,
    };
    let scored: Vec<candidates::Scored> = wanted
        .par_iter()
        .map(|&w| {
            let w = w as usize;
            candidates::queue_entry(
                &model,
                &scoring,
                &index,
                w,
                &rows[w],
                &pairs[ranges[w].clone()],
            )
        })
        .collect();
    let mut best_below: HashMap<usize, f64> = HashMap::new();
    let mut queue = Vec::with_capacity(scored.len());
    for (s, &w) in scored.into_iter().zip(&wanted) {
        match s {
            Ok(entry) => queue.push(entry),
            Err(Some(best)) => {
                best_below.insert(w as usize, best);
            }
            Err(None) => {}
        }
    }
    timings.tier2_rows = wanted.len();
    timings.tier2_seconds = started.elapsed().as_secs_f64();
    timings.tier2_peak_mib = peak_rss_mib();

    // Tier 3.
    let started = Instant::now();
    let mut accepted: HashMap<usize, (Candidate, String)> = HashMap::new();
    let mut rejected_all: HashSet<usize> = HashSet::new();
    let mut counts = LinkCounts::default();
    if let Some(path) = &config.review_decisions {
        let decisions = decisions::read(path)?;
        let by_study: HashMap<&str, usize> = queue
            .iter()
            .enumerate()
            .map(|(i, e)| (e.study_id.as_str(), i))
            .collect();
        let existing = existing_people(&index, decisions.iter().map(|d| d.person_id))?;
        decisions::check(
            path,
            &decisions,
            |study, person| {
                by_study
                    .get(study)
                    .is_some_and(|&i| queue[i].candidates.iter().any(|c| c.person_id == person))
            },
            |person| existing.contains(&person),
        )?;
        let mut rejected: HashSet<(&str, i64)> = HashSet::new();
        let mut accepts: HashMap<&str, &decisions::Decision> = HashMap::new();
        for d in &decisions {
            if d.accept {
                counts.accepted += 1;
                accepts.insert(d.study_id.as_str(), d);
            } else {
                counts.rejected += 1;
                rejected.insert((d.study_id.as_str(), d.person_id));
            }
        }
        for entry in &mut queue {
            if let Some(d) = accepts.get(entry.study_id.as_str()) {
                if let Some(c) = entry.candidates.iter().find(|c| c.person_id == d.person_id) {
                    let reason = format!(
                        "accepted in review by {} on {} (decisions line {})",
                        d.reviewer, d.decided_on, d.line
                    );
                    accepted.insert(entry.row, (c.clone(), reason));
                }
                continue;
            }
            let before = entry.candidates.len();
            entry
                .candidates
                .retain(|c| !rejected.contains(&(entry.study_id.as_str(), c.person_id)));
            if entry.candidates.is_empty() {
                rejected_all.insert(entry.row);
            } else if entry.candidates.len() != before {
                entry.ambiguous =
                    candidates::is_ambiguous(&entry.candidates, config.ambiguity_margin);
            }
        }
    }
    timings.decisions_seconds = started.elapsed().as_secs_f64();

    // Outcomes, in cohort order.
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
    for (i, (row, check)) in rows.iter().zip(&checks).enumerate() {
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
        let mut link_to: Option<(i64, String, Option<chrono::NaiveDate>)> = None;
        match check {
            CrossCheck::Invalid => {
                result.outcome = Outcome::Invalid;
                result.reason = with_problems("nothing to match on".into());
            }
            CrossCheck::Validated { idx, reason } => {
                let p = index.person(*idx);
                result.outcome = Outcome::Validated;
                result.person_id = Some(p.person_id);
                result.tier = Some(1);
                result.score = Some(100.0);
                result.reason = with_problems((*reason).into());
                link_to = Some((
                    p.person_id,
                    p.nhs_number.unwrap_or_default().into(),
                    p.date_of_birth,
                ));
            }
            CrossCheck::Candidates { reason, partial } => {
                if let Some((c, why)) = accepted.get(&i) {
                    result.outcome = Outcome::Reviewed;
                    result.person_id = Some(c.person_id);
                    result.tier = Some(3);
                    result.score = Some(c.score);
                    result.reason = with_problems(format!("{reason}; {why}"));
                    link_to = Some((
                        c.person_id,
                        c.index_nhs_number.clone(),
                        index.person(c.idx).date_of_birth,
                    ));
                } else if rejected_all.contains(&i) {
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
                        "{reason}; no candidate scored {} or more (best {best:.1})",
                        config.review_threshold
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
    queue.retain(|e| !accepted.contains_key(&e.row) && !rejected_all.contains(&e.row));
    counts.queue_pairs = queue.iter().map(|e| e.candidates.len()).sum();
    let persons = DataFrame::new_infer_height(vec![
        Column::new("study_id".into(), linked_study),
        Column::new("person_id".into(), linked_person),
        Column::new("nhs_number".into(), linked_nhs),
        Column::new("date_of_birth".into(), linked_dob),
        Column::new("cohort_nhs_number".into(), linked_cohort_nhs),
    ])
    .map_err(wrap)?;
    tracing::info!(
        rows = counts.rows,
        validated = counts.validated,
        reviewed = counts.reviewed,
        queued = counts.queued,
        partial = counts.partial,
        ambiguous = counts.ambiguous,
        unmatched = counts.unmatched,
        invalid = counts.invalid,
        comparisons = blocking.comparisons(),
        capped_comparisons = blocking.capped_comparisons(),
        "linkage done"
    );
    Ok(Linkage {
        rows: out,
        counts,
        linked: Linked { persons },
        queue,
        blocking,
        timings,
    })
}

/// For pairs sorted by row, the range of each row's pairs.
fn ranges_by_row(pairs: &[Pair], rows: usize) -> Vec<Range<usize>> {
    let mut ranges = vec![0..0; rows];
    let mut start = 0;
    while start < pairs.len() {
        let row = pairs[start].row as usize;
        let end = start
            + pairs[start..]
                .iter()
                .take_while(|p| p.row as usize == row)
                .count();
        if let Some(r) = ranges.get_mut(row) {
            *r = start..end;
        }
        start = end;
    }
    ranges
}

/// Which of `people` exist in the index (a semi-join on `person_id`).
fn existing_people(
    index: &Index,
    people: impl Iterator<Item = i64>,
) -> Result<HashSet<i64>, LinkError> {
    let wrap = |source| LinkError::Demographics { source };
    let wanted: Vec<i64> = people.collect();
    let wanted = DataFrame::new_infer_height(vec![Column::new(column::PERSON_ID.into(), wanted)])
        .map_err(wrap)?;
    let found = index
        .frame
        .clone()
        .lazy()
        .select([col(column::PERSON_ID)])
        .join(
            wanted.lazy(),
            [col(column::PERSON_ID)],
            [col(column::PERSON_ID)],
            JoinArgs::new(JoinType::Semi),
        )
        .collect()
        .map_err(wrap)?;
    Ok(found
        .column(column::PERSON_ID)
        .map_err(wrap)?
        .i64()
        .map_err(wrap)?
        .iter()
        .flatten()
        .collect())
}

/// Tier 1 for one row, given the index rows holding its NHS number.
fn cross_check(
    row: &CohortRow,
    holders: &[Pair],
    index: &Index,
    config: &LinkConfig,
) -> CrossCheck {
    let nothing_to_match = row.nhs_number.is_none()
        && row.nhs_number_typo.is_none()
        && row.date_of_birth.is_none()
        && row.postcode.is_none()
        && row.forename.is_none()
        && row.surname.is_none();
    if nothing_to_match {
        return CrossCheck::Invalid;
    }
    let candidates = |reason: &str, partial| CrossCheck::Candidates {
        reason: reason.to_string(),
        partial,
    };
    if row.nhs_number.is_none() {
        return candidates("no valid nhs_number to cross-check", false);
    }
    let person = match holders {
        [] => return candidates("nhs_number not found in the index", false),
        [one] => index.person(one.idx),
        _ => {
            return candidates(
                "nhs_number is held by more than one person in the index",
                false,
            )
        }
    };
    let mut disagree = Vec::new();
    let mut missing = Vec::new();
    let mut agree = 0usize;
    let mut selected = 0usize;
    let mut neutral = Vec::new();
    for field in &config.validation_fields {
        let (name, check) = match field {
            CohortField::DateOfBirth => (
                "date_of_birth",
                FieldCheck::of(row.date_of_birth.as_ref(), person.date_of_birth.as_ref()),
            ),
            CohortField::Postcode => (
                "postcode",
                FieldCheck::of(row.postcode.as_ref(), person.postcode.as_ref()),
            ),
            CohortField::Gender => (
                "gender",
                match row.gender.zip(person.gender).map(|(c, i)| c.compare(i)) {
                    Some(GenderAgreement::Agree) => FieldCheck::Agree,
                    Some(GenderAgreement::Disagree) => FieldCheck::Disagree,
                    Some(GenderAgreement::NotKnown) | None => FieldCheck::Neutral,
                },
            ),
            _ => continue,
        };
        selected += 1;
        match check {
            FieldCheck::Agree => agree += 1,
            FieldCheck::Disagree => disagree.push(name),
            FieldCheck::Neutral => neutral.push(name),
            FieldCheck::MissingInCohort => missing.push(format!("{name} missing in the cohort")),
            FieldCheck::MissingInIndex => missing.push(format!("{name} missing in the index")),
        }
    }
    if disagree.is_empty() && missing.is_empty() && (agree > 0 || selected == 0) {
        let idx = holders[0].idx;
        let reason = match (neutral.contains(&"gender"), neutral.len()) {
            (_, 0) => "all validation fields agree",
            (true, 1) => "all validation fields agree (gender not known: neutral)",
            _ => "all validation fields agree (a field not recorded on either side: neutral)",
        };
        return CrossCheck::Validated { idx, reason };
    }
    let mut parts = vec!["nhs_number found".to_string()];
    if !disagree.is_empty() {
        parts.push(format!(
            "{} disagree{}",
            disagree.join(", "),
            if disagree.len() == 1 { "s" } else { "" }
        ));
    }
    parts.extend(missing);
    if agree == 0 && disagree.is_empty() && selected > 0 {
        parts.push("no validation field besides nhs_number to cross-check".into());
    }
    CrossCheck::Candidates {
        reason: parts.join("; "),
        partial: true,
    }
}

/// How one validation field cross-checks.
enum FieldCheck {
    Agree,
    Disagree,
    /// Not recorded on either side, or gender not known.
    Neutral,
    MissingInCohort,
    MissingInIndex,
}

impl FieldCheck {
    fn of<T: PartialEq>(cohort: Option<&T>, index: Option<&T>) -> Self {
        match (cohort, index) {
            (Some(c), Some(i)) if c == i => Self::Agree,
            (Some(_), Some(_)) => Self::Disagree,
            (None, None) => Self::Neutral,
            (None, Some(_)) => Self::MissingInCohort,
            (Some(_), None) => Self::MissingInIndex,
        }
    }
}
