//! The scoring model's weights: `log2(m / u)` for every level of every
//! field, with `u` measured on the index and, for names, on the agreeing
//! value itself (see the module documentation of `link`).

use polars::prelude::PlHashMap;

use super::compare::{Field, Level};
use super::index::{column, Index};
use super::LinkError;

/// `m` of each level: how often the same person shows that level. These
/// are error rates of the kind a master person index sees (about 3% of
/// records carry a typo, a move or a swap); they are deliberately round
/// numbers, not fitted to the synthetic data.
mod m {
    pub const NHS_EXACT: f64 = 0.97;
    pub const NHS_ONE_EDIT: f64 = 0.015;
    pub const NHS_TRANSPOSITION: f64 = 0.01;
    pub const NHS_DISAGREE: f64 = 0.005;
    pub const DOB_EXACT: f64 = 0.95;
    pub const DOB_SWAPPED: f64 = 0.01;
    pub const DOB_ONE_COMPONENT: f64 = 0.015;
    pub const DOB_YEAR_ONLY: f64 = 0.01;
    pub const DOB_DISAGREE: f64 = 0.015;
    pub const GENDER_AGREE: f64 = 0.99;
    pub const GENDER_DISAGREE: f64 = 0.01;
    pub const POSTCODE_FULL: f64 = 0.86;
    pub const POSTCODE_SECTOR: f64 = 0.03;
    pub const POSTCODE_DISTRICT: f64 = 0.03;
    pub const POSTCODE_AREA: f64 = 0.04;
    pub const POSTCODE_DISAGREE: f64 = 0.04;
    pub const NAME_EXACT: f64 = 0.9;
    pub const NAME_SIMILAR_92: f64 = 0.04;
    pub const NAME_SIMILAR_88: f64 = 0.02;
    pub const NAME_SIMILAR_70: f64 = 0.015;
    pub const NAME_TOKEN_OVERLAP: f64 = 0.015;
    pub const NAME_DISAGREE: f64 = 0.02;
}

/// `u` of the name levels that do not depend on the value: how often two
/// different people's names are that similar (measured on British name
/// lists; agreement on the value itself is measured on the index).
mod u {
    pub const NAME_SIMILAR_92: f64 = 0.002;
    pub const NAME_SIMILAR_88: f64 = 0.004;
    pub const NAME_SIMILAR_70: f64 = 0.05;
    pub const NAME_TOKEN_OVERLAP: f64 = 0.002;
    pub const NAME_DISAGREE: f64 = 0.9;
}

/// Bits taken off an exact name agreement when the names are swapped.
const SWAP_PENALTY_BITS: f64 = 3.0;

fn bits(m: f64, u: f64) -> f64 {
    (m / u.max(1e-12)).log2()
}

/// The weights of one run, measured on its index.
#[derive(Debug, Clone)]
pub struct Model {
    people: f64,
    /// Exact, disagree.
    nhs: [f64; 2],
    dob: [f64; 5],
    gender: [f64; 2],
    postcode: [f64; 5],
    forename_counts: PlHashMap<String, u32>,
    surname_counts: PlHashMap<String, u32>,
    /// Exact-agreement weight of a name of average frequency, for a row
    /// whose name is blank.
    forename_typical: f64,
    surname_typical: f64,
}

impl Model {
    /// Measures `u` on the index: coincidence of dates of birth, years and
    /// postcode levels over all pairs of people, and name frequencies.
    pub fn measure(index: &Index, names: bool) -> Result<Self, LinkError> {
        use column::*;
        let people = index.len().max(1) as f64;
        let p = index.coincidences()?;
        let (p_dob, p_year, p_full, p_sector, p_district, p_area) =
            (p.dob, p.year, p.postcode, p.sector, p.district, p.area);
        // Levels are exclusive ("sector" means sector but not full), so
        // each level's `u` is the difference of the nested coincidences,
        // floored so that a tiny index cannot make a level infinitely
        // telling.
        let floor = 1.0 / people;
        let (forename_counts, surname_counts, forename_typical, surname_typical) = if names {
            let f = index.value_counts(FORENAME_KEY)?;
            let s = index.value_counts(SURNAME_KEY)?;
            let typical = |c: &[(String, u32)]| {
                let squares: f64 = c
                    .iter()
                    .map(|(_, n)| (f64::from(*n) / people).powi(2))
                    .sum();
                bits(m::NAME_EXACT, squares.max(floor))
            };
            let (ft, st) = (typical(&f), typical(&s));
            (f.into_iter().collect(), s.into_iter().collect(), ft, st)
        } else {
            (PlHashMap::default(), PlHashMap::default(), 0.0, 0.0)
        };
        Ok(Self {
            people,
            nhs: [bits(m::NHS_EXACT, 1.0 / people), bits(m::NHS_DISAGREE, 1.0)],
            dob: [
                bits(m::DOB_EXACT, p_dob.max(floor)),
                bits(m::DOB_SWAPPED, p_dob.max(floor)),
                // Six dates are one component or one day away.
                bits(m::DOB_ONE_COMPONENT, (6.0 * p_dob).max(floor)),
                bits(
                    m::DOB_YEAR_ONLY,
                    (p_year - 7.0 * p_dob).max(p_dob).max(floor),
                ),
                bits(m::DOB_DISAGREE, (1.0 - p_year).max(floor)),
            ],
            gender: [bits(m::GENDER_AGREE, 0.5), bits(m::GENDER_DISAGREE, 0.5)],
            postcode: [
                bits(m::POSTCODE_FULL, p_full.max(floor)),
                bits(m::POSTCODE_SECTOR, (p_sector - p_full).max(floor)),
                bits(m::POSTCODE_DISTRICT, (p_district - p_sector).max(floor)),
                bits(m::POSTCODE_AREA, (p_area - p_district).max(floor)),
                bits(m::POSTCODE_DISAGREE, (1.0 - p_area).max(floor)),
            ],
            forename_counts,
            surname_counts,
            forename_typical,
            surname_typical,
        })
    }

    /// The weight of a number one edit or one transposition away from the
    /// row's failed number, when `held` people of the index hold such a
    /// number: `u` is their share of the index, measured per row like a
    /// name's frequency (about nine valid numbers surround a failed one,
    /// but in most indexes only the person meant holds one of them).
    pub fn nhs_neighbour_weight(&self, level: Level, held: usize) -> f64 {
        let m = if level == Level::Transposition {
            m::NHS_TRANSPOSITION
        } else {
            m::NHS_ONE_EDIT
        };
        bits(m, held.max(1) as f64 / self.people)
    }

    /// The exact-agreement weight of a name value: `log2(m / u)` with `u`
    /// the value's share of the index (a rare surname says more than Smith).
    fn name_exact(&self, field: Field, key: Option<&str>) -> f64 {
        let (counts, typical) = match field {
            Field::Forename => (&self.forename_counts, self.forename_typical),
            _ => (&self.surname_counts, self.surname_typical),
        };
        match key {
            Some(k) => {
                let n = counts.get(k).copied().unwrap_or(1).max(1);
                bits(m::NAME_EXACT, f64::from(n) / self.people)
            }
            None => typical,
        }
    }

    /// The weight of `level` for `field`; `name` is the agreeing value's key
    /// (the cohort's) for name fields.
    pub fn weight(&self, field: Field, level: Level, name: Option<&str>) -> f64 {
        use Level as L;
        match (field, level) {
            (_, L::Missing | L::NotUsed | L::NotKnown) => 0.0,
            (Field::NhsNumber, L::Exact) => self.nhs[0],
            (Field::NhsNumber, L::OneEdit | L::Transposition) => {
                self.nhs_neighbour_weight(level, 1)
            }
            (Field::NhsNumber, _) => self.nhs[1],
            (Field::DateOfBirth, L::Exact) => self.dob[0],
            (Field::DateOfBirth, L::DayMonthSwapped) => self.dob[1],
            (Field::DateOfBirth, L::OneComponent) => self.dob[2],
            (Field::DateOfBirth, L::YearOnly) => self.dob[3],
            (Field::DateOfBirth, _) => self.dob[4],
            (Field::Gender, L::Agree) => self.gender[0],
            (Field::Gender, _) => self.gender[1],
            (Field::Postcode, L::Full) => self.postcode[0],
            (Field::Postcode, L::Sector) => self.postcode[1],
            (Field::Postcode, L::District) => self.postcode[2],
            (Field::Postcode, L::Area) => self.postcode[3],
            (Field::Postcode, _) => self.postcode[4],
            (Field::Forename | Field::Surname, L::Exact) => self.name_exact(field, name),
            (Field::Forename | Field::Surname, L::Swapped) => {
                self.name_exact(field, name) - SWAP_PENALTY_BITS
            }
            (Field::Forename | Field::Surname, L::Similar92) => {
                bits(m::NAME_SIMILAR_92, u::NAME_SIMILAR_92)
            }
            (Field::Forename | Field::Surname, L::Similar88) => {
                bits(m::NAME_SIMILAR_88, u::NAME_SIMILAR_88)
            }
            (Field::Forename | Field::Surname, L::Similar70) => {
                bits(m::NAME_SIMILAR_70, u::NAME_SIMILAR_70)
            }
            (Field::Forename | Field::Surname, L::TokenOverlap) => {
                bits(m::NAME_TOKEN_OVERLAP, u::NAME_TOKEN_OVERLAP)
            }
            (Field::Forename | Field::Surname, _) => bits(m::NAME_DISAGREE, u::NAME_DISAGREE),
        }
    }

    /// The weight a perfect agreement on `field` would give this row.
    pub fn full_weight(&self, field: Field, name: Option<&str>) -> f64 {
        let best = match field {
            Field::Gender => Level::Agree,
            Field::Postcode => Level::Full,
            _ => Level::Exact,
        };
        self.weight(field, best, name)
    }
}
