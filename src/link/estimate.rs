//! Estimating `m` by expectation-maximisation over the candidate pairs
//! (Fellegi and Sunter 1969; Winkler 1988; as in Splink), with `u` held at
//! the values measured on the index (see `model`).
//!
//! Each cohort row has at most one true person. Given the weights, the
//! chance that candidate `j` of a row is its person is
//!
//! ```text
//! p_j = a · 2^w_j / (1 + a · Σ_k 2^w_k),    a = ρ / N
//! ```
//!
//! where `w_j` is the pair's summed weight in bits, `N` the people of the
//! index and `ρ` the share of rows whose person is in the index: the prior
//! of one pair is `ρ / N`, and the `1` stands for every person blocking
//! did not propose (their likelihood ratio averages 1 over random pairs)
//! and for a person absent from the index. Normalising within the row is
//! what keeps the estimate honest on blocked pairs: the strangers a block
//! proposes agree on its key by construction, and a pairwise posterior
//! would take many of them for matches.
//!
//! E-step: `p_j` of every pair under the current `m`, once per field with
//! that field left out of `w_j` (the row's other candidates keep their
//! full weight, so a relative holding the row's NHS number does not pass
//! for the person when only the date of birth is set aside). M-step: `m` of each level of a field is the
//! share of the pairs at that level, each pair weighted by the posterior
//! the *other* fields give it (pairs where the field is missing do not
//! count). Leaving the field out is what lets the data move it: with its
//! own weight in, a level the prior thinks rare (a new surname: the
//! married) keeps its pairs from looking like matches, and the estimate
//! confirms the prior; the other fields (date of birth, forename, gender)
//! say those pairs are matches. The same idea as Splink training each
//! field on pairs blocked by the others. Each field's `m` is then shrunk towards the prior by
//! [`PRIOR_PAIRS`] pseudo-pairs and floored at [`M_FLOOR`], so that a level
//! this cohort never shows stays possible. `ρ` is held at its prior
//! ([`model::prior::IN_INDEX`]): the data cannot tell a person absent from
//! the index from one blocking did not find (both leave a row without a
//! likely candidate), so an estimate of it only drifts to whatever bound
//! it is given. Iterated until no
//! `m` moves by more than [`TOLERANCE`], at most [`MAX_ITERATIONS`] times.
//! At most [`MAX_ROWS`] rows take part (every k-th, deterministic), which
//! bounds the cost at any scale.

use std::ops::Range;

use rayon::prelude::*;

use super::compare::Field;
use super::model::{self, Model, LEVELS, MAX_LEVELS};

/// Pseudo-pairs of prior weight on every field's `m`.
pub const PRIOR_PAIRS: f64 = 50.0;
/// The least `m` of any level.
pub const M_FLOOR: f64 = 1e-4;
pub const TOLERANCE: f64 = 1e-5;
pub const MAX_ITERATIONS: usize = 60;
/// Rows taking part in the estimate, at most.
pub const MAX_ROWS: usize = 60_000;

/// A field with no level (missing, not known, not used).
pub const NEUTRAL: u8 = u8::MAX;

/// One candidate pair as the estimate sees it.
#[derive(Debug, Clone, Copy)]
pub struct EmPair {
    /// Level index per field ([`LEVELS`] order), or [`NEUTRAL`].
    pub levels: [u8; 6],
    /// `Σ log2 u` over the pair's non-neutral fields (constant in `m`).
    pub log_u: f64,
    /// Each field's `log2 u` (0 when neutral).
    pub log_u_of: [f64; 6],
}

/// The pairs of the rows taking part, grouped by row.
#[derive(Debug, Default)]
pub struct EmData {
    pub pairs: Vec<EmPair>,
    pub rows: Vec<Range<usize>>,
}

impl EmData {
    pub fn push_row(&mut self, pairs: impl IntoIterator<Item = EmPair>) {
        let start = self.pairs.len();
        self.pairs.extend(pairs);
        if self.pairs.len() > start {
            self.rows.push(start..self.pairs.len());
        }
    }
}

/// One estimated parameter, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Parameter {
    pub field: String,
    pub level: String,
    pub m: f64,
    /// For exact and swapped names: the index average (`Σ share²`); each
    /// row's own name is weighed by its frequency.
    pub u: f64,
    /// `log2(m / u)`.
    pub bits: f64,
}

/// What the estimate did, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSummary {
    /// Cohort rows and candidate pairs the estimate used.
    pub rows: usize,
    pub pairs: usize,
    pub iterations: usize,
    pub converged: bool,
    /// The share of cohort rows whose person is taken to be in the index
    /// (the prior `ρ`, not estimated).
    pub in_index: f64,
    pub parameters: Vec<Parameter>,
}

#[derive(Clone)]
struct Tally {
    level: [[f64; MAX_LEVELS]; 6],
    present: [f64; 6],
}

impl Tally {
    fn zero() -> Self {
        Self {
            level: [[0.0; MAX_LEVELS]; 6],
            present: [0.0; 6],
        }
    }
    fn add(mut self, other: Self) -> Self {
        for f in 0..6 {
            for l in 0..MAX_LEVELS {
                self.level[f][l] += other.level[f][l];
            }
            self.present[f] += other.present[f];
        }
        self
    }
}

/// The summed weight of a pair in bits under `m`.
fn weight(log_m: &[[f64; MAX_LEVELS]; 6], pair: &EmPair) -> f64 {
    let mut w = -pair.log_u;
    for (f, &l) in pair.levels.iter().enumerate() {
        if l != NEUTRAL {
            w += log_m[f][l as usize];
        }
    }
    w
}

/// Estimates `m` of `model` from `data`, in place.
pub fn estimate(model: &mut Model, data: &EmData) -> ModelSummary {
    let stride = data.rows.len().div_ceil(MAX_ROWS).max(1);
    let rows: Vec<Range<usize>> = data.rows.iter().step_by(stride).cloned().collect();
    let pairs: usize = rows.iter().map(|r| r.len()).sum();
    let mut iterations = 0;
    let mut converged = rows.is_empty();
    while !converged && iterations < MAX_ITERATIONS {
        iterations += 1;
        let mut log_m = [[0.0; MAX_LEVELS]; 6];
        for (log_m, m) in log_m.iter_mut().zip(&model.m) {
            for (lm, m) in log_m.iter_mut().zip(m) {
                *lm = m.max(1e-300).log2();
            }
        }
        let a = model.pair_prior();
        let tally = rows
            .par_iter()
            .fold(Tally::zero, |mut t, range| {
                let row = &data.pairs[range.clone()];
                // Each pair's weight, and each field's part of it.
                let mut parts: Vec<[f64; 6]> = Vec::with_capacity(row.len());
                let mut weights: Vec<f64> = Vec::with_capacity(row.len());
                for p in row {
                    let mut part = [0.0; 6];
                    for (f, &l) in p.levels.iter().enumerate() {
                        if l != NEUTRAL {
                            part[f] = log_m[f][l as usize];
                        }
                    }
                    parts.push(part);
                    weights.push(weight(&log_m, p));
                }
                // Pair `j`'s posterior with its own field `f` left out,
                // against the other candidates of the row at their full
                // weight, for `f`'s own tally.
                let full: Vec<f64> = weights.iter().map(|w| a * w.exp2()).collect();
                let total: f64 = full.iter().sum();
                for f in 0..6 {
                    for (((p, part), w), full) in row.iter().zip(&parts).zip(&weights).zip(&full) {
                        let l = p.levels[f];
                        if l == NEUTRAL {
                            continue;
                        }
                        let own = part[f] - p.log_u_of[f];
                        let odds = a * (w - own).exp2();
                        let post = odds / (1.0 + total - full + odds);
                        t.level[f][l as usize] += post;
                        t.present[f] += post;
                    }
                }
                t
            })
            .reduce(Tally::zero, Tally::add);
        let mut moved: f64 = 0.0;
        for (f, levels) in LEVELS.iter().enumerate() {
            for l in 0..levels.len() {
                let m = ((tally.level[f][l] + PRIOR_PAIRS * model::prior::M[f][l])
                    / (tally.present[f] + PRIOR_PAIRS))
                    .max(M_FLOOR);
                moved = moved.max((m - model.m[f][l]).abs());
                model.m[f][l] = m;
            }
        }
        converged = moved < TOLERANCE;
    }
    summary(model, rows.len(), pairs, iterations, converged)
}

fn summary(
    model: &Model,
    rows: usize,
    pairs: usize,
    iterations: usize,
    converged: bool,
) -> ModelSummary {
    let mut parameters = Vec::new();
    for (f, levels) in LEVELS.iter().enumerate() {
        for (l, level) in levels.iter().enumerate() {
            let (m, u) = (model.m[f][l], model.u[f][l]);
            parameters.push(Parameter {
                field: Field::ALL[f].name().to_string(),
                level: level.as_str().to_string(),
                m,
                u,
                bits: (m / u.max(1e-300)).log2(),
            });
        }
    }
    ModelSummary {
        rows,
        pairs,
        iterations,
        converged,
        in_index: model.in_index,
        parameters,
    }
}
