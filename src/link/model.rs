//! The scoring model's parameters: for every level of every field, `m`
//! (how often the same person shows that level) and `u` (how often two
//! different people do), and the weight `log2(m / u)` of the level.
//!
//! `u` is measured on the index at each run: the coincidence of dates of
//! birth, years and each postcode level over all pairs of people (exact
//! sums, see [`Index::coincidences`]); for names and gender, the levels of
//! a fixed-seed random sample of pairs of people; for an exact or swapped
//! name, the share of the index holding that very value (term-frequency
//! adjustment: agreeing on a rare surname says more than on Smith); for an
//! NHS number one edit away, the share of the index holding a number that
//! close to the row's (measured per row).
//!
//! **Surname and date of birth together.** Taking `u` field by field as
//! independent is wrong for one combination a real index is full of:
//! distinct people who share surname and date of birth are mostly twins,
//! who also share the postcode and not the forename. The index says how
//! often (see [`Kin`]): it is grouped by (surname, date of birth), every
//! pair of distinct people in a group is compared on forename and
//! postcode, and the count at each pair of levels is set against what
//! independence predicts (`N'(N' − 1) · u_surname · u_dob · u_forename ·
//! u_postcode`, the model's average `u`s). A pair agreeing exactly on
//! surname and date of birth has its `u` multiplied by the ratio,
//! `(observed + 2) / (expected + 2)` (two pseudo-pairs: with neither
//! observed nor expected pairs the factor is 1): a stranger sharing
//! surname, date of birth and address under another forename is then
//! scored as the twin such a pair usually is, not as a rare coincidence.
//! The counts are exact sums over each value's group, so a default date
//! of birth shared by thousands is counted as the coincidence it is, on
//! both sides of the ratio. A forename or postcode missing on either side
//! takes the ratio summed over the other field's levels. Measured at each
//! run when names are in use; in the run summary
//! (`surname_dob_dependence`).
//!
//! `m` is estimated from the candidate pairs by expectation-maximisation
//! (see `estimate`), starting from, and shrunk towards, the round prior
//! values in [`prior`]. Missing values, gender not known and names not in
//! use are neutral: no level, weight 0.

use polars::prelude::PlHashMap;
use rand::{Rng, SeedableRng};

use super::compare::{self, Field, Level};
use super::index::Index;
use super::LinkError;

/// The levels of each field that carry a weight, in [`Field::ALL`] order
/// (neutral levels have none).
pub const LEVELS: [&[Level]; 6] = [
    &[
        Level::Exact,
        Level::OneEdit,
        Level::Transposition,
        Level::Disagree,
    ],
    &[
        Level::Exact,
        Level::DayMonthSwapped,
        Level::OneComponent,
        Level::YearOnly,
        Level::Disagree,
    ],
    &[Level::Agree, Level::Disagree],
    &[
        Level::Full,
        Level::Sector,
        Level::District,
        Level::Area,
        Level::Disagree,
    ],
    NAME_LEVELS,
    NAME_LEVELS,
];

const NAME_LEVELS: &[Level] = &[
    Level::Exact,
    Level::Swapped,
    Level::Similar92,
    Level::TokenOverlap,
    Level::Similar88,
    Level::Similar70,
    Level::Disagree,
];

/// The most levels of any field.
pub const MAX_LEVELS: usize = 7;

/// Surname and postcode, the two fields estimated jointly (see
/// [`Model::m_joint`]), by their index in [`Field::ALL`].
pub const SURNAME: usize = 5;
pub const POSTCODE: usize = 3;
/// NHS number and forename, by their index in [`Field::ALL`].
pub const NHS: usize = 0;
pub const FORENAME: usize = 4;
/// Levels of surname and of postcode.
pub const SURNAME_LEVELS: usize = NAME_LEVELS.len();
pub const POSTCODE_LEVELS: usize = 5;

/// The joint `m` of surname and postcode, surname level by postcode level.
pub type Joint = [[f64; POSTCODE_LEVELS]; SURNAME_LEVELS];

/// Date of birth, by its index in [`Field::ALL`].
pub const DOB: usize = 1;
/// Levels of the forename, and of the postcode, with a last slot for
/// neutral (missing on either side).
pub const KIN_F: usize = NAME_LEVELS.len() + 1;
pub const KIN_P: usize = POSTCODE_LEVELS + 1;
/// A value per forename level by postcode level, neutral last in each.
pub type KinTable = [[f64; KIN_P]; KIN_F];
/// Pseudo-pairs (ordered) on both sides of each dependence factor: with
/// few pairs observed and expected the factor is 1 (independence).
pub const KIN_PSEUDO_PAIRS: f64 = 2.0;
/// Members of one (surname, date of birth) group whose pairs are
/// compared; a larger group (a default date shared with a common
/// surname) is represented by its first members, each pair weighted up.
const KIN_GROUP: usize = 64;

/// How often two distinct people of the index who share surname and date
/// of birth show each forename and postcode level, against what
/// independence of the fields predicts (see [`Model::kin`]).
#[derive(Debug, Clone)]
pub struct Kin {
    /// Ordered pairs of distinct people sharing surname and date of birth,
    /// both with a forename and a postcode, by the level of each.
    pub observed: KinTable,
    /// The same under independence: `N'(N' − 1) · u_surname · u_dob ·
    /// u_forename(level) · u_postcode(level)`, `N'` the people with all
    /// four fields.
    pub expected: KinTable,
    /// `log2` of the dependence factor `(observed + k) / (expected + k)`
    /// ([`KIN_PSEUDO_PAIRS`]), summed over the neutral slot's level.
    pub log2_factor: KinTable,
}

impl Kin {
    /// Independence: every factor 1.
    pub fn none() -> Self {
        Self {
            observed: [[0.0; KIN_P]; KIN_F],
            expected: [[0.0; KIN_P]; KIN_F],
            log2_factor: [[0.0; KIN_P]; KIN_F],
        }
    }

    /// The factors from the observed and expected cells: each cell's own,
    /// and for a neutral forename or postcode the sum over the other
    /// field's levels (the dependence of what is left).
    fn from_counts(observed: KinTable, expected: KinTable) -> Self {
        let (nf, np) = (KIN_F - 1, KIN_P - 1);
        let sum = |t: &KinTable, f: Option<usize>, p: Option<usize>| -> f64 {
            let mut s = 0.0;
            for (fi, row) in t.iter().enumerate().take(nf) {
                for (pi, v) in row.iter().enumerate().take(np) {
                    if f.is_none_or(|f| f == fi) && p.is_none_or(|p| p == pi) {
                        s += v;
                    }
                }
            }
            s
        };
        let mut o = observed;
        let mut e = expected;
        for f in 0..KIN_F {
            for p in 0..KIN_P {
                let (fs, ps) = ((f < nf).then_some(f), (p < np).then_some(p));
                if fs.is_none() || ps.is_none() {
                    o[f][p] = sum(&observed, fs, ps);
                    e[f][p] = sum(&expected, fs, ps);
                }
            }
        }
        let mut log2_factor = [[0.0; KIN_P]; KIN_F];
        for f in 0..KIN_F {
            for p in 0..KIN_P {
                log2_factor[f][p] =
                    ((o[f][p] + KIN_PSEUDO_PAIRS) / (e[f][p] + KIN_PSEUDO_PAIRS)).log2();
            }
        }
        Self {
            observed: o,
            expected: e,
            log2_factor,
        }
    }
}

/// `log2` of the dependence factor on the `u` of a pair at `levels`
/// (level indexes in [`LEVELS`], `None` neutral), from
/// [`Kin::log2_factor`]: the cell of its forename and postcode levels for
/// a pair agreeing exactly on surname and date of birth, else 0.
pub fn kin_log2(table: &KinTable, levels: &[Option<usize>; 6]) -> f64 {
    if levels[SURNAME] == Some(0) && levels[DOB] == Some(0) {
        let f = levels[FORENAME].unwrap_or(KIN_F - 1);
        let p = levels[POSTCODE].unwrap_or(KIN_P - 1);
        table[f][p]
    } else {
        0.0
    }
}

/// Index of `level` among `field`'s levels; `None` for a neutral level.
pub fn level_index(field: usize, level: Level) -> Option<usize> {
    LEVELS[field].iter().position(|l| *l == level)
}

/// The starting point of the estimate and what it is shrunk towards: round
/// error rates of the kind a master person index sees (a few per cent of
/// records carry a typo, a move or a swap). With few candidate pairs they
/// dominate; with many, the data do.
pub mod prior {
    pub const M: [&[f64]; 6] = [
        &[0.97, 0.015, 0.01, 0.005],
        &[0.95, 0.01, 0.015, 0.01, 0.015],
        &[0.99, 0.01],
        &[0.86, 0.03, 0.03, 0.04, 0.04],
        NAME,
        NAME,
    ];
    const NAME: &[f64] = &[0.88, 0.005, 0.04, 0.015, 0.02, 0.015, 0.025];
    /// Share of cohort rows whose person is in the index.
    pub const IN_INDEX: f64 = 0.95;

    /// The joint prior of surname and postcode: the product of theirs
    /// (independence, until the data say otherwise).
    pub fn joint() -> super::Joint {
        let mut j = [[0.0; super::POSTCODE_LEVELS]; super::SURNAME_LEVELS];
        for (s, row) in j.iter_mut().enumerate() {
            for (p, cell) in row.iter_mut().enumerate() {
                *cell = M[super::SURNAME][s] * M[super::POSTCODE][p];
            }
        }
        j
    }
}

/// Pairs of people drawn for the `u` of names and gender.
const U_SAMPLE: usize = 100_000;

pub fn bits(m: f64, u: f64) -> f64 {
    (m.max(1e-12) / u.max(1e-12)).log2()
}

/// The model of one run.
#[derive(Debug, Clone)]
pub struct Model {
    pub people: f64,
    /// `m` per field and level ([`LEVELS`] order). For surname and
    /// postcode these are the margins of [`Self::m_joint`].
    pub m: [Vec<f64>; 6],
    /// `m` of surname and postcode together, by level of each: the two
    /// change together (a woman who marries often moves house at the same
    /// time), so a new surname with a new postcode is far likelier for the
    /// same person than the product of the two margins says. Used when
    /// both fields are compared; `u` stays the product of theirs.
    pub m_joint: Joint,
    /// `u` per field and level. For exact and swapped names this is the
    /// average over the index (`Σ share²`), used only when the row's name
    /// is blank; a row's own value is weighed by its frequency.
    pub u: [Vec<f64>; 6],
    /// Share of cohort rows whose person is in the index, estimated per
    /// [`NhsGroup`] (see `estimate`): a valid number nobody in the index
    /// holds is a sign that the person was never registered, one somebody
    /// holds that they were.
    pub in_index: [f64; NhsGroup::COUNT],
    /// The coincidence of the other fields among distinct people of the
    /// index who share surname and date of birth (twins, siblings, a
    /// household): the `u` of a pair agreeing exactly on both is the
    /// product of the fields' `u` times this factor (see [`Kin`]).
    pub kin: Kin,
    forename_counts: PlHashMap<String, u32>,
    surname_counts: PlHashMap<String, u32>,
}

impl Model {
    /// Measures `u` on the index; `m` starts at the prior.
    pub fn measure(index: &Index, names: bool) -> Result<Self, LinkError> {
        let people = index.len().max(1) as f64;
        let p = index.coincidences();
        // Levels are exclusive ("sector" means sector but not full), so
        // each level's `u` is the difference of the nested coincidences,
        // floored so that a tiny index cannot make a level infinitely
        // telling.
        let floor = 1.0 / people;
        let (forename_counts, surname_counts) = if names {
            let counts = |surname| {
                index
                    .name_counts(surname)
                    .map(|(k, n)| (k.to_string(), n))
                    .collect()
            };
            (counts(false), counts(true))
        } else {
            (PlHashMap::default(), PlHashMap::default())
        };
        let typical = |c: &PlHashMap<String, u32>| {
            let squares: f64 = c.values().map(|n| (f64::from(*n) / people).powi(2)).sum();
            squares.max(floor)
        };
        let sample = sample_u(index, names);
        let mut forename_u = sample.forename;
        forename_u[0] = typical(&forename_counts);
        let mut surname_u = sample.surname;
        surname_u[0] = typical(&surname_counts);
        let mut model = Self {
            people,
            m: prior::M.map(|m| m.to_vec()),
            m_joint: prior::joint(),
            u: [
                vec![1.0 / people, 1.0 / people, 1.0 / people, 1.0],
                vec![
                    p.dob.max(floor),
                    p.dob.max(floor),
                    // Six dates are one component or one day away.
                    (6.0 * p.dob).max(floor),
                    (p.year - 7.0 * p.dob).max(p.dob).max(floor),
                    (1.0 - p.year).max(floor),
                ],
                sample.gender.to_vec(),
                vec![
                    p.postcode.max(floor),
                    (p.sector - p.postcode).max(floor),
                    (p.district - p.sector).max(floor),
                    (p.area - p.district).max(floor),
                    (1.0 - p.area).max(floor),
                ],
                forename_u.to_vec(),
                surname_u.to_vec(),
            ],
            in_index: [prior::IN_INDEX; NhsGroup::COUNT],
            kin: Kin::none(),
            forename_counts,
            surname_counts,
        };
        if names {
            model.kin = measure_kin(index, &model.u);
        }
        Ok(model)
    }

    /// The `u` of one level for one row: the name's own frequency for an
    /// exact or swapped name, the share of people holding a neighbour of
    /// the row's failed NHS number (`held`) for one edit away, else the
    /// measured value.
    pub fn u_of(&self, field: usize, level: usize, name: Option<&str>, held: usize) -> f64 {
        let lv = LEVELS[field][level];
        match (Field::ALL[field], lv) {
            (Field::NhsNumber, Level::OneEdit | Level::Transposition) => {
                held.max(1) as f64 / self.people
            }
            (Field::Forename | Field::Surname, Level::Exact | Level::Swapped) => {
                let counts = if Field::ALL[field] == Field::Forename {
                    &self.forename_counts
                } else {
                    &self.surname_counts
                };
                match name {
                    Some(k) => f64::from(counts.get(k).copied().unwrap_or(1).max(1)) / self.people,
                    None => self.u[field][level],
                }
            }
            _ => self.u[field][level],
        }
    }

    /// The weight of `level` for field `field` (index in [`Field::ALL`]);
    /// `name` is the cohort's name key for name fields, `held` the people
    /// holding a neighbour of the row's failed NHS number.
    pub fn weight(&self, field: usize, level: Level, name: Option<&str>, held: usize) -> f64 {
        match level_index(field, level) {
            Some(l) => bits(self.m[field][l], self.u_of(field, l, name, held)),
            None => 0.0,
        }
    }

    /// The weight of surname level `s` with postcode level `p` (indexes in
    /// [`LEVELS`]), estimated jointly; `name` is the cohort's surname key.
    pub fn joint_weight(&self, s: usize, p: usize, name: Option<&str>) -> f64 {
        bits(
            self.m_joint[s][p],
            self.u_of(SURNAME, s, name, 1) * self.u_of(POSTCODE, p, None, 1),
        )
    }

    /// Sets the margins of surname and postcode in [`Self::m`] from
    /// [`Self::m_joint`].
    pub fn set_margins(&mut self) {
        for s in 0..SURNAME_LEVELS {
            self.m[SURNAME][s] = self.m_joint[s].iter().sum();
        }
        for p in 0..POSTCODE_LEVELS {
            self.m[POSTCODE][p] = self.m_joint.iter().map(|r| r[p]).sum();
        }
    }

    /// The prior odds multiplier of a single pair: the chance that a given
    /// person of the index is the row's, before looking at the fields.
    /// The prior odds of a single pair for a row of `group`: the odds that
    /// the row's person is in the index, `ρ / (1 − ρ)`, shared among its
    /// `N` people.
    pub fn pair_prior(&self, group: NhsGroup) -> f64 {
        let rho = self.in_index[group as usize];
        rho / ((1.0 - rho) * self.people)
    }
}

/// What a cohort row's NHS number says before any comparison, for the
/// share of rows whose person is in the index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NhsGroup {
    /// A valid number somebody in the index holds.
    Held = 0,
    /// A valid number nobody in the index holds.
    Unheld = 1,
    /// Ten digits failing modulus 11.
    Typo = 2,
    /// No number.
    #[default]
    None = 3,
}

impl NhsGroup {
    pub const COUNT: usize = 4;
    pub const ALL: [NhsGroup; 4] = [Self::Held, Self::Unheld, Self::Typo, Self::None];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "valid_held",
            Self::Unheld => "valid_not_held",
            Self::Typo => "fails_check_digit",
            Self::None => "missing",
        }
    }
}

/// `u` of the name levels and of gender from random pairs of people.
struct SampledU {
    forename: [f64; MAX_LEVELS],
    surname: [f64; MAX_LEVELS],
    gender: [f64; 2],
}

fn sample_u(index: &Index, names: bool) -> SampledU {
    let n = index.len();
    let mut forename = [0u64; MAX_LEVELS];
    let mut surname = [0u64; MAX_LEVELS];
    let mut gender = [0u64; 2];
    if n >= 2 {
        // A fixed seed: the same index gives the same model.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x6461_7273_0010);
        for _ in 0..U_SAMPLE {
            let a = rng.gen_range(0..n) as u32;
            let mut b = rng.gen_range(0..n - 1) as u32;
            if b >= a {
                b += 1;
            }
            let (pa, pb) = (index.person(a), index.person(b));
            let g = compare::compare_gender(pa.gender, pb.gender);
            if let Some(l) = level_index(2, g) {
                gender[l] += 1;
            }
            if names {
                let (f, s) = compare::compare_names(
                    (pa.forename_key, pa.surname_key),
                    (pb.forename_key, pb.surname_key),
                );
                if let Some(l) = level_index(4, f) {
                    forename[l] += 1;
                }
                if let Some(l) = level_index(5, s) {
                    surname[l] += 1;
                }
            }
        }
    }
    // Add-one smoothing: a level the sample never saw is rare, not
    // impossible.
    fn shares<const K: usize>(counts: [u64; K], levels: usize) -> [f64; K] {
        let total: u64 = counts[..levels].iter().sum();
        let mut out = [0.0; K];
        for (o, c) in out.iter_mut().zip(counts).take(levels) {
            *o = (c as f64 + 1.0) / (total as f64 + levels as f64);
        }
        out
    }
    SampledU {
        forename: shares(forename, NAME_LEVELS.len()),
        surname: shares(surname, NAME_LEVELS.len()),
        gender: shares(gender, 2),
    }
}

/// Groups the index by surname and date of birth and compares the forename
/// and postcode of every pair of distinct people in each group (see
/// [`Kin`]); `u` is the model's, for what independence predicts.
fn measure_kin(index: &Index, u: &[Vec<f64>; 6]) -> Kin {
    use rayon::prelude::*;

    use super::index::{NONE, NO_DATE};
    let mut keyed: Vec<(u64, u32)> = index
        .people
        .iter()
        .enumerate()
        .filter(|(_, p)| p.surname != NONE && p.dob != NO_DATE)
        .map(|(i, p)| {
            (
                (u64::from(p.surname) << 32) | u64::from(p.dob as u32),
                i as u32,
            )
        })
        .collect();
    keyed.par_sort_unstable();
    let complete = |i: u32| {
        let p = index.person(i);
        p.forename_key.is_some() && p.surname_key.is_some() && p.postcode.is_some()
    };
    // People with all four fields: the population independence is taken
    // over (by the dictionary numbers: a blank name or an unparsed
    // postcode still counts here, a few at most).
    let people = index
        .people
        .iter()
        .filter(|p| {
            p.surname != NONE && p.dob != NO_DATE && p.forename != NONE && p.postcode != NONE
        })
        .count() as f64;
    let groups: Vec<&[(u64, u32)]> = keyed
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|g| g.len() >= 2)
        .collect();
    let observed = groups
        .par_iter()
        .fold(
            || [[0.0; KIN_P]; KIN_F],
            |mut t, group| {
                let members: Vec<u32> = group
                    .iter()
                    .map(|(_, i)| *i)
                    .filter(|&i| complete(i))
                    .collect();
                let n = members.len();
                let m = n.min(KIN_GROUP);
                if m < 2 {
                    return t;
                }
                // Ordered pairs each unordered pair of the first `m` stands for.
                let weight = 2.0 * (n * (n - 1)) as f64 / (m * (m - 1)) as f64;
                for a in 0..m {
                    let pa = index.person(members[a]);
                    for &b in &members[a + 1..m] {
                        let pb = index.person(b);
                        let (f, s) = compare::compare_names(
                            (pa.forename_key, pa.surname_key),
                            (pb.forename_key, pb.surname_key),
                        );
                        let (Some(pca), Some(pcb)) = (pa.postcode, pb.postcode) else {
                            continue;
                        };
                        let p = compare::compare_postcode_str(pca, pcb);
                        if s != Level::Exact {
                            continue;
                        }
                        if let (Some(f), Some(p)) =
                            (level_index(FORENAME, f), level_index(POSTCODE, p))
                        {
                            t[f][p] += weight;
                        }
                    }
                }
                t
            },
        )
        .reduce(
            || [[0.0; KIN_P]; KIN_F],
            |mut a, b| {
                for (ra, rb) in a.iter_mut().zip(&b) {
                    for (x, y) in ra.iter_mut().zip(rb) {
                        *x += y;
                    }
                }
                a
            },
        );
    let base = people * (people - 1.0).max(0.0) * u[SURNAME][0] * u[DOB][0];
    let mut expected = [[0.0; KIN_P]; KIN_F];
    for (f, row) in expected.iter_mut().enumerate().take(KIN_F - 1) {
        for (p, cell) in row.iter_mut().enumerate().take(KIN_P - 1) {
            *cell = base * u[FORENAME][f] * u[POSTCODE][p];
        }
    }
    Kin::from_counts(observed, expected)
}
