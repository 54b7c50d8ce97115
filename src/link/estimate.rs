//! Estimating `m` by expectation-maximisation over the candidate pairs
//! (Fellegi and Sunter 1969; Winkler 1988; as in Splink), with `u` held at
//! the values measured on the index (see `model`), the share of rows
//! whose person is in the index, and a third class: the lookalike.
//!
//! **Three classes.** Each cohort row has at most one true person. Of a
//! row with candidates `1..K` drawn from an index of `N` people, one of
//! three things is true:
//!
//! - `M_j`, the row's person is candidate `j` (prior `ρ / N` for each of
//!   the `N` people);
//! - `R_j`, the row's person is absent from the index but is a lookalike
//!   of candidate `j`, a relative or a namesake (prior `(1 − ρ) τ / N`);
//! - `U`, the row's person is absent and resembles nobody: every candidate
//!   is a random stranger (prior `(1 − ρ)(1 − τ)`).
//!
//! Given `M_j` pair `j` shows its levels with probability `m` and every
//! other pair of the row with probability `u`; given `R_j` pair `j` shows
//! them with probability `m_R` (the lookalike's own levels) and the others
//! `u`; given `U` every pair `u`. The likelihood of the row under each is
//! therefore the all-strangers likelihood `Π_k u_k` times `2^w_j`, `2^r_j`
//! and `1` respectively, with `w_j = log2(m / u)` and `r_j = log2(m_R / u)`
//! the pair's summed weights in bits. Bayes' rule, divided through by the
//! prior of `U`:
//!
//! ```text
//! p_j = a · 2^w_j / D,   q_j = c · 2^r_j / D,   D = 1 + a · Σ_k 2^w_k + c · Σ_k 2^r_k,
//! a = ρ / ((1 − ρ)(1 − τ) N),   c = τ / ((1 − τ) N)
//! ```
//!
//! where `p_j` is the chance that candidate `j` is the row's person (the
//! posterior used for outcomes, ranking and the review bar, see
//! `candidates::queue_entry`), `q_j` that the row's person is absent and
//! `j`'s lookalike, and `1 / D` that they are absent and a stranger to
//! all. With `τ = 0` this is the two-class posterior of Fellegi and
//! Sunter normalised within the row. People blocking did not propose are
//! taken to be unlikely under `M` and `R` alike (blocking finds the true
//! person for 99.5% or more of rows on the outside bench). Normalising
//! within the row is what keeps the estimate honest on blocked pairs: the
//! strangers a block proposes agree on its key by construction, and a
//! pairwise posterior would take many of them for matches.
//!
//! Why the third class: without it an absent person's nearest candidate
//! is taken to be a random stranger, so someone sharing a surname and a
//! date of birth with a person of the index (a twin, a cousin, a
//! generator's lookalike) weighs like that person with a new forename and
//! is queued. With it, such a pair is weighed against `m_R`, which the
//! estimate learns from the lookalikes themselves: the match posterior
//! falls where the pattern is commoner among lookalikes than among the
//! same person's errors. Ranking within a row is unchanged (`p_j` orders
//! as `w_j`); what changes is how likely the best candidate is, and so
//! what is queued, and the `m` the match class learns (lookalikes no
//! longer count as half-matches).
//!
//! **Lookalike M-step** ([`lookalike_step`]). A lookalike is another
//! person who *shares* some values with the candidate (a relative's
//! surname and address, a namesake's names, someone else's birthday) and
//! is a stranger on the rest: nobody's relative carries a typo or a
//! nickname of the candidate's forename. So `m_R` is not free. For NHS
//! number, forename and surname it is `σ_f` at the exact level plus
//! `(1 − σ_f) u_f` at every level, `σ_f` the share of lookalikes sharing
//! the value, estimated from the `q`-weighted pairs as the excess of the
//! exact level over what strangers show. Date of birth and postcode are
//! joint (`Model::m_look_joint`): a free postcode distribution for
//! lookalikes sharing the date and one for those who do not (whose date
//! is then a stranger's), since the kind of lookalike sets both at once
//! (relatives live with the candidate and were born on other dates;
//! birthday-sharers live elsewhere). None shares both the date of birth
//! and the full postcode: that would be a twin at home nobody registered,
//! and twins are registered together, at birth. Gender is free (a
//! relative is of either sex). Each is shrunk towards
//! [`model::prior::LOOKALIKE_M`] by [`PRIOR_PAIRS`] and floored at
//! [`M_FLOOR`]. `τ` is `Σ_rows Σ_j q_j` over `Σ_rows (1 − Σ_j p_j)`, the
//! lookalikes among the rows' expected absent people, shrunk towards
//! [`model::prior::LOOKALIKE`] by [`PRIOR_ROWS`] and kept within
//! [`TAU_FLOOR`] and [`TAU_CEILING`].
//!
//! Why so constrained (measured on the outside bench at 2M × 200k): with
//! a free `m_R` (surname and postcode joint, or date of birth and postcode
//! joint) the class learned the nicknames, the same person at home under
//! another forename, and took them for lookalikes: `m_R` of an exact date
//! of birth at the full postcode rose to 0.74, `m(forename disagrees)`
//! fell to the floor, and the nicknames ranked first fell from 99.8% to
//! 40.9%. Sharing-or-stranger alone left them at 71.1% (a twin at home
//! is that very pattern); with no twin at home, 99.8%.
//!
//! **Class swap.** A mixture's classes are only named by where they start
//! (`m` at the match prior, `m_R` at the lookalike's) and EM could let
//! them trade places. In every M-step the share of lookalikes agreeing
//! exactly on the NHS number, the date of birth and the forename is held
//! at most at `m` of the same level (for the date of birth, the postcode
//! rows of the sharers scaled down and the others up):
//! a lookalike is another person, and agrees with the candidate on those
//! at most as often as the candidate's own records do. So a pair agreeing
//! on all three is never likelier to be a lookalike than a match on those
//! fields, and the match class stays the one where they agree.
//!
//! E-step: `p_j` and `q_j` of every pair under the current `m` and
//! `m_R`. M-step: `m` of each level of a field is the share of the pairs at that level, each pair
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
    self, Joint, Model, NhsGroup, DOB, DOB_LEVELS, LEVELS, MAX_LEVELS, POSTCODE, POSTCODE_LEVELS,
    SURNAME, SURNAME_LEVELS,
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
/// The least and the most the lookalike share `τ` may be (`τ = 1` would
/// leave no absent person to be a stranger).
pub const TAU_FLOOR: f64 = 0.01;
pub const TAU_CEILING: f64 = 0.99;
/// Fields whose exact agreement the lookalike class may not claim more
/// often than the match class (see [`lookalike_step`]): NHS number, date
/// of birth, forename.
const GUARDED: [usize; 3] = [model::NHS, model::DOB, model::FORENAME];
const GENDER: usize = 2;
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
    /// `τ`: the estimated share of people absent from the index who are
    /// the lookalike of someone in it.
    #[serde(default)]
    pub lookalike: f64,
    /// The lookalike class's `m_R` per field and level (`m` holds `m_R`,
    /// `bits` is `log2(m_R / u)`), then date of birth and postcode jointly
    /// (`date_of_birth+postcode`).
    #[serde(default)]
    pub lookalike_parameters: Vec<Parameter>,
}

/// One class's weighted level counts.
#[derive(Clone)]
struct ClassTally {
    level: [[f64; MAX_LEVELS]; 6],
    present: [f64; 6],
    joint: Joint,
    joint_present: f64,
}

impl ClassTally {
    fn zero() -> Self {
        Self {
            level: [[0.0; MAX_LEVELS]; 6],
            present: [0.0; 6],
            joint: [[0.0; POSTCODE_LEVELS]; SURNAME_LEVELS],
            joint_present: 0.0,
        }
    }
    fn add(&mut self, other: &Self) {
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
    }
    /// A pair's levels, each weighted by `weight`.
    fn levels(&mut self, pair: &EmPair, weight: f64) {
        for (f, &l) in pair.levels.iter().enumerate() {
            if l != NEUTRAL {
                self.level[f][l as usize] += weight;
                self.present[f] += weight;
            }
        }
    }
    fn joint(&mut self, s: usize, p: usize, weight: f64) {
        self.joint[s][p] += weight;
        self.joint_present += weight;
    }
}

#[derive(Clone)]
struct Tally {
    /// The match class, weighted by `p_j`.
    matched: ClassTally,
    /// The lookalike class, weighted by `q_j`.
    look: ClassTally,
    /// Per group, Σ of the chance that the row's person is among its
    /// candidates.
    present_rows: [f64; NhsGroup::COUNT],
    /// Σ over rows of the chance that the row's person is absent, and of
    /// the chance that they are absent and a candidate's lookalike.
    absent_rows: f64,
    lookalike_rows: f64,
}

impl Tally {
    fn zero() -> Self {
        Self {
            matched: ClassTally::zero(),
            look: ClassTally::zero(),
            present_rows: [0.0; NhsGroup::COUNT],
            absent_rows: 0.0,
            lookalike_rows: 0.0,
        }
    }
    fn add(mut self, other: Self) -> Self {
        self.matched.add(&other.matched);
        self.look.add(&other.look);
        for g in 0..NhsGroup::COUNT {
            self.present_rows[g] += other.present_rows[g];
        }
        self.absent_rows += other.absent_rows;
        self.lookalike_rows += other.lookalike_rows;
        self
    }
}

/// `log2 m` of every level, and of every joint level of field `first`
/// with postcode, of one class (the match class: surname and postcode;
/// the lookalike class: date of birth and postcode).
struct LogM {
    field: [[f64; MAX_LEVELS]; 6],
    joint: Joint,
    first: usize,
}

impl LogM {
    fn of(m: &[Vec<f64>; 6], m_joint: &Joint, first: usize) -> Self {
        let mut field = [[0.0; MAX_LEVELS]; 6];
        for (log_m, m) in field.iter_mut().zip(m) {
            for (lm, m) in log_m.iter_mut().zip(m) {
                *lm = m.max(1e-300).log2();
            }
        }
        let mut joint = [[0.0; POSTCODE_LEVELS]; SURNAME_LEVELS];
        for (lr, mr) in joint.iter_mut().zip(m_joint) {
            for (lm, m) in lr.iter_mut().zip(mr) {
                *lm = m.max(1e-300).log2();
            }
        }
        Self {
            field,
            joint,
            first,
        }
    }

    /// The summed weight of a pair in bits: `first` and postcode by their
    /// joint `m` when both are compared.
    fn weight(&self, pair: &EmPair) -> f64 {
        self.weight_of(&pair.levels, pair.log_u)
    }

    fn weight_of(&self, l: &[u8; 6], log_u: f64) -> f64 {
        let first = self.first;
        let mut w = -log_u;
        for (f, &l) in l.iter().enumerate() {
            if l != NEUTRAL && f != first && f != POSTCODE {
                w += self.field[f][l as usize];
            }
        }
        w + match (l[first], l[POSTCODE]) {
            (NEUTRAL, NEUTRAL) => 0.0,
            (s, NEUTRAL) => self.field[first][s as usize],
            (NEUTRAL, p) => self.field[POSTCODE][p as usize],
            (s, p) => self.joint[s as usize][p as usize],
        }
    }

    /// The weight of a pair with surname and postcode left out.
    fn weight_without_surname_postcode(&self, pair: &EmPair) -> f64 {
        let mut levels = pair.levels;
        levels[SURNAME] = NEUTRAL;
        levels[POSTCODE] = NEUTRAL;
        self.weight_of(&levels, pair.log_u - pair.log_u_joint)
    }
}

/// One M-step of a class's `m`: each level's share of the weighted
/// pairs, shrunk towards `prior` by [`PRIOR_PAIRS`] and floored; field
/// `first` and postcode jointly. Returns the largest change.
fn m_step(
    m: &mut [Vec<f64>; 6],
    m_joint: &mut Joint,
    first: usize,
    tally: &ClassTally,
    prior: &[&[f64]; 6],
    joint_prior: &Joint,
) -> f64 {
    let mut moved: f64 = 0.0;
    for (f, levels) in LEVELS.iter().enumerate() {
        if f == first || f == POSTCODE {
            continue;
        }
        for l in 0..levels.len() {
            let v = ((tally.level[f][l] + PRIOR_PAIRS * prior[f][l])
                / (tally.present[f] + PRIOR_PAIRS))
                .max(M_FLOOR);
            moved = moved.max((v - m[f][l]).abs());
            m[f][l] = v;
        }
    }
    for ((cells, prior), model_cells) in tally
        .joint
        .iter()
        .zip(joint_prior)
        .zip(m_joint.iter_mut())
        .take(LEVELS[first].len())
    {
        for ((cell, prior), model_cell) in cells.iter().zip(prior).zip(model_cells.iter_mut()) {
            let v =
                ((cell + PRIOR_PAIRS * prior) / (tally.joint_present + PRIOR_PAIRS)).max(M_FLOOR);
            moved = moved.max((v - *model_cell).abs());
            *model_cell = v;
        }
    }
    moved
}

/// The lookalike M-step. A lookalike is another person who *shares* some
/// values with the candidate (a relative's surname and address, a
/// namesake's names, a birthday) and is a stranger on the rest: no
/// lookalike carries a typo or a nickname of the candidate's value. So
/// for NHS number, forename and surname `m_R` is `σ` at the exact level
/// plus `(1 − σ) u` at every level, with `σ` the share of lookalikes
/// sharing that value (estimated as the excess of the exact level over
/// what strangers give); date of birth and postcode jointly, a free
/// postcode distribution for lookalikes sharing the date and one for
/// those not, the date being a stranger's in the second case, and none
/// sharing both the date and the full postcode; gender free
/// (a relative is of either sex). Shrunk towards the prior by
/// [`PRIOR_PAIRS`] and floored.
///
/// The guard against a class swap: a lookalike agrees exactly on the NHS
/// number, the date of birth and the forename at most as often as the
/// person does, so each `σ` is held at most at `m` of the exact level.
/// Returns the largest change.
fn lookalike_step(model: &mut Model, t: &ClassTally, joint_prior: &Joint) -> f64 {
    let mut moved: f64 = 0.0;
    let prior = &model::prior::LOOKALIKE_M;
    for (f, levels) in LEVELS.iter().enumerate() {
        if f == DOB || f == POSTCODE {
            continue;
        }
        let n = t.present[f] + PRIOR_PAIRS;
        let share = |l: usize| (t.level[f][l] + PRIOR_PAIRS * prior[f][l]) / n;
        let new: Vec<f64> = if f == GENDER {
            (0..levels.len()).map(share).collect()
        } else {
            let u = &model.u[f];
            let sigma = ((share(0) - u[0]) / (1.0 - u[0]).max(1e-12))
                .clamp(0.0, 1.0)
                .min(if GUARDED.contains(&f) {
                    model.m[f][0]
                } else {
                    1.0
                });
            (0..levels.len())
                .map(|l| if l == 0 { sigma } else { 0.0 } + (1.0 - sigma) * u[l])
                .collect()
        };
        for (l, v) in new.into_iter().enumerate() {
            let v = v.max(M_FLOOR);
            moved = moved.max((v - model.m_look[f][l]).abs());
            model.m_look[f][l] = v;
        }
    }
    // Date of birth with postcode: `n[d][p]` ≈ `[d = 0] J1[p] + u_d J0[p]`.
    let n_total = t.joint_present + PRIOR_PAIRS;
    let n = |d: usize, p: usize| (t.joint[d][p] + PRIOR_PAIRS * joint_prior[d][p]) / n_total;
    let u_dob = &model.u[DOB];
    let u_not_exact: f64 = u_dob[1..DOB_LEVELS].iter().sum();
    let mut not_shared = [0.0; POSTCODE_LEVELS];
    let mut shared = [0.0; POSTCODE_LEVELS];
    for p in 0..POSTCODE_LEVELS {
        let rest: f64 = (1..DOB_LEVELS).map(|d| n(d, p)).sum();
        not_shared[p] = rest / u_not_exact.max(1e-12);
        shared[p] = (n(0, p) - u_dob[0] * not_shared[p]).max(0.0);
    }
    // No lookalike shares both the date of birth and the address: that
    // would be a twin at home nobody registered, and twins are registered
    // together, at birth. (The same person under a nickname shows just
    // that pattern; left free, the class learns nicknames.)
    shared[0] = 0.0;
    let total: f64 = shared.iter().chain(&not_shared).sum();
    let mut shared_total = 0.0;
    for p in 0..POSTCODE_LEVELS {
        shared[p] /= total.max(1e-12);
        not_shared[p] /= total.max(1e-12);
        shared_total += shared[p];
    }
    // The guard on the date of birth.
    let cap = model.m[DOB][0];
    if shared_total > cap {
        let (keep, grow) = (
            cap / shared_total,
            (1.0 - cap) / (1.0 - shared_total).max(1e-12),
        );
        for p in 0..POSTCODE_LEVELS {
            shared[p] *= keep;
            not_shared[p] *= grow;
        }
    }
    for (d, (row, u_d)) in model
        .m_look_joint
        .iter_mut()
        .zip(u_dob)
        .enumerate()
        .take(DOB_LEVELS)
    {
        for (p, cell) in row.iter_mut().enumerate() {
            let v = (if d == 0 { shared[p] } else { 0.0 } + u_d * not_shared[p]).max(M_FLOOR);
            moved = moved.max((v - *cell).abs());
            *cell = v;
        }
    }
    moved
}

/// Estimates `m`, `m_R`, `ρ` and `τ` of `model` from `data`, in place.
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
    let look_joint_prior = model::prior::lookalike_joint();
    while !converged && iterations < MAX_ITERATIONS {
        iterations += 1;
        let log_m = LogM::of(&model.m, &model.m_joint, SURNAME);
        let log_r = LogM::of(&model.m_look, &model.m_look_joint, DOB);
        let c = model.lookalike_prior();
        let tally = rows
            .par_iter()
            .fold(Tally::zero, |mut t, (range, group)| {
                let row = &data.pairs[range.clone()];
                let a = model.pair_prior(*group);
                let odds: Vec<f64> = row.iter().map(|p| a * log_m.weight(p).exp2()).collect();
                let looks: Vec<f64> = row.iter().map(|p| c * log_r.weight(p).exp2()).collect();
                let total: f64 = odds.iter().sum();
                let look_total: f64 = looks.iter().sum();
                let denominator = 1.0 + total + look_total;
                t.present_rows[*group as usize] += total / denominator;
                t.absent_rows += (1.0 + look_total) / denominator;
                t.lookalike_rows += look_total / denominator;
                for ((p, odds), look) in row.iter().zip(&odds).zip(&looks) {
                    let post = odds / denominator;
                    let q = look / denominator;
                    let (s, d, pc) = (p.levels[SURNAME], p.levels[DOB], p.levels[POSTCODE]);
                    if s != NEUTRAL && pc != NEUTRAL {
                        let (s, pc) = (s as usize, pc as usize);
                        // Surname and postcode learn from the posterior the
                        // other fields give the pair (its match and its
                        // lookalike term both without them), against the
                        // row's other candidates at their full weight.
                        let own = log_m.joint[s][pc] - p.log_u_joint;
                        let without = odds * (-own).exp2();
                        let without_look = c * log_r.weight_without_surname_postcode(p).exp2();
                        let post = without / (denominator - odds - look + without + without_look);
                        t.matched.joint(s, pc, post);
                    }
                    if d != NEUTRAL && pc != NEUTRAL {
                        t.look.joint(d as usize, pc as usize, q);
                    }
                    t.matched.levels(p, post);
                    t.look.levels(p, q);
                }
                t
            })
            .reduce(Tally::zero, Tally::add);
        let mut moved = m_step(
            &mut model.m,
            &mut model.m_joint,
            SURNAME,
            &tally.matched,
            &model::prior::M,
            &joint_prior,
        );
        moved = moved.max(lookalike_step(model, &tally.look, &look_joint_prior));
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
        let tau = ((tally.lookalike_rows + PRIOR_ROWS * model::prior::LOOKALIKE)
            / (tally.absent_rows + PRIOR_ROWS))
            .clamp(TAU_FLOOR, TAU_CEILING);
        moved = moved.max((tau - model.lookalike).abs());
        model.lookalike = tau;
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
    let parameters = class_parameters(model, &model.m, &model.m_joint, SURNAME);
    let lookalike_parameters = class_parameters(model, &model.m_look, &model.m_look_joint, DOB);
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
        lookalike: model.lookalike,
        lookalike_parameters,
    }
}

/// One class's `m` with `u` and bits, per field and level, then field
/// `first` and postcode jointly (`surname+postcode` for the match class,
/// `date_of_birth+postcode` for the lookalike).
fn class_parameters(
    model: &Model,
    m_of: &[Vec<f64>; 6],
    joint: &Joint,
    first: usize,
) -> Vec<Parameter> {
    let mut parameters = Vec::new();
    for (f, levels) in LEVELS.iter().enumerate() {
        for (l, level) in levels.iter().enumerate() {
            let (m, u) = (m_of[f][l], model.u[f][l]);
            parameters.push(Parameter {
                field: Field::ALL[f].name().to_string(),
                level: level.as_str().to_string(),
                m,
                u,
                bits: (m / u.max(1e-300)).log2(),
            });
        }
    }
    for (s, s_level) in LEVELS[first].iter().enumerate() {
        for (p, p_level) in LEVELS[POSTCODE].iter().enumerate() {
            let m = joint[s][p];
            let u = model.u[first][s] * model.u[POSTCODE][p];
            parameters.push(Parameter {
                field: format!("{}+postcode", Field::ALL[first].name()),
                level: format!("{}+{}", s_level.as_str(), p_level.as_str()),
                m,
                u,
                bits: (m / u.max(1e-300)).log2(),
            });
        }
    }
    parameters
}
