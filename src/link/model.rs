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
/// NHS number, date of birth and forename, by their index in
/// [`Field::ALL`].
pub const NHS: usize = 0;
pub const DOB: usize = 1;
pub const FORENAME: usize = 4;
/// Levels of surname and of postcode.
pub const SURNAME_LEVELS: usize = NAME_LEVELS.len();
pub const POSTCODE_LEVELS: usize = 5;

/// Levels of date of birth.
pub const DOB_LEVELS: usize = 5;

/// The joint `m` of surname and postcode, surname level by postcode level
/// (for the lookalike class, date of birth by postcode: its first
/// [`DOB_LEVELS`] rows).
pub type Joint = [[f64; POSTCODE_LEVELS]; SURNAME_LEVELS];

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

    /// `m_R` of the lookalike class (see `estimate`): the levels a person
    /// absent from the index shows against the one person of the index
    /// they resemble. Lookalikes are of two kinds, and the prior is their
    /// round mixture, not a fit. *Relatives* (a parent, child, sibling or
    /// spouse) share the surname and usually the address or the area, and
    /// differ in forename and date of birth (only twins share it); they
    /// are of either sex. *Namesakes* share the forename, often the
    /// surname, now and then the date of birth by chance, and live
    /// anywhere. Neither holds the other's NHS number, though a row may
    /// carry a relative's (a card shared in a household). For NHS
    /// number, forename and surname only the exact level is a prior of its
    /// own (the share of lookalikes sharing the value; the other levels
    /// start here but are a stranger's `u` scaled to the rest, see
    /// `estimate`); date of birth and postcode enter as the product of
    /// their rows, the pair sharing both a date and a full postcode
    /// excluded in the estimate.
    pub const LOOKALIKE_M: [&[f64]; 6] = [
        // NHS number: exact, one edit, transposition, disagree.
        &[0.02, 0.005, 0.005, 0.97],
        // Date of birth: exact (twins, a namesake's birthday), swapped,
        // one component, year only (siblings born in one year), other.
        &[0.1, 0.01, 0.02, 0.07, 0.8],
        // Gender: a relative of either sex, a namesake of the same.
        &[0.6, 0.4],
        // Postcode: full (a household), sector, district, area, other.
        &[0.3, 0.1, 0.1, 0.15, 0.35],
        // Forename: a namesake's, else a relative's other name.
        &[0.2, 0.005, 0.02, 0.01, 0.02, 0.045, 0.7],
        // Surname: the family's, save those who married into or out of it.
        &[0.6, 0.005, 0.02, 0.03, 0.02, 0.025, 0.3],
    ];
    /// Share of people absent from the index who are the lookalike of
    /// someone in it (`τ`): most people have a relative or a namesake in a
    /// population register, but how many of a cohort's absent people do is
    /// the cohort's; even odds, for the data to move.
    pub const LOOKALIKE: f64 = 0.5;

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

    /// The joint prior of date of birth and postcode of the lookalike
    /// class (see [`super::Model::m_look_joint`]): the product of its
    /// margins.
    pub fn lookalike_joint() -> super::Joint {
        let mut j = [[0.0; super::POSTCODE_LEVELS]; super::SURNAME_LEVELS];
        for (d, row) in j.iter_mut().enumerate().take(super::DOB_LEVELS) {
            for (p, cell) in row.iter_mut().enumerate() {
                *cell = LOOKALIKE_M[super::DOB][d] * LOOKALIKE_M[super::POSTCODE][p];
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
    /// `m_R` of the lookalike class per field and level (see `estimate`):
    /// a person absent from the index who resembles a given person of it.
    /// For date of birth and postcode, the margins of
    /// [`Self::m_look_joint`].
    pub m_look: [Vec<f64>; 6],
    /// `m_R` of date of birth and postcode together, date level by
    /// postcode level (the first [`DOB_LEVELS`] rows): lookalikes are of
    /// kinds, and the kind sets both at once. A relative at the same
    /// address was born on another date (twins excepted); a namesake or
    /// someone sharing a birthday lives elsewhere. Independence would let
    /// the first kind's address and the second's date make a twin at home
    /// of every nickname.
    pub m_look_joint: Joint,
    /// `τ`: the share of people absent from the index who are the
    /// lookalike of someone in it.
    pub lookalike: f64,
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
        Ok(Self {
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
            m_look: prior::LOOKALIKE_M.map(|m| m.to_vec()),
            m_look_joint: prior::lookalike_joint(),
            lookalike: prior::LOOKALIKE,
            forename_counts,
            surname_counts,
        })
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

    /// The lookalike weight `log2(m_R / u)` of `level` for field `field`
    /// (as [`Self::weight`]).
    pub fn lookalike_weight(
        &self,
        field: usize,
        level: Level,
        name: Option<&str>,
        held: usize,
    ) -> f64 {
        match level_index(field, level) {
            Some(l) => bits(self.m_look[field][l], self.u_of(field, l, name, held)),
            None => 0.0,
        }
    }

    /// The lookalike weight of date-of-birth level `d` with postcode
    /// level `p`, estimated jointly.
    pub fn lookalike_joint_weight(&self, d: usize, p: usize) -> f64 {
        bits(
            self.m_look_joint[d][p],
            self.u_of(DOB, d, None, 1) * self.u_of(POSTCODE, p, None, 1),
        )
    }

    /// Sets the margins of surname and postcode in [`Self::m`] from
    /// [`Self::m_joint`], and of date of birth and postcode in
    /// [`Self::m_look`] from [`Self::m_look_joint`].
    pub fn set_margins(&mut self) {
        for s in 0..SURNAME_LEVELS {
            self.m[SURNAME][s] = self.m_joint[s].iter().sum();
        }
        for p in 0..POSTCODE_LEVELS {
            self.m[POSTCODE][p] = self.m_joint.iter().map(|r| r[p]).sum();
        }
        for d in 0..DOB_LEVELS {
            self.m_look[DOB][d] = self.m_look_joint[d].iter().sum();
        }
        for p in 0..POSTCODE_LEVELS {
            self.m_look[POSTCODE][p] = self.m_look_joint[..DOB_LEVELS].iter().map(|r| r[p]).sum();
        }
    }

    /// The prior odds of a single pair for a row of `group` being a match,
    /// against the row's person being absent and a lookalike of nobody:
    /// `a = ρ / ((1 − ρ)(1 − τ) N)` (see `estimate`), with `ρ` the group's
    /// share in the index and `τ` the share of absent people who are a
    /// lookalike.
    pub fn pair_prior(&self, group: NhsGroup) -> f64 {
        let rho = self.in_index[group as usize];
        rho / ((1.0 - rho) * (1.0 - self.lookalike) * self.people)
    }

    /// The prior odds of a single pair being a lookalike, on the same
    /// footing: `c = τ / ((1 − τ) N)`.
    pub fn lookalike_prior(&self) -> f64 {
        self.lookalike / ((1.0 - self.lookalike) * self.people)
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
