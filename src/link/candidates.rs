//! Tier 2: the cohort's blocking keys, the scoring of every candidate pair
//! (with rayon), and the review queue entry of each row.

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;

use super::block::Key;
use super::compare::{self, CohortNhs, Field, Level};
use super::index::{column, Index, IndexPerson};
use super::model::Model;
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
    pub ambiguity_margin: f64,
    pub max_candidates: usize,
}

/// Valid NHS numbers of `rows`: the lookup of tier 1 and of key `nhs_number`.
pub fn nhs_lookup(rows: &[CohortRow]) -> PolarsResult<DataFrame> {
    let mut row = Vec::new();
    let mut nhs = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(n) = r.nhs_number {
            row.push(i as u32);
            nhs.push(n.as_string());
        }
    }
    DataFrame::new_infer_height(vec![
        Column::new(column::ROW.into(), row),
        Column::new(column::NHS_NUMBER.into(), nhs),
    ])
}

fn swapped(d: NaiveDate) -> Option<NaiveDate> {
    (d.day() <= 12 && d.day() != d.month())
        .then(|| NaiveDate::from_ymd_opt(d.year(), d.day(), d.month()))
        .flatten()
}

fn initial(key: &str) -> String {
    key.chars().next().map(String::from).unwrap_or_default()
}

/// The lookups of every tier-2 key for `wanted` (cohort positions), besides
/// the NHS number itself. Name keys only when names are in use.
pub fn lookups(
    rows: &[CohortRow],
    wanted: &[u32],
    names: bool,
) -> PolarsResult<Vec<(Key, DataFrame)>> {
    let mut neighbours = (Vec::new(), Vec::new());
    let mut dob_district = (Vec::new(), Vec::new(), Vec::new());
    let mut swapped_district = (Vec::new(), Vec::new(), Vec::new());
    let mut dob_initial = (Vec::new(), Vec::new(), Vec::new());
    let mut swapped_initial = (Vec::new(), Vec::new(), Vec::new());
    let mut names_year = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &w in wanted {
        let r = &rows[w as usize];
        if let Some(typo) = r.nhs_number_typo {
            for n in NhsNumber::typo_neighbours(typo) {
                neighbours.0.push(w);
                neighbours.1.push(n.as_string());
            }
        }
        let surname = r.surname.as_deref().map(compare::name_key);
        let forename = r.forename.as_deref().map(compare::name_key);
        let Some(dob) = r.date_of_birth else { continue };
        if let Some(p) = &r.postcode {
            dob_district.0.push(w);
            dob_district.1.push(to_epoch_days(dob));
            dob_district.2.push(p.district().to_string());
            if let Some(s) = swapped(dob) {
                swapped_district.0.push(w);
                swapped_district.1.push(to_epoch_days(s));
                swapped_district.2.push(p.district().to_string());
            }
        }
        if !names {
            continue;
        }
        if let Some(s) = surname.as_deref().filter(|s| !s.is_empty()) {
            dob_initial.0.push(w);
            dob_initial.1.push(to_epoch_days(dob));
            dob_initial.2.push(initial(s));
            if let Some(sw) = swapped(dob) {
                swapped_initial.0.push(w);
                swapped_initial.1.push(to_epoch_days(sw));
                swapped_initial.2.push(initial(s));
            }
            if let Some(f) = forename.filter(|f| !f.is_empty()) {
                names_year.0.push(w);
                names_year.1.push(f);
                names_year.2.push(s.to_string());
                names_year.3.push(dob.year());
            }
        }
    }
    use column::*;
    let frame = |cols: Vec<Column>| DataFrame::new_infer_height(cols);
    let dob_pair = |(row, dob, other): (Vec<u32>, Vec<i32>, Vec<String>), name: &str| {
        frame(vec![
            Column::new(ROW.into(), row),
            Column::new(DOB.into(), dob),
            Column::new(name.into(), other),
        ])
    };
    Ok(vec![
        (
            Key::NhsNumberNeighbour,
            frame(vec![
                Column::new(ROW.into(), neighbours.0),
                Column::new(NHS_NUMBER.into(), neighbours.1),
            ])?,
        ),
        (Key::DobDistrict, dob_pair(dob_district, DISTRICT)?),
        (
            Key::SwappedDobDistrict,
            dob_pair(swapped_district, DISTRICT)?,
        ),
        (
            Key::DobSurnameInitial,
            dob_pair(dob_initial, SURNAME_INITIAL)?,
        ),
        (
            Key::SwappedDobSurnameInitial,
            dob_pair(swapped_initial, SURNAME_INITIAL)?,
        ),
        (
            Key::NamesYear,
            frame(vec![
                Column::new(ROW.into(), names_year.0),
                Column::new(FORENAME_KEY.into(), names_year.1),
                Column::new(SURNAME_KEY.into(), names_year.2),
                Column::new(YEAR.into(), names_year.3),
            ])?,
        ),
    ])
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

/// Compares a prepared row with a person: levels and the summed weight.
pub fn compare(
    model: &Model,
    scoring: &Scoring,
    row: &Prepared<'_>,
    person: &IndexPerson<'_>,
) -> ([Level; 6], f64) {
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
        compare::compare_nhs(row.nhs, person.nhs_digits()),
        compare::compare_dob(r.date_of_birth, person.date_of_birth),
        compare::compare_gender(r.gender, person.gender),
        compare::compare_postcode(r.postcode.as_ref(), person.postcode.as_ref()),
        forename,
        surname,
    ];
    let mut weight = 0.0;
    for (i, field) in Field::ALL.into_iter().enumerate() {
        if !scoring.fields[i] {
            levels[i] = Level::NotUsed;
        }
        weight += match (field, levels[i]) {
            (Field::NhsNumber, Level::OneEdit | Level::Transposition) => {
                model.nhs_neighbour_weight(levels[i], row.held_neighbours)
            }
            _ => model.weight(field, levels[i], name_of(row, field)),
        };
    }
    (levels, weight)
}

fn name_of<'r>(row: &'r Prepared<'_>, field: Field) -> Option<&'r str> {
    match field {
        Field::Forename => row.forename_key.as_deref(),
        Field::Surname => row.surname_key.as_deref(),
        _ => None,
    }
}

/// The weight a perfect match would give this row: the denominator of its
/// scores.
pub fn best_weight(model: &Model, scoring: &Scoring, row: &Prepared<'_>) -> f64 {
    Field::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| scoring.fields[*i])
        .map(|(_, f)| model.full_weight(f, name_of(row, f)))
        .sum()
}

/// A row's queue entry, or the best score of its candidates when none
/// reached the review threshold (`None`: no candidate at all).
pub type Scored = Result<QueueEntry, Option<f64>>;

/// Scores the pairs of one row and builds its queue entry: the person
/// whose NHS number the row gave first (a partial match), then the others
/// by score, those below the review threshold left out.
pub fn queue_entry(
    model: &Model,
    scoring: &Scoring,
    index: &Index,
    position: usize,
    row: &CohortRow,
    pairs: &[super::block::Pair],
) -> Scored {
    let mut prepared = Prepared::new(row, scoring.names);
    prepared.held_neighbours = pairs
        .iter()
        .filter(|p| p.keys & Key::NhsNumberNeighbour.bit() != 0)
        .count()
        .max(1);
    let best = best_weight(model, scoring, &prepared).max(f64::EPSILON);
    let mut candidates: Vec<Candidate> = pairs
        .iter()
        .map(|p| {
            let person = index.person(p.idx);
            let (levels, weight) = compare(model, scoring, &prepared, &person);
            let score = (100.0 * weight / best).clamp(0.0, 100.0);
            Candidate {
                idx: p.idx,
                person_id: person.person_id,
                score: (score * 10.0).round() / 10.0,
                weight,
                levels,
                values: Default::default(),
                keys: p.keys,
                nhs_number_found: levels[0] == Level::Exact && p.keys & Key::NhsNumber.bit() != 0,
                index_nhs_number: String::new(),
            }
        })
        .collect();
    let best = candidates.iter().map(|c| c.score).reduce(f64::max);
    candidates.retain(|c| c.nhs_number_found || c.score >= scoring.review_threshold);
    if candidates.is_empty() {
        return Err(best);
    }
    candidates.sort_by(|a, b| {
        b.nhs_number_found
            .cmp(&a.nhs_number_found)
            .then(b.weight.total_cmp(&a.weight))
            .then(a.person_id.cmp(&b.person_id))
    });
    candidates.truncate(scoring.max_candidates.max(1));
    for c in &mut candidates {
        let p = index.person(c.idx);
        let (forename, surname) = index.names(c.idx);
        c.index_nhs_number = p.nhs_number.unwrap_or_default().to_string();
        c.values = [
            p.nhs_number.unwrap_or_default().to_string(),
            p.date_of_birth.map(|d| d.to_string()).unwrap_or_default(),
            p.gender.map(|g| g.code().to_string()).unwrap_or_default(),
            p.postcode
                .as_ref()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
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
