//! Estimating `m` by expectation-maximisation over the candidate pairs
//! (Fellegi and Sunter 1969; Winkler 1988; as in Splink), with `u` held at
//! the values measured on the index (see `model`), and the share of rows
//! whose person is in the index.
//!
//! Each cohort row has at most one true person. Given the weights, the
//! chance that candidate `j` of a row is its person is
//!
//! ```text
//! p_j = a · 2^w_j / (1 + a · Σ_k 2^w_k),    a = ρ / ((1 − ρ) N)
//! ```
//!
//! where `w_j` is the pair's summed weight in bits, `N` the people of the
//! index and `ρ` the share of rows whose person is in the index: the prior
//! odds that the row's person is in the index, `ρ / (1 − ρ)`, shared among
//! its `N` people, against the `1` of the person being absent (people
//! blocking did not propose are taken to be unlikely: blocking finds the
//! true person for 99.5% or more of rows on the outside bench).
//! Normalising within the row is what keeps the estimate honest on blocked
//! pairs: the strangers a block proposes agree on its key by construction,
//! and a pairwise posterior would take many of them for matches.
//!
//! E-step: `p_j` of every pair under the current `m`. M-step: `m` of each
//! level of a field is the share of the pairs at that level, each pair
//! weighted by `p_j` (pairs where the field is missing do not count):
//! plain expectation-maximisation. Each field's `m` is then shrunk towards
//! the prior by [`PRIOR_PAIRS`] pseudo-pairs and floored at [`M_FLOOR`], so
//! that a level this cohort never shows stays possible.
//!
//! **Surname and postcode are estimated jointly** (`Model::m_joint`, one
//! `m` per pair of levels, shrunk towards the product of their priors):
//! they change together when someone marries and moves, and under
//! independence a new surname with a new postcode costs the product of
//! two rare events. The joint `m` learns from each pair's posterior with
//! surname and postcode left out (against the row's other candidates at
//! their full weight): with them in, the prior's rarity of the married
//! pattern keeps the married who moved from looking like matches and
//! plain EM confirms it, driving `m(new surname, new postcode)` to the
//! floor (measured on the outside bench: 0.0009, the married who moved
//! ranked first for 86%; 0.022 and 98% this way). Date of birth, forename
//! and gender say those pairs are matches. Their margins (`Model::m`) are
//! derived from the joint.
//!
//! Why the other fields learn from the full posterior, not each with its
//! own weight left out: a cohort holds people absent from the index who
//! resemble someone in it (a namesake elsewhere, someone sharing a surname
//! and a date of birth). Set the date of birth aside and a namesake looks
//! like the person, so a leave-one-out estimate learns `m(date of birth
//! disagrees)` from the namesakes themselves (1.0% on the outside bench,
//! where no true pair has it; 0.09% with every field in) and then queues
//! them.
//!
//! **The share in the index**, `ρ`, is estimated per [`NhsGroup`] (what the
//! row's NHS number says) as the mean over its rows of the chance that
//! the row's person is among its candidates (rows without a candidate
//! count, as 0), shrunk towards [`model::prior::IN_INDEX`] by
//! [`PRIOR_ROWS`] pseudo-rows and kept within [`RHO_FLOOR`] and
//! [`RHO_CEILING`]. A valid number nobody in the index holds says the
//! person was probably never registered (0.06 on the outside bench, where
//! those rows are all absent people); a number somebody holds, or one that
//! fails its check digit, says they were (0.999). Iterated until no
//! parameter moves by more than [`TOLERANCE`], at most [`MAX_ITERATIONS`]
//! times.
//! At most [`MAX_ROWS`] rows take part (every k-th, deterministic), which
//! bounds the cost at any scale.

use std::ops::Range;

use rayon::prelude::*;

use super::compare::Field;
use super::model::{
    self, Joint, Model, NhsGroup, LEVELS, MAX_LEVELS, POSTCODE, POSTCODE_LEVELS, SURNAME,
    SURNAME_LEVELS,
};

/// Pseudo-pairs of prior weight on every field's `m`.
pub const PRIOR_PAIRS: f64 = 50.0;
/// The least `m` of any level.
pub const M_FLOOR: f64 = 1e-4;
pub const TOLERANCE: f64 = 1e-5;
pub const MAX_ITERATIONS: usize = 60;
/// Pseudo-rows of prior weight on each group's share in the index.
pub const PRIOR_ROWS: f64 = 5.0;
/// The least and the most that share may be.
pub const RHO_FLOOR: f64 = 0.01;
pub const RHO_CEILING: f64 = 0.999;
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
    /// Per row: what its NHS number says.
    pub groups: Vec<NhsGroup>,
}

impl EmData {
    /// A row and its pairs; a row without a candidate counts too (it is
    /// evidence on the share of rows in the index).
    pub fn push_row(&mut self, pairs: impl IntoIterator<Item = EmPair>, group: NhsGroup) {
        let start = self.pairs.len();
        self.pairs.extend(pairs);
        self.rows.push(start..self.pairs.len());
        self.groups.push(group);
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

/// The share of one group of rows whose person is in the index.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InIndex {
    /// `valid_held`, `valid_not_held`, `fails_check_digit` or `missing`.
    pub nhs_number: String,
    /// Rows of the group in the estimate.
    pub rows: usize,
    pub share: f64,
}

/// What the estimate did, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSummary {
    /// Cohort rows and candidate pairs the estimate used.
    pub rows: usize,
    pub pairs: usize,
    pub iterations: usize,
    pub converged: bool,
    /// The prior share of cohort rows whose person is in the index (the
    /// starting point of each group's estimate).
    pub in_index: f64,
    /// The estimated share of cohort rows whose person is in the index,
    /// by what their NHS number says.
    #[serde(default)]
    pub in_index_by_nhs_number: Vec<InIndex>,
    pub parameters: Vec<Parameter>,
}

#[derive(Clone)]
struct Tally {
    level: [[f64; MAX_LEVELS]; 6],
    present: [f64; 6],
    joint: Joint,
    joint_present: f64,
    /// Per group, Σ of the chance that the row's person is among its
    /// candidates.
    present_rows: [f64; NhsGroup::COUNT],
}

impl Tally {
    fn zero() -> Self {
        Self {
            level: [[0.0; MAX_LEVELS]; 6],
            present: [0.0; 6],
            joint: [[0.0; POSTCODE_LEVELS]; SURNAME_LEVELS],
            joint_present: 0.0,
            present_rows: [0.0; NhsGroup::COUNT],
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
        for g in 0..NhsGroup::COUNT {
            self.present_rows[g] += other.present_rows[g];
        }
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
    let rows: Vec<(Range<usize>, NhsGroup)> = data
        .rows
        .iter()
        .cloned()
        .zip(data.groups.iter().copied())
        .step_by(stride)
        .collect();
    let mut group_rows = [0usize; NhsGroup::COUNT];
    for (_, g) in &rows {
        group_rows[*g as usize] += 1;
    }
    let pairs: usize = rows.iter().map(|(r, _)| r.len()).sum();
    let mut iterations = 0;
    let mut converged = rows.is_empty();
    let joint_prior = model::prior::joint();
    while !converged && iterations < MAX_ITERATIONS {
        iterations += 1;
        let log_m = LogM::of(model);
        let tally = rows
            .par_iter()
            .fold(Tally::zero, |mut t, (range, group)| {
                let row = &data.pairs[range.clone()];
                let a = model.pair_prior(*group);
                let odds: Vec<f64> = row.iter().map(|p| a * log_m.weight(p).exp2()).collect();
                let total: f64 = odds.iter().sum();
                t.present_rows[*group as usize] += total / (1.0 + total);
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
        for ((cells, prior), model_cells) in tally
            .joint
            .iter()
            .zip(&joint_prior)
            .zip(model.m_joint.iter_mut())
        {
            for ((cell, prior), model_cell) in cells.iter().zip(prior).zip(model_cells.iter_mut()) {
                let m = ((cell + PRIOR_PAIRS * prior) / (tally.joint_present + PRIOR_PAIRS))
                    .max(M_FLOOR);
                moved = moved.max((m - *model_cell).abs());
                *model_cell = m;
            }
        }
        model.set_margins();
        for ((present, rows), rho_of) in tally
            .present_rows
            .iter()
            .zip(&group_rows)
            .zip(model.in_index.iter_mut())
        {
            let rho = ((present + PRIOR_ROWS * model::prior::IN_INDEX)
                / (*rows as f64 + PRIOR_ROWS))
                .clamp(RHO_FLOOR, RHO_CEILING);
            moved = moved.max((rho - *rho_of).abs());
            *rho_of = rho;
        }
        converged = moved < TOLERANCE;
    }
    summary(model, group_rows, rows.len(), pairs, iterations, converged)
}

fn summary(
    model: &Model,
    group_rows: [usize; NhsGroup::COUNT],
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
        in_index: model::prior::IN_INDEX,
        in_index_by_nhs_number: NhsGroup::ALL
            .iter()
            .map(|g| InIndex {
                nhs_number: g.as_str().to_string(),
                rows: group_rows[*g as usize],
                share: model.in_index[*g as usize],
            })
            .collect(),
        parameters,
    }
}
