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
//! E-step: `p_j` of every pair under the current `m`. M-step: `m` of each
//! level of a field is the share of the pairs at that level, each pair
//! weighted by `p_j` (pairs where the field is missing do not count):
//! plain expectation-maximisation, the maximum-likelihood estimate of the
//! model. Each field's `m` is then shrunk towards the prior by
//! [`PRIOR_PAIRS`] pseudo-pairs and floored at [`M_FLOOR`], so that a level
//! this cohort never shows stays possible.
//!
//! **Surname and postcode are estimated jointly** (`Model::m_joint`, one
//! `m` per pair of levels, shrunk towards the product of their priors):
//! they change together when someone marries and moves, and under
//! independence a new surname with a new postcode costs the product of
//! two rare events, so plain EM learns that the married who moved are
//! strangers and drives `m(surname disagrees)` towards 0. The joint level
//! is what lets the data say how often the two change together; their
//! margins (`Model::m`) are derived from it.
//!
//! Why plain EM and not each field learned with its own weight left out:
//! a cohort holds people absent from the index who resemble someone in it
//! (a namesake elsewhere, a relative sharing a surname and a date of
//! birth). Set aside the date of birth and a namesake looks like the
//! person, so a leave-one-out estimate learns `m(date of birth disagrees)`
//! from the namesakes themselves and then queues them (measured on the
//! outside bench: 1.0% instead of the floor). With every field in, a pair
//! that disagrees on several fields counts for what all of them say.
//!
//! `ρ` is held at its prior
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
use super::model::{
    self, Joint, Model, LEVELS, MAX_LEVELS, POSTCODE, POSTCODE_LEVELS, SURNAME, SURNAME_LEVELS,
};

/// Pseudo-pairs of prior weight on every field's `m`.
pub const PRIOR_PAIRS: f64 = 50.0;
/// The least `m` of any level.
pub const M_FLOOR: f64 = 1e-4;
pub const TOLERANCE: f64 = 1e-5;
pub const MAX_ITERATIONS: usize = 60;
/// Pseudo-rows of prior weight on the share in the index of rows whose
/// NHS number nobody holds.
pub const PRIOR_ROWS: f64 = 20.0;
/// The least that share may be.
pub const RHO_FLOOR: f64 = 0.01;
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
    /// `log2 u` of surname and postcode when both are compared, else 0.
    pub log_u_joint: f64,
}

/// The pairs of the rows taking part, grouped by row.
#[derive(Debug, Default)]
pub struct EmData {
    pub pairs: Vec<EmPair>,
    pub rows: Vec<Range<usize>>,
    /// Per row: its valid NHS number is held by nobody in the index.
    pub unheld: Vec<bool>,
}

impl EmData {
    pub fn push_row(&mut self, pairs: impl IntoIterator<Item = EmPair>, unheld: bool) {
        let start = self.pairs.len();
        self.pairs.extend(pairs);
        // A row whose number nobody holds counts even without a
        // candidate: it is evidence on the share of such rows in the index.
        if self.pairs.len() > start || unheld {
            self.rows.push(start..self.pairs.len());
            self.unheld.push(unheld);
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
    /// The same share among rows whose valid NHS number nobody in the
    /// index holds (estimated), and how many rows those were.
    #[serde(default)]
    pub in_index_unheld: f64,
    #[serde(default)]
    pub unheld_rows: usize,
    pub parameters: Vec<Parameter>,
}

#[derive(Clone)]
struct Tally {
    level: [[f64; MAX_LEVELS]; 6],
    present: [f64; 6],
    joint: Joint,
    joint_present: f64,
    /// Σ over unheld rows of the chance that the row's person is among
    /// its candidates.
    unheld_present: f64,
}

impl Tally {
    fn zero() -> Self {
        Self {
            level: [[0.0; MAX_LEVELS]; 6],
            present: [0.0; 6],
            joint: [[0.0; POSTCODE_LEVELS]; SURNAME_LEVELS],
            joint_present: 0.0,
            unheld_present: 0.0,
        }
    }
    fn add(mut self, other: Self) -> Self {
        for f in 0..6 {
            for l in 0..MAX_LEVELS {
                self.level[f][l] += other.level[f][l];
            }
            self.present[f] += other.present[f];
        }
        for s in 0..SURNAME_LEVELS {
            for p in 0..POSTCODE_LEVELS {
                self.joint[s][p] += other.joint[s][p];
            }
        }
        self.joint_present += other.joint_present;
        self.unheld_present += other.unheld_present;
        self
    }
}

/// `log2 m` of every level, and of every joint surname-postcode level.
struct LogM {
    field: [[f64; MAX_LEVELS]; 6],
    joint: Joint,
}

impl LogM {
    fn of(model: &Model) -> Self {
        let mut field = [[0.0; MAX_LEVELS]; 6];
        for (log_m, m) in field.iter_mut().zip(&model.m) {
            for (lm, m) in log_m.iter_mut().zip(m) {
                *lm = m.max(1e-300).log2();
            }
        }
        let mut joint = [[0.0; POSTCODE_LEVELS]; SURNAME_LEVELS];
        for (lr, mr) in joint.iter_mut().zip(&model.m_joint) {
            for (lm, m) in lr.iter_mut().zip(mr) {
                *lm = m.max(1e-300).log2();
            }
        }
        Self { field, joint }
    }

    /// The summed weight of a pair in bits: surname and postcode by their
    /// joint `m` when both are compared.
    fn weight(&self, pair: &EmPair) -> f64 {
        let l = &pair.levels;
        let mut w = -pair.log_u;
        for (f, &l) in l.iter().enumerate() {
            if l != NEUTRAL && f != SURNAME && f != POSTCODE {
                w += self.field[f][l as usize];
            }
        }
        w + match (l[SURNAME], l[POSTCODE]) {
            (NEUTRAL, NEUTRAL) => 0.0,
            (s, NEUTRAL) => self.field[SURNAME][s as usize],
            (NEUTRAL, p) => self.field[POSTCODE][p as usize],
            (s, p) => self.joint[s as usize][p as usize],
        }
    }
}

/// Estimates `m` of `model` from `data`, in place.
pub fn estimate(model: &mut Model, data: &EmData) -> ModelSummary {
    let stride = data.rows.len().div_ceil(MAX_ROWS).max(1);
    let rows: Vec<(Range<usize>, bool)> = data
        .rows
        .iter()
        .cloned()
        .zip(data.unheld.iter().copied())
        .step_by(stride)
        .collect();
    let unheld_rows = rows.iter().filter(|(_, u)| *u).count();
    let pairs: usize = rows.iter().map(|(r, _)| r.len()).sum();
    let mut iterations = 0;
    let mut converged = rows.is_empty();
    let joint_prior = model::prior::joint();
    while !converged && iterations < MAX_ITERATIONS {
        iterations += 1;
        let log_m = LogM::of(model);
        let tally = rows
            .par_iter()
            .fold(Tally::zero, |mut t, (range, unheld)| {
                let row = &data.pairs[range.clone()];
                let a = model.pair_prior(*unheld);
                let odds: Vec<f64> = row.iter().map(|p| a * log_m.weight(p).exp2()).collect();
                let total: f64 = odds.iter().sum();
                if *unheld {
                    t.unheld_present += total / (1.0 + total);
                }
                for (p, odds) in row.iter().zip(&odds) {
                    let post = odds / (1.0 + total);
                    let (s, pc) = (p.levels[SURNAME], p.levels[POSTCODE]);
                    if s != NEUTRAL && pc != NEUTRAL {
                        // Surname and postcode learn from the posterior the
                        // other fields give the pair, against the row's
                        // other candidates at their full weight.
                        let own = log_m.joint[s as usize][pc as usize] - p.log_u_joint;
                        let without = odds * (-own).exp2();
                        let post = without / (1.0 + total - odds + without);
                        t.joint[s as usize][pc as usize] += post;
                        t.joint_present += post;
                    }
                    for (f, &l) in p.levels.iter().enumerate() {
                        if l != NEUTRAL {
                            t.level[f][l as usize] += post;
                            t.present[f] += post;
                        }
                    }
                }
                t
            })
            .reduce(Tally::zero, Tally::add);
        let mut moved: f64 = 0.0;
        for (f, levels) in LEVELS.iter().enumerate() {
            if f == SURNAME || f == POSTCODE {
                continue;
            }
            for l in 0..levels.len() {
                let m = ((tally.level[f][l] + PRIOR_PAIRS * model::prior::M[f][l])
                    / (tally.present[f] + PRIOR_PAIRS))
                    .max(M_FLOOR);
                moved = moved.max((m - model.m[f][l]).abs());
                model.m[f][l] = m;
            }
        }
        for s in 0..SURNAME_LEVELS {
            for p in 0..POSTCODE_LEVELS {
                let m = ((tally.joint[s][p] + PRIOR_PAIRS * joint_prior[s][p])
                    / (tally.joint_present + PRIOR_PAIRS))
                    .max(M_FLOOR);
                moved = moved.max((m - model.m_joint[s][p]).abs());
                model.m_joint[s][p] = m;
            }
        }
        model.set_margins();
        let rho = ((tally.unheld_present + PRIOR_ROWS * model::prior::IN_INDEX)
            / (unheld_rows as f64 + PRIOR_ROWS))
            .clamp(RHO_FLOOR, model::prior::IN_INDEX);
        moved = moved.max((rho - model.in_index_unheld).abs());
        model.in_index_unheld = rho;
        converged = moved < TOLERANCE;
    }
    summary(model, unheld_rows, rows.len(), pairs, iterations, converged)
}

fn summary(
    model: &Model,
    unheld_rows: usize,
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
    for (s, s_level) in LEVELS[SURNAME].iter().enumerate() {
        for (p, p_level) in LEVELS[POSTCODE].iter().enumerate() {
            let m = model.m_joint[s][p];
            let u = model.u[SURNAME][s] * model.u[POSTCODE][p];
            parameters.push(Parameter {
                field: "surname+postcode".to_string(),
                level: format!("{}+{}", s_level.as_str(), p_level.as_str()),
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
        in_index_unheld: model.in_index_unheld,
        unheld_rows,
        parameters,
    }
}
