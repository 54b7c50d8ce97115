//! What the link stage needs from the agreement's `[cohort]` table, and the
//! limits of the scoring model and of blocking.

use std::path::PathBuf;

use serde::Deserialize;

use crate::ingest::CohortField;

/// `[cohort]`: the applicant's file and how its rows may be validated; or,
/// with `reuse`, the agreement whose latest released linkage is taken
/// instead of linking again (then `path`, `validation_fields`,
/// `manual_validation` and `review_decisions` are not given: `dars check`
/// says so).
#[derive(Debug, Clone, Deserialize)]
pub struct CohortSection {
    /// The applicant's cohort CSV; `None` only with `reuse`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub validation_fields: Vec<String>,
    #[serde(default)]
    pub manual_validation: bool,
    #[serde(default)]
    pub review_decisions: Option<PathBuf>,
    /// `false`: release for each person only rows on or after their
    /// `recruited_on`, on each output's period column.
    #[serde(default = "backdated")]
    pub backdate: bool,
    /// `DARS-NIC-…`: reuse that agreement's latest released linkage (its
    /// validated and reviewed pairs), of the same organisation.
    #[serde(default)]
    pub reuse: Option<String>,
}

fn backdated() -> bool {
    true
}

impl CohortSection {
    /// The validation fields as cohort columns (checked at load).
    pub fn fields(&self) -> Vec<CohortField> {
        self.validation_fields
            .iter()
            .filter_map(|f| CohortField::from_header(f))
            .collect()
    }
}

/// Candidates scoring at least this (0–100) are queued for review.
pub const REVIEW_THRESHOLD: f64 = 50.0;
/// Candidates at least this likely to be the row's person (the estimated
/// model's posterior, see `estimate`) are queued whatever their score: a
/// married person who moved has a low score (two fields disagree) but is
/// still far likelier than anyone else sharing their date of birth and
/// forename. Measured on the outside bench (`benches/linkage_outside`,
/// FEBRL 1-3 and a 200k-person outside cohort, with surname and postcode
/// estimated jointly and the share in the index estimated by NHS-number
/// group): bars of 0.3, 0.5, 0.6 and 0.7 queue 13%, 9.7%, 8.7% and 7.7% of
/// people absent from the index, while the married who moved ranked first
/// are 97.6%, 94.3%, 92.8% and 90.5%; above 0.5 FEBRL 2 falls to Splink's
/// 99.6%. 0.5: a candidate at least as likely as not. At 2 000 000
/// people x 200 000 rows (`bench.py --curve`, one run at bar 0) bars of
/// 0.5, 0.55, 0.6 and 0.7 queue 10.7%, 9.9%, 9.2% and 7.6% of absent
/// people, with rank-1 over rows with errors 98.4%, 98.3%, 98.2% and 97.8%
/// (the married who moved 83.2%, 82.3%, 81.2%, 77.3%); at 0.55 FEBRL 2
/// loses a row with three errors and ties Splink. A term-frequency `u` for
/// the date of birth, and a joint `u` of surname and date of birth
/// measured on the index (twins), were measured and not kept: they move
/// scores along the trade-off, not the trade-off (README, issue #10).
/// The lookalike class of the estimate (an absent relative or namesake of
/// a candidate, see `estimate`) moves the trade-off itself: at 0.5 it
/// queues 3.8% of absent people at 2M and 1.4% at 200k, rank-1 98.5% and
/// 99.5%; bar 0.3 queues 6.7% and 3.1% for rank-1 98.8% and 99.8%.
pub const REVIEW_PROBABILITY: f64 = 0.5;
/// A study ID whose top two candidates are this close is ambiguous.
pub const AMBIGUITY_MARGIN: f64 = 5.0;
/// Candidates shown per study ID.
pub const MAX_CANDIDATES: usize = 5;
/// People in one block (sharing one key value) before the block is
/// dropped and reported: real blocks hold a handful, a block of hundreds
/// is a default value (1900-01-01) or a key that does not discriminate.
pub const MAX_BLOCK: usize = 500;
/// Comparisons of one run before the largest blocks are dropped and
/// reported: bounds the memory of tier 2 (about 40 bytes a pair).
pub const MAX_COMPARISONS: u64 = 20_000_000;

#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Fields that must agree for automatic validation (always includes
    /// the NHS number).
    pub validation_fields: Vec<CohortField>,
    /// Whether names may be used to queue candidates for manual review.
    pub manual_validation: bool,
    pub review_decisions: Option<PathBuf>,
    pub review_threshold: f64,
    pub review_probability: f64,
    pub ambiguity_margin: f64,
    pub max_candidates: usize,
    pub max_block: usize,
    pub max_comparisons: u64,
}

impl LinkConfig {
    pub fn from_cohort(section: &CohortSection) -> Self {
        Self {
            validation_fields: section.fields(),
            manual_validation: section.manual_validation,
            review_decisions: section.review_decisions.clone(),
            ..Self::default()
        }
    }

    /// Cohort columns this configuration needs, each with the agreement key
    /// that requires it (for the ingest stage's errors).
    pub fn required_columns(&self) -> Vec<(CohortField, String)> {
        let mut req: Vec<(CohortField, String)> = self
            .validation_fields
            .iter()
            .map(|f| (*f, "cohort.validation_fields".to_string()))
            .collect();
        if self.manual_validation {
            for f in [CohortField::Forename, CohortField::Surname] {
                req.push((f, "cohort.manual_validation".into()));
            }
        }
        req
    }
}

impl Default for LinkConfig {
    /// NHS number, date of birth, gender and postcode; no names; no
    /// decisions; the model's limits.
    fn default() -> Self {
        Self {
            validation_fields: vec![
                CohortField::NhsNumber,
                CohortField::DateOfBirth,
                CohortField::Gender,
                CohortField::Postcode,
            ],
            manual_validation: false,
            review_decisions: None,
            review_threshold: REVIEW_THRESHOLD,
            review_probability: REVIEW_PROBABILITY,
            ambiguity_margin: AMBIGUITY_MARGIN,
            max_candidates: MAX_CANDIDATES,
            max_block: MAX_BLOCK,
            max_comparisons: MAX_COMPARISONS,
        }
    }
}
