//! Tier 2: the cohort's blocking keys, the scoring of every candidate pair
//! (with rayon), and the review queue entry of each row.

use chrono::{Datelike, NaiveDate};

use super::block::{code, Key, Lookups};
use super::compare::{self, CohortNhs, Field, Level};
use super::estimate::{EmPair, NEUTRAL};
use super::index::{Index, IndexPerson};
use super::model::{
    self, level_index, Model, NhsGroup, DOB, DOB_LEVELS, FORENAME, LEVELS, MAX_LEVELS, NHS,
    POSTCODE, POSTCODE_LEVELS, SURNAME, SURNAME_LEVELS,
};
use super::phonetic;
use crate::domain::date::to_epoch_days;
use crate::domain::NhsNumber;
use crate::ingest::CohortRow;

impl Candidate {
    /// The blocking keys that proposed the pair, joined with `;`.
    pub fn found_by(&self) -> String {
        Key::names_of(self.keys)
    }
}

/// One candidate person for a cohort row.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Row of the collected index (internal).
    pub(super) idx: u32,
    pub person_id: i64,
    /// 0–100.
    pub score: f64,
    /// The summed weight in bits.
    pub weight: f64,
    /// The chance that this is the row's person, under the estimated
    /// model (see `estimate`): what decides whether it is queued.
    pub probability: f64,
    /// Agreement level per field, in [`Field::ALL`] order.
    pub levels: [Level; 6],
    /// The index's values, in [`Field::ALL`] order (for the reviewer).
    pub values: [String; 6],
    /// The blocking keys that proposed the pair (see [`Key::names_of`]).
    pub(super) keys: u16,
    /// The cohort's valid NHS number is this person's.
    pub nhs_number_found: bool,
    /// The index's NHS number (for the objections stage).
    pub(super) index_nhs_number: String,
}

/// The candidates of one study ID, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEntry {
    /// Position of the row in the cohort.
    pub row: usize,
    pub study_id: String,
    /// The cohort's values, in [`Field::ALL`] order.
    pub values: [String; 6],
    pub candidates: Vec<Candidate>,
    /// The top two candidates are within the ambiguity margin.
    pub ambiguous: bool,
}

/// How tier 2 scores and queues.
#[derive(Debug, Clone, Copy)]
pub struct Scoring {
    pub names: bool,
    /// Fields the cohort file has (a field it lacks is not compared and
    /// does not count in the best possible weight).
    pub fields: [bool; 6],
    pub review_threshold: f64,
    /// Candidates at least this likely are queued whatever their score.
    pub review_probability: f64,
    pub ambiguity_margin: f64,
    pub max_candidates: usize,
}

/// Valid NHS numbers of `rows`: the look-ups of tier 1 and of key
/// `nhs_number`.
pub fn nhs_lookup(rows: &[CohortRow]) -> Lookups {
    let mut out = Lookups::new(Key::NhsNumber);
    for (i, r) in rows.iter().enumerate() {
        if let Some(n) = r.nhs_number {
            out.push(i as u32, nhs_code(n));
        }
    }
    out
}

/// A valid NHS number as the index's `nhs_code` encodes it.
fn nhs_code(n: NhsNumber) -> u128 {
    code::one(n.digits().iter().fold(0u64, |a, d| a * 10 + u64::from(*d)))
}

fn swapped(d: NaiveDate) -> Option<NaiveDate> {
    (d.day() <= 12 && d.day() != d.month())
        .then(|| NaiveDate::from_ymd_opt(d.year(), d.day(), d.month()))
        .flatten()
}

/// The look-ups of every tier-2 key for `wanted` (cohort positions),
/// besides the NHS number itself, as numbers (see `block::code`): a name,
/// postcode or district nobody in the index has is looked up as
/// [`code::ABSENT`] (an empty block, still counted). Name keys only when
/// names are in use; a blank name or a missing date makes no look-up
/// (never a block of all blanks).
pub fn lookups(index: &Index, rows: &[CohortRow], wanted: &[u32], names: bool) -> Vec<Lookups> {
    let mut neighbours = Lookups::new(Key::NhsNumberNeighbour);
    let mut dob_district = Lookups::new(Key::DobDistrict);
    let mut swapped_district = Lookups::new(Key::SwappedDobDistrict);
    let mut postcode_year = Lookups::new(Key::PostcodeYear);
    let mut dob_initial = Lookups::new(Key::DobSurnameInitial);
    let mut swapped_initial = Lookups::new(Key::SwappedDobSurnameInitial);
    let mut names_year = Lookups::new(Key::NamesYear);
    let mut dob_forename = Lookups::new(Key::DobForename);
    let mut names_district = Lookups::new(Key::NamesDistrict);
    let mut swapped_names = Lookups::new(Key::SwappedNamesDob);
    let mut postcode_forename = Lookups::new(Key::PostcodeForename);
    // A column's number, or `None` for a value nobody in the index has.
    let two =
        |a: Option<u32>, b: Option<u32>| a.zip(b).map_or(code::ABSENT, |(a, b)| code::two(a, b));
    let three = |a: Option<u32>, b: Option<u32>, c: Option<u32>| match (a, b, c) {
        (Some(a), Some(b), Some(c)) => code::three(a, b, c),
        _ => code::ABSENT,
    };
    for &w in wanted {
        let r = &rows[w as usize];
        if let Some(typo) = r.nhs_number_typo {
            for n in NhsNumber::typo_neighbours(typo) {
                neighbours.push(w, nhs_code(n));
            }
        }
        let key = |s: &Option<String>| {
            s.as_deref()
                .map(compare::name_key)
                .filter(|k| names && !k.is_empty())
        };
        let surname = key(&r.surname);
        let forename = key(&r.forename);
        let forename_id = forename.as_deref().map(|f| index.name_id(f));
        let surname_id = surname.as_deref().map(|s| index.name_id(s));
        let dob = r.date_of_birth;
        let days = dob.map(|d| Some(code::int(to_epoch_days(d))));
        let swapped_days = dob
            .and_then(swapped)
            .map(|d| Some(code::int(to_epoch_days(d))));
        let year = dob.map(|d| Some(code::int(d.year())));
        if let Some(p) = &r.postcode {
            let district = index.district_id(p.district());
            let postcode = index.postcode_id(p.as_str());
            if let Some(d) = days {
                dob_district.push(w, two(d, district));
            }
            if let Some(d) = swapped_days {
                swapped_district.push(w, two(d, district));
            }
            if let Some(y) = year {
                postcode_year.push(w, two(postcode, y));
            }
            if let (Some(f), Some(s)) = (forename_id, surname_id) {
                names_district.push(w, three(f, s, district));
            }
            if let Some(f) = forename_id {
                postcode_forename.push(w, two(postcode, f));
            }
        }
        if let (Some(s), Some(s_id)) = (&surname, surname_id) {
            let initial = s.chars().next().map(u32::from);
            if let Some(d) = days {
                dob_initial.push(w, two(d, initial));
            }
            if let Some(d) = swapped_days {
                swapped_initial.push(w, two(d, initial));
            }
            if let Some(d) = days {
                // The surname looked up among forenames.
                swapped_names.push(w, two(d, s_id));
            }
            if let (Some(f), Some(y), Some(sound)) = (forename_id, year, phonetic::soundex(s)) {
                names_year.push(w, three(f, Some(sound as u32), y));
            }
        }
        if let (Some(f), Some(d)) = (forename_id, days) {
            dob_forename.push(w, two(d, f));
        }
    }
    vec![
        neighbours,
        dob_district,
        swapped_district,
        postcode_year,
        dob_initial,
        swapped_initial,
        names_year,
        dob_forename,
        names_district,
        swapped_names,
        postcode_forename,
    ]
}

/// A cohort row prepared for comparison.
pub struct Prepared<'a> {
    row: &'a CohortRow,
    /// People of the index holding a number one edit away from the row's
    /// failed NHS number: the `u` of a one-edit agreement is this share.
    held_neighbours: usize,
    nhs: Option<CohortNhs>,
    forename_key: Option<String>,
    surname_key: Option<String>,
}

impl<'a> Prepared<'a> {
    pub fn new(row: &'a CohortRow, names: bool) -> Self {
        let key = |s: &Option<String>| {
            s.as_deref()
                .map(compare::name_key)
                .filter(|k| names && !k.is_empty())
        };
        Self {
            row,
            held_neighbours: 1,
            nhs: row
                .nhs_number
                .map(|n| CohortNhs::Valid(n.digits()))
                .or(row.nhs_number_typo.map(CohortNhs::Typo)),
            forename_key: key(&row.forename),
            surname_key: key(&row.surname),
        }
    }

    /// The cohort's values for the reviewer, in [`Field::ALL`] order.
    pub fn values(&self, names: bool) -> [String; 6] {
        let r = self.row;
        let digits = |d: [u8; 10]| d.iter().map(|x| char::from(b'0' + x)).collect();
        [
            match self.nhs {
                Some(CohortNhs::Valid(d) | CohortNhs::Typo(d)) => digits(d),
                None => String::new(),
            },
            r.date_of_birth.map(|d| d.to_string()).unwrap_or_default(),
            r.gender.map(|g| g.code().to_string()).unwrap_or_default(),
            r.postcode
                .as_ref()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            if names {
                r.forename.clone().unwrap_or_default()
            } else {
                String::new()
            },
            if names {
                r.surname.clone().unwrap_or_default()
            } else {
                String::new()
            },
        ]
    }
}

/// Compares a prepared row with a person: the level of every field
/// (`NotUsed` for a field the cohort file lacks or names not in use).
pub fn levels(scoring: &Scoring, row: &Prepared<'_>, person: &IndexPerson<'_>) -> [Level; 6] {
    let r = row.row;
    let (forename, surname) = if scoring.names {
        compare::compare_names(
            (row.forename_key.as_deref(), row.surname_key.as_deref()),
            (person.forename_key, person.surname_key),
        )
    } else {
        (Level::NotUsed, Level::NotUsed)
    };
    let mut levels = [
        compare::compare_nhs(row.nhs, person.nhs_digits),
        compare::compare_dob(r.date_of_birth, person.date_of_birth),
        compare::compare_gender(r.gender, person.gender),
        compare::compare_postcode(r.postcode.as_ref(), person.postcode),
        forename,
        surname,
    ];
    for (level, used) in levels.iter_mut().zip(scoring.fields) {
        if !used {
            *level = Level::NotUsed;
        }
    }
    levels
}

/// One row's weight and `log2 u` for every level of every field: the
/// name frequencies and NHS-number neighbours are the row's, so they are
/// looked up once per row rather than once per pair. Surname and postcode
/// weigh jointly when both are compared (see `Model::m_joint`), each by its
/// margin when the other is missing.
/// The lookalike weights `log2(m_R / u)` are tabled the same way.
#[derive(Clone)]
pub struct RowWeights {
    bits: [[f64; MAX_LEVELS]; 6],
    joint_bits: [[f64; POSTCODE_LEVELS]; SURNAME_LEVELS],
    look_bits: [[f64; MAX_LEVELS]; 6],
    look_joint_bits: [[f64; POSTCODE_LEVELS]; SURNAME_LEVELS],
    log_u: [[f64; MAX_LEVELS]; 6],
}

#[derive(Clone)]
pub struct RowWeightsBase(RowWeights);

impl RowWeights {
    /// The table of a row with no name and no failed NHS number: every
    /// entry but the few a row's own values change (see [`Self::new`]),
    /// computed once per model.
    pub fn base(model: &Model) -> RowWeightsBase {
        let mut bits = [[0.0; MAX_LEVELS]; 6];
        let mut look_bits = [[0.0; MAX_LEVELS]; 6];
        let mut log_u = [[0.0; MAX_LEVELS]; 6];
        for (f, levels) in LEVELS.iter().enumerate() {
            for (l, level) in levels.iter().enumerate() {
                bits[f][l] = model.weight(f, *level, None, 1);
                look_bits[f][l] = model.lookalike_weight(f, *level, None, 1);
                log_u[f][l] = model.u_of(f, l, None, 1).max(1e-300).log2();
            }
        }
        let mut joint_bits = [[0.0; POSTCODE_LEVELS]; SURNAME_LEVELS];
        let mut look_joint_bits = [[0.0; POSTCODE_LEVELS]; SURNAME_LEVELS];
        for s in 0..SURNAME_LEVELS {
            for p in 0..POSTCODE_LEVELS {
                joint_bits[s][p] = model.joint_weight(s, p, None);
                if s < DOB_LEVELS {
                    look_joint_bits[s][p] = model.lookalike_joint_weight(s, p);
                }
            }
        }
        RowWeightsBase(Self {
            bits,
            joint_bits,
            look_bits,
            look_joint_bits,
            log_u,
        })
    }

    /// The row's table: `base` with the entries its values change, those
    /// whose `u` is the row's own (see `Model::u_of`): an exact or swapped
    /// name weighed by that name's frequency, and an NHS number one edit
    /// away by the people holding a neighbour of the row's. Each is
    /// computed as `Model::weight`, `Model::u_of` and `Model::joint_weight`
    /// compute it, so the table is the one those give for every entry.
    pub fn new(base: &RowWeightsBase, model: &Model, row: &Prepared<'_>) -> Self {
        let mut t = base.0.clone();
        let held = row.held_neighbours;
        if held != 1 {
            for (l, level) in LEVELS[NHS].iter().enumerate() {
                if matches!(level, Level::OneEdit | Level::Transposition) {
                    t.bits[NHS][l] = model.weight(NHS, *level, None, held);
                    t.look_bits[NHS][l] = model.lookalike_weight(NHS, *level, None, held);
                    t.log_u[NHS][l] = model.u_of(NHS, l, None, held).max(1e-300).log2();
                }
            }
        }
        for f in [FORENAME, SURNAME] {
            let Some(name) = name_of(row, f) else {
                continue;
            };
            for (l, level) in LEVELS[f].iter().enumerate() {
                if !matches!(level, Level::Exact | Level::Swapped) {
                    continue;
                }
                let u = model.u_of(f, l, Some(name), 1);
                t.bits[f][l] = model::bits(model.m[f][l], u);
                t.look_bits[f][l] = model::bits(model.m_look[f][l], u);
                t.log_u[f][l] = u.max(1e-300).log2();
                if f == SURNAME {
                    for (p, b) in t.joint_bits[l].iter_mut().enumerate() {
                        *b = model::bits(model.m_joint[l][p], u * model.u_of(POSTCODE, p, None, 1));
                    }
                }
            }
        }
        t
    }

    /// The summed weight of a pair at `levels`, in bits.
    pub fn weight(&self, levels: &[Level; 6]) -> f64 {
        Self::sum(&self.bits, &self.joint_bits, SURNAME, levels)
    }

    /// The summed lookalike weight `log2(m_R / u)` of a pair at `levels`
    /// (`r` in `estimate`): date of birth and postcode jointly.
    pub fn lookalike_weight(&self, levels: &[Level; 6]) -> f64 {
        Self::sum(&self.look_bits, &self.look_joint_bits, DOB, levels)
    }

    /// The summed `bits` at `levels`, field `first` and postcode by
    /// `joint_bits` when both are compared.
    fn sum(
        bits: &[[f64; MAX_LEVELS]; 6],
        joint_bits: &[[f64; POSTCODE_LEVELS]; SURNAME_LEVELS],
        first: usize,
        levels: &[Level; 6],
    ) -> f64 {
        let l: [Option<usize>; 6] = std::array::from_fn(|f| level_index(f, levels[f]));
        let mut w = 0.0;
        for (f, l) in l.iter().enumerate() {
            if f == first || f == POSTCODE {
                continue;
            }
            if let Some(l) = l {
                w += bits[f][*l];
            }
        }
        w + match (l[first], l[POSTCODE]) {
            (Some(s), Some(p)) => joint_bits[s][p],
            (Some(s), None) => bits[first][s],
            (None, Some(p)) => bits[POSTCODE][p],
            (None, None) => 0.0,
        }
    }

    /// The weight a perfect match would give this row, with `fields` the
    /// fields compared: the denominator of its scores.
    pub fn best(&self, fields: [bool; 6]) -> f64 {
        let mut levels = [Level::NotUsed; 6];
        for (f, used) in fields.iter().enumerate() {
            if *used {
                levels[f] = LEVELS[f][0];
            }
        }
        self.weight(&levels)
    }

    /// A pair as the estimate sees it: level indexes and `log2 u`.
    pub fn em_pair(&self, levels: &[Level; 6]) -> EmPair {
        let mut out = EmPair {
            levels: [NEUTRAL; 6],
            log_u: 0.0,
            log_u_joint: 0.0,
        };
        for (f, level) in levels.iter().enumerate() {
            if let Some(l) = level_index(f, *level) {
                out.levels[f] = l as u8;
                out.log_u += self.log_u[f][l];
            }
        }
        let (s, p) = (out.levels[SURNAME], out.levels[POSTCODE]);
        if s != NEUTRAL && p != NEUTRAL {
            out.log_u_joint = self.log_u[SURNAME][s as usize] + self.log_u[POSTCODE][p as usize];
        }
        out
    }
}

fn name_of<'r>(row: &'r Prepared<'_>, field: usize) -> Option<&'r str> {
    match Field::ALL[field] {
        Field::Forename => row.forename_key.as_deref(),
        Field::Surname => row.surname_key.as_deref(),
        _ => None,
    }
}

/// One compared pair of a row.
#[derive(Debug, Clone, Copy)]
pub struct Compared {
    pub idx: u32,
    pub keys: u16,
    pub levels: [Level; 6],
}

/// The compared pairs of one row, and how many people hold a neighbour
/// of its failed NHS number.
#[derive(Debug, Clone, Default)]
pub struct RowPairs {
    pub held_neighbours: usize,
    /// What the row's NHS number says (see `NhsGroup`).
    pub group: NhsGroup,
    pub pairs: Vec<Compared>,
}

impl RowPairs {
    /// The row prepared as its pairs were compared.
    pub fn prepared<'a>(&self, row: &'a CohortRow, names: bool) -> Prepared<'a> {
        let mut p = Prepared::new(row, names);
        p.held_neighbours = self.held_neighbours;
        p
    }
}

/// Compares every pair of one row (the costly step: names by Jaro-Winkler).
pub fn compare_row(
    scoring: &Scoring,
    index: &Index,
    row: &CohortRow,
    pairs: &[super::block::Pair],
) -> RowPairs {
    let mut prepared = Prepared::new(row, scoring.names);
    prepared.held_neighbours = pairs
        .iter()
        .filter(|p| p.keys & Key::NhsNumberNeighbour.bit() != 0)
        .count()
        .max(1);
    // Every holder of a valid number is proposed by the number itself.
    let group = if row.nhs_number.is_some() {
        if pairs.iter().any(|p| p.keys & Key::NhsNumber.bit() != 0) {
            NhsGroup::Held
        } else {
            NhsGroup::Unheld
        }
    } else if row.nhs_number_typo.is_some() {
        NhsGroup::Typo
    } else {
        NhsGroup::None
    };
    let pairs = pairs
        .iter()
        .map(|p| Compared {
            idx: p.idx,
            keys: p.keys,
            levels: levels(scoring, &prepared, &index.person(p.idx)),
        })
        .collect();
    RowPairs {
        held_neighbours: prepared.held_neighbours,
        group,
        pairs,
    }
}

/// A row's queue entry, or the best score of its candidates when none
/// reached the review threshold (`None`: no candidate at all).
pub type Scored = Result<QueueEntry, Option<f64>>;

/// Scores the compared pairs of one row under the estimated model and
/// builds its queue entry: candidates by weight, best first, those below
/// both the review threshold and the review probability left out. No rule
/// overrides the score: the person holding the row's NHS number is ranked
/// by its weight like everyone else.
pub fn queue_entry(
    model: &Model,
    base: &RowWeightsBase,
    scoring: &Scoring,
    index: &Index,
    position: usize,
    row: &CohortRow,
    compared: &RowPairs,
) -> Scored {
    let prepared = compared.prepared(row, scoring.names);
    let prior = model.pair_prior(compared.group);
    let look_prior = model.lookalike_prior();
    let table = RowWeights::new(base, model, &prepared);
    // The three-class posterior of `estimate`: each pair's match odds
    // against the row's person being absent, either a stranger to every
    // candidate (1) or some candidate's lookalike (`c · 2^r`).
    let lookalikes: f64 = compared
        .pairs
        .iter()
        .map(|p| look_prior * table.lookalike_weight(&p.levels).exp2())
        .sum();
    let best = table.best(scoring.fields).max(f64::EPSILON);
    let mut candidates: Vec<Candidate> = compared
        .pairs
        .iter()
        .map(|p| {
            let weight = table.weight(&p.levels);
            let score = (100.0 * weight / best).clamp(0.0, 100.0);
            Candidate {
                idx: p.idx,
                person_id: index.person_id(p.idx),
                score: (score * 10.0).round() / 10.0,
                weight,
                probability: prior * weight.exp2(),
                levels: p.levels,
                values: Default::default(),
                keys: p.keys,
                nhs_number_found: p.levels[0] == Level::Exact && p.keys & Key::NhsNumber.bit() != 0,
                index_nhs_number: String::new(),
            }
        })
        .collect();
    let denominator = 1.0 + lookalikes + candidates.iter().map(|c| c.probability).sum::<f64>();
    for c in &mut candidates {
        c.probability /= denominator;
    }
    let best = candidates.iter().map(|c| c.score).reduce(f64::max);
    candidates.retain(|c| {
        c.score >= scoring.review_threshold || c.probability >= scoring.review_probability
    });
    if candidates.is_empty() {
        return Err(best);
    }
    candidates.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then(a.person_id.cmp(&b.person_id))
    });
    candidates.truncate(scoring.max_candidates.max(1));
    for c in &mut candidates {
        let p = index.person(c.idx);
        let (forename, surname) = index.names(c.idx);
        let nhs_number = index.nhs_number(c.idx).unwrap_or_default();
        c.index_nhs_number = nhs_number.to_string();
        c.values = [
            nhs_number.to_string(),
            p.date_of_birth.map(|d| d.to_string()).unwrap_or_default(),
            p.gender.map(|g| g.code().to_string()).unwrap_or_default(),
            p.postcode.map(str::to_string).unwrap_or_default(),
            forename.unwrap_or_default().to_string(),
            surname.unwrap_or_default().to_string(),
        ];
    }
    let ambiguous = is_ambiguous(&candidates, scoring.ambiguity_margin);
    Ok(QueueEntry {
        row: position,
        study_id: row.study_id.clone(),
        values: prepared.values(scoring.names),
        candidates,
        ambiguous,
    })
}

/// Whether the second candidate scores within `margin` of the first (or
/// above it: a partial match outscored by someone else).
pub fn is_ambiguous(candidates: &[Candidate], margin: f64) -> bool {
    match candidates {
        [first, second, ..] => second.score + margin >= first.score,
        _ => false,
    }
}
