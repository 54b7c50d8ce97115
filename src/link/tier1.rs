//! Tier 1, cross-check (DESIGN.md, "Linkage tiers"): a valid NHS number
//! found once in the index where every validation field the agreement
//! selects agrees is `validated`. This is the only automatic validation.
//!
//! Date of birth must agree exactly, the postcode in full, gender be equal
//! or not known on either side. A field blank on both sides (a postcode the
//! index never recorded) is neutral, but at least one selected field
//! besides the NHS number must positively agree. When the agreement allows
//! names (`manual_validation`), a forename that disagrees (not a typo: a
//! different name, Jaro-Winkler below 0.92) also stops validation: twins share date of birth,
//! postcode, gender and surname, and a cohort may carry the other twin's
//! NHS number. Everything else goes to tier 2 with the reason.

use crate::domain::gender::GenderAgreement;
use crate::domain::Postcode;
use crate::ingest::{CohortField, CohortRow};

use super::block::Pair;
use super::compare::{self, Level};
use super::index::Index;
use super::LinkConfig;

/// Tier 1's verdict on one row.
pub enum CrossCheck {
    Validated {
        idx: u32,
        reason: &'static str,
    },
    Invalid,
    /// Go to tier 2; the reason says why tier 1 could not validate, and
    /// `partial` whether the NHS number was found once.
    Candidates {
        reason: String,
        partial: bool,
    },
}

/// Tier 1 for one row, given the index rows holding its NHS number.
pub fn cross_check(
    row: &CohortRow,
    holders: &[Pair],
    index: &Index,
    config: &LinkConfig,
) -> CrossCheck {
    let nothing_to_match = row.nhs_number.is_none()
        && row.nhs_number_typo.is_none()
        && row.date_of_birth.is_none()
        && row.postcode.is_none()
        && row.forename.is_none()
        && row.surname.is_none();
    if nothing_to_match {
        return CrossCheck::Invalid;
    }
    let candidates = |reason: &str, partial| CrossCheck::Candidates {
        reason: reason.to_string(),
        partial,
    };
    if row.nhs_number.is_none() {
        return candidates("no valid nhs_number to cross-check", false);
    }
    let person = match holders {
        [] => return candidates("nhs_number not found in the index", false),
        [one] => index.person(one.idx),
        _ => {
            return candidates(
                "nhs_number is held by more than one person in the index",
                false,
            )
        }
    };
    let mut disagree = Vec::new();
    let mut missing = Vec::new();
    let mut agree = 0usize;
    let mut selected = 0usize;
    let mut neutral = Vec::new();
    for field in &config.validation_fields {
        let (name, check) = match field {
            CohortField::DateOfBirth => (
                "date_of_birth",
                FieldCheck::of(row.date_of_birth.as_ref(), person.date_of_birth.as_ref()),
            ),
            CohortField::Postcode => (
                "postcode",
                FieldCheck::of(row.postcode.as_ref().map(Postcode::as_str), person.postcode),
            ),
            CohortField::Gender => (
                "gender",
                match row.gender.zip(person.gender).map(|(c, i)| c.compare(i)) {
                    Some(GenderAgreement::Agree) => FieldCheck::Agree,
                    Some(GenderAgreement::Disagree) => FieldCheck::Disagree,
                    Some(GenderAgreement::NotKnown) | None => FieldCheck::Neutral,
                },
            ),
            _ => continue,
        };
        selected += 1;
        match check {
            FieldCheck::Agree => agree += 1,
            FieldCheck::Disagree => disagree.push(name),
            FieldCheck::Neutral => neutral.push(name),
            FieldCheck::MissingInCohort => missing.push(format!("{name} missing in the cohort")),
            FieldCheck::MissingInIndex => missing.push(format!("{name} missing in the index")),
        }
    }
    // Twins share everything but the forename (and the NHS number, which a
    // cohort may give for the wrong twin): when names are in use, a
    // forename that disagrees stops automatic validation.
    let forename_disagrees = config.manual_validation && {
        let key = |s: Option<&str>| s.map(compare::name_key).filter(|k| !k.is_empty());
        let (c_fore, c_sur) = (key(row.forename.as_deref()), key(row.surname.as_deref()));
        let (forename, _) = compare::compare_names(
            (c_fore.as_deref(), c_sur.as_deref()),
            (person.forename_key, person.surname_key),
        );
        // A typo (Jaro-Winkler ≥ 0.92), a shared part of a multi-part
        // name or names given the other way round still validate; a
        // different name (Theo and Theodore are 0.90) does not.
        !matches!(
            forename,
            Level::Exact
                | Level::Similar92
                | Level::TokenOverlap
                | Level::Swapped
                | Level::Missing
                | Level::NotUsed
        )
    };
    if forename_disagrees {
        disagree.push("forename");
    }
    if disagree.is_empty() && missing.is_empty() && (agree > 0 || selected == 0) {
        let idx = holders[0].idx;
        let reason = match (neutral.contains(&"gender"), neutral.len()) {
            (_, 0) => "all validation fields agree",
            (true, 1) => "all validation fields agree (gender not known: neutral)",
            _ => "all validation fields agree (a field not recorded on either side: neutral)",
        };
        return CrossCheck::Validated { idx, reason };
    }
    let mut parts = vec!["nhs_number found".to_string()];
    if !disagree.is_empty() {
        parts.push(format!(
            "{} disagree{}",
            disagree.join(", "),
            if disagree.len() == 1 { "s" } else { "" }
        ));
    }
    parts.extend(missing);
    if agree == 0 && disagree.is_empty() && selected > 0 {
        parts.push("no validation field besides nhs_number to cross-check".into());
    }
    CrossCheck::Candidates {
        reason: parts.join("; "),
        partial: true,
    }
}

/// How one validation field cross-checks.
enum FieldCheck {
    Agree,
    Disagree,
    /// Not recorded on either side, or gender not known.
    Neutral,
    MissingInCohort,
    MissingInIndex,
}

impl FieldCheck {
    fn of<T: PartialEq + ?Sized>(cohort: Option<&T>, index: Option<&T>) -> Self {
        match (cohort, index) {
            (Some(c), Some(i)) if c == i => Self::Agree,
            (Some(_), Some(_)) => Self::Disagree,
            (None, None) => Self::Neutral,
            (None, Some(_)) => Self::MissingInCohort,
            (Some(_), None) => Self::MissingInIndex,
        }
    }
}
