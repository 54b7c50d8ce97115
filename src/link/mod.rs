//! Stage 2, link: matches each cohort row to the master person index, in
//! the tiers of the NHS master person service's trace (DESIGN.md,
//! "Linkage tiers"). Each tier has its own file: `tier1` (cross-check),
//! `tier2` (candidates, the estimate, the queue), `tier3` (reviewed
//! decisions, read by `decisions`), and `outcomes` (what each row becomes).
//!
//! **Tier 1, cross-check.** A valid NHS number found once in the index
//! where every validation field the agreement selects agrees (date of
//! birth exactly, postcode in full, gender equal or not known on either
//! side, and, when names are in use, a forename that does not disagree) is
//! `validated`. This is the only automatic validation.
//!
//! **Tier 2, candidates.** Every other row with something to match on is
//! blocked on a union of keys (see `block`): its NHS number; the valid
//! numbers one edit or one transposition away when its number fails
//! modulus 11 (the check digit says it is a typo); date of birth with the
//! postcode district, and the same with day and month swapped; postcode
//! with year of birth; and, only when the agreement sets
//! `manual_validation = true`, date of birth with the surname initial
//! (also swapped), date of birth with the forename (also with the names
//! given the other way round), forename with the Soundex code of the
//! surname and year of birth (see `phonetic`), forename, surname and
//! district, and postcode with forename. Blocks are sized before
//! any pair is made, and capped with a report (and a count in the run
//! summary), so a key that degenerates (a default date of birth shared by
//! a million people, thousands of blank names: blanks make no lookup)
//! cannot exhaust memory. Key values are numbers (names and postcodes by
//! their number in the index's dictionaries, see `index`), so blocking
//! hashes integers; blocking, comparing and scoring run on rayon.
//!
//! **Scoring model (Fellegi–Sunter, estimated at each run).** Each field of
//! a pair is compared at a level of agreement: NHS number exact / one edit
//! / transposition; date of birth exact / day-month swapped / one component
//! (or one day) out / year only; postcode full / sector / district / area;
//! gender agree / not known; names exact / swapped / Jaro-Winkler ≥ 0.92 /
//! a shared part of a multi-part name / ≥ 0.88 / ≥ 0.70; each field also
//! disagree or missing. A level weighs `log2(m / u)` bits, `m` the chance
//! of that level for the same person and `u` for two different people:
//! - `u` is measured on the index (see `model`): exact coincidence sums for
//!   dates and postcode levels, a fixed-seed random sample of pairs for
//!   name similarity and gender, and, for an exact name, the share of the
//!   index holding that value (term-frequency adjustment: a rare surname
//!   weighs about 16 bits, Smith about 6);
//! - `m` is estimated by expectation-maximisation over this run's
//!   candidate pairs and the pairs tier 1 found (see `estimate`), each row
//!   having at most one true person, starting from and shrunk towards round
//!   prior error rates, so a small cohort behaves like the prior and a large
//!   one like its own data. Surname and postcode are estimated jointly (one
//!   `m` per pair of their levels): they change together when someone
//!   marries and moves, which independence would score as two rare events;
//! - the share `ρ` of rows whose person is in the index is estimated too,
//!   per what the row's NHS number says: a valid number somebody in the
//!   index holds, a valid number nobody holds (a sign the person was never
//!   registered: 6% of such rows are in the index on the outside bench),
//!   digits failing modulus 11, or none;
//! - a third class, the absent lookalike (a relative or namesake of a
//!   candidate, not in the index), has its own `m_R` per field and level
//!   and its own share `τ` of absent people, estimated by the same EM, so
//!   that someone sharing a surname and a date of birth with a person of
//!   the index is weighed against lookalikes, not only against random
//!   strangers.
//!
//! The estimated `m`, `u` and weights are in the run summary (`model` of
//! the linkage counts). Missing values, gender not known and names not in
//! use weigh 0. A found NHS number is strong evidence (about
//! `log2(N)` bits for an index of `N` people), never a verdict: a
//! cohort may carry a relative's number, and the true person, agreeing on
//! everything else, then outweighs the holder.
//!
//! A candidate's `score` is its summed weight as a share of the weight a
//! perfect match would give that row (every field its cohort file has, at
//! the best level), clamped to 0–100: scores are comparable across rows,
//! and twins stay close instead of both saturating. Candidates are ranked
//! by weight (the same order as the score), and queued when the score
//! reaches the review threshold or when their chance of being the row's
//! person (the estimate's three-class posterior: the candidate, an absent
//! person who is some candidate's lookalike, or an absent stranger)
//! reaches the review probability (0.5: at least as likely as not); at
//! most `max_candidates` per study ID. A study ID
//! whose top two are within the ambiguity margin (twins without names) is
//! flagged.
//!
//! **Partial matches.** A row whose valid NHS number is found but where a
//! validation field disagrees or is missing on one side (someone who moved
//! house) is counted as partial; the queue shows each field's level and
//! both values.
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
mod estimate;
mod index;
mod model;
mod outcomes;
mod output;
mod phonetic;
#[cfg(test)]
mod tests;
mod tier1;
mod tier2;
mod tier3;

pub use block::{BlockingReport, KeyReport};
pub use candidates::{Candidate, QueueEntry};
pub use compare::{Field, Level};
pub use config::{CohortSection, LinkConfig};
pub use decisions::{DecisionProblem, DecisionProblemKind, DecisionsError};
pub use estimate::{ModelSummary, Parameter};
pub use output::{write_linkage_csv, write_review_queue_csv, Linked, REVIEW_QUEUE_HEADER};

use std::ops::Range;
use std::time::Instant;

use polars::prelude::*;
use rayon::prelude::*;

use crate::ingest::{Cohort, CohortField};
use crate::memory::peak_rss_mib;
use block::{Limits, Pair};
use candidates::Scoring;
use index::Index;
use model::Model;
use tier1::CrossCheck;

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
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// Blocking keys that left lookups out (blocks too big, or the
    /// comparison budget) or narrowed them (a block too big cut to the
    /// row's gender or postcode area), with what they left out.
    #[serde(default)]
    pub capped_keys: Vec<CappedKey>,
    /// The model estimated on this run's data (see `estimate`).
    #[serde(default)]
    pub model: ModelSummary,
}

/// A blocking key that was capped, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CappedKey {
    pub key: String,
    pub capped_lookups: usize,
    pub capped_comparisons: u64,
    #[serde(default)]
    pub narrowed_lookups: usize,
    #[serde(default)]
    pub narrowed_comparisons: u64,
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
    /// Of tier 2: the estimate of the model.
    pub estimate_seconds: f64,
    pub decisions_seconds: f64,
    pub index_people: usize,
    /// The process's peak resident memory (Linux `VmHWM`, MiB) at the end
    /// of each step: a high-water mark, so each is at least the one before.
    pub index_peak_mib: Option<u64>,
    pub tier1_peak_mib: Option<u64>,
    pub tier2_peak_mib: Option<u64>,
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
    let mut model = Model::measure(&index, names)?;
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
        vec![candidates::nhs_lookup(rows)],
        limits,
        &mut blocking,
    )?;
    let nhs_ranges = ranges_by_row(&nhs_pairs, rows.len());
    let checks: Vec<CrossCheck> = rows
        .par_iter()
        .zip(nhs_ranges.par_iter())
        .map(|(row, range)| tier1::cross_check(row, &nhs_pairs[range.clone()], &index, config))
        .collect();
    timings.tier1_rows = rows.len();
    timings.tier1_seconds = started.elapsed().as_secs_f64();
    timings.tier1_peak_mib = peak_rss_mib();

    // Tier 2.
    let started = Instant::now();
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
        review_probability: config.review_probability,
        ambiguity_margin: config.ambiguity_margin,
        max_candidates: config.max_candidates,
    };
    let tier2 = tier2::run(tier2::Input {
        index: &index,
        model: &mut model,
        rows,
        checks: &checks,
        nhs_pairs: &nhs_pairs,
        scoring: &scoring,
        limits,
        blocking: &mut blocking,
    })?;
    let mut queue = tier2.queue;
    timings.tier2_rows = tier2.rows;
    timings.estimate_seconds = tier2.estimate_seconds;
    timings.tier2_seconds = started.elapsed().as_secs_f64();
    timings.tier2_peak_mib = peak_rss_mib();

    // Tier 3.
    let started = Instant::now();
    let reviewed = tier3::apply(&index, &mut queue, config)?;
    timings.decisions_seconds = started.elapsed().as_secs_f64();

    // Outcomes, in cohort order.
    let mut counts = LinkCounts {
        accepted: reviewed.accepted_count,
        rejected: reviewed.rejected_count,
        model: tier2.model,
        capped_keys: blocking
            .keys
            .iter()
            .filter(|k| k.capped_lookups > 0 || k.narrowed_lookups > 0)
            .map(|k| CappedKey {
                key: k.key.to_string(),
                capped_lookups: k.capped_lookups,
                capped_comparisons: k.capped_comparisons,
                narrowed_lookups: k.narrowed_lookups,
                narrowed_comparisons: k.narrowed_comparisons,
            })
            .collect(),
        ..LinkCounts::default()
    };
    let (out, persons) = outcomes::build(outcomes::Input {
        rows,
        checks: &checks,
        index: &index,
        queue: &queue,
        reviewed: &reviewed,
        best_below: &tier2.best_below,
        config,
        counts: &mut counts,
    })
    .map_err(wrap)?;
    queue.retain(|e| {
        !reviewed.accepted.contains_key(&e.row) && !reviewed.rejected_all.contains(&e.row)
    });
    counts.queue_pairs = queue.iter().map(|e| e.candidates.len()).sum();
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
        em_rows = counts.model.rows,
        em_iterations = counts.model.iterations,
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
