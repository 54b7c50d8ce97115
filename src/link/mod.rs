//! Stage 2, link: matches each cohort row to the master person index.
//!
//! Tier 1 (this module today) is the cross-check of the NHS master person
//! service's trace: a valid NHS number found in demographics where every
//! validation field the agreement selects agrees — date of birth exactly,
//! postcode in full, gender equal or not known on either side (neutral) —
//! is `validated`. A row whose number is found but where a field disagrees
//! or is missing is `unmatched` with the reason; fuzzy candidates and the
//! manual review loop are the next tiers. Nothing is ever validated on
//! names.

mod config;
mod output;
#[cfg(test)]
mod tests;

pub use config::LinkConfig;
pub use output::{write_linkage_csv, write_review_queue_csv};

use std::collections::HashMap;

use chrono::NaiveDate;
use polars::prelude::*;
use rayon::prelude::*;

use crate::domain::date::from_epoch_days;
use crate::domain::gender::GenderAgreement;
use crate::domain::{Gender, Postcode};
use crate::ingest::{Cohort, CohortField, CohortRow};
use crate::objections::Linked;

/// What linkage decided for one cohort row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Validated,
    Reviewed,
    Queued,
    Unmatched,
    Invalid,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validated => "validated",
            Self::Reviewed => "reviewed",
            Self::Queued => "queued",
            Self::Unmatched => "unmatched",
            Self::Invalid => "invalid",
        }
    }
}

/// One row of `linkage.csv`, in cohort order.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkageRow {
    pub study_id: String,
    /// Set only for `validated` and `reviewed`.
    pub person_id: Option<i64>,
    pub outcome: Outcome,
    pub tier: Option<u8>,
    pub score: Option<f64>,
    pub reason: String,
}

/// Counts per outcome, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkCounts {
    pub rows: usize,
    pub validated: usize,
    pub reviewed: usize,
    pub queued: usize,
    pub unmatched: usize,
    pub invalid: usize,
    /// Persons linked from more than one study ID (reported, not dropped).
    pub persons_linked_twice: usize,
}

/// The linkage stage's result.
#[derive(Debug, Clone)]
pub struct Linkage {
    pub rows: Vec<LinkageRow>,
    pub counts: LinkCounts,
    /// `study_id`, `person_id`, and the index's `nhs_number` of every
    /// validated or reviewed row: the input of the objections stage.
    pub linked: Linked,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("master person index: {source}\n  fix: check `sources.demographics` in the site config points at Parquet with the DESIGN.md columns (person_id, nhs_number, date_of_birth, gender, postcode, forename, surname)")]
    Demographics {
        #[source]
        source: PolarsError,
    },
}

/// The index's record of a person, as far as tier 1 compares it.
#[derive(Debug, Clone)]
struct IndexPerson {
    person_id: i64,
    nhs_number: String,
    date_of_birth: Option<NaiveDate>,
    gender: Gender,
    postcode: Option<Postcode>,
}

/// Links the cohort to the index.
pub fn link(
    cohort: &Cohort,
    demographics: LazyFrame,
    config: &LinkConfig,
) -> Result<Linkage, LinkError> {
    let index = lookup_by_nhs_number(cohort, demographics)?;
    let rows: Vec<LinkageRow> = cohort
        .rows
        .par_iter()
        .map(|row| cross_check(row, &index, config))
        .collect();

    let mut counts = LinkCounts {
        rows: rows.len(),
        ..Default::default()
    };
    let mut linked_study = Vec::new();
    let mut linked_person = Vec::new();
    let mut linked_nhs = Vec::new();
    let mut seen_person: HashMap<i64, usize> = HashMap::new();
    for (row, cohort_row) in rows.iter().zip(&cohort.rows) {
        match row.outcome {
            Outcome::Validated => counts.validated += 1,
            Outcome::Reviewed => counts.reviewed += 1,
            Outcome::Queued => counts.queued += 1,
            Outcome::Unmatched => counts.unmatched += 1,
            Outcome::Invalid => counts.invalid += 1,
        }
        if let Some(pid) = row.person_id {
            let times = seen_person.entry(pid).or_insert(0);
            *times += 1;
            if *times == 2 {
                counts.persons_linked_twice += 1;
            }
            let nhs = cohort_row
                .nhs_number
                .and_then(|n| index.get(&n.as_string()))
                .and_then(|people| people.first())
                .map(|p| p.nhs_number.clone())
                .unwrap_or_default();
            linked_study.push(row.study_id.clone());
            linked_person.push(pid);
            linked_nhs.push(nhs);
        }
    }
    let persons = DataFrame::new_infer_height(vec![
        Column::new("study_id".into(), linked_study),
        Column::new("person_id".into(), linked_person),
        Column::new("nhs_number".into(), linked_nhs),
    ])
    .map_err(|source| LinkError::Demographics { source })?;
    Ok(Linkage {
        rows,
        counts,
        linked: Linked { persons },
    })
}

/// The index's people whose NHS number one of the cohort's valid numbers,
/// by NHS number (a number held twice in the index maps to two people,
/// which the cross-check refuses to choose between).
fn lookup_by_nhs_number(
    cohort: &Cohort,
    demographics: LazyFrame,
) -> Result<HashMap<String, Vec<IndexPerson>>, LinkError> {
    let wrap = |source| LinkError::Demographics { source };
    let wanted: Vec<String> = cohort
        .rows
        .iter()
        .filter_map(|r| r.nhs_number.map(|n| n.as_string()))
        .collect();
    let wanted = DataFrame::new_infer_height(vec![Column::new("nhs_number".into(), wanted)])
        .map_err(wrap)?
        .lazy()
        .unique(None, UniqueKeepStrategy::Any);
    let df = crate::tables::collect(
        demographics
            .select([
                col("person_id").cast(DataType::Int64),
                col("nhs_number").cast(DataType::String),
                col("date_of_birth")
                    .cast(DataType::Date)
                    .cast(DataType::Int32),
                col("gender").cast(DataType::String),
                col("postcode").cast(DataType::String),
            ])
            .join(
                wanted,
                [col("nhs_number")],
                [col("nhs_number")],
                JoinArgs::new(JoinType::Semi),
            ),
    )
    .map_err(wrap)?;
    let pid = df
        .column("person_id")
        .map_err(wrap)?
        .i64()
        .map_err(wrap)?
        .clone();
    let nhs = df
        .column("nhs_number")
        .map_err(wrap)?
        .str()
        .map_err(wrap)?
        .clone();
    let dob = df
        .column("date_of_birth")
        .map_err(wrap)?
        .i32()
        .map_err(wrap)?
        .clone();
    let gender = df
        .column("gender")
        .map_err(wrap)?
        .str()
        .map_err(wrap)?
        .clone();
    let postcode = df
        .column("postcode")
        .map_err(wrap)?
        .str()
        .map_err(wrap)?
        .clone();
    let mut index: HashMap<String, Vec<IndexPerson>> = HashMap::with_capacity(df.height());
    for i in 0..df.height() {
        let (Some(person_id), Some(n)) = (pid.get(i), nhs.get(i)) else {
            continue;
        };
        index.entry(n.to_string()).or_default().push(IndexPerson {
            person_id,
            nhs_number: n.to_string(),
            date_of_birth: dob.get(i).and_then(from_epoch_days),
            gender: gender
                .get(i)
                .and_then(Gender::parse)
                .unwrap_or(Gender::NotKnown),
            postcode: postcode.get(i).and_then(Postcode::parse),
        });
    }
    Ok(index)
}

/// Tier 1 for one row.
fn cross_check(
    row: &CohortRow,
    index: &HashMap<String, Vec<IndexPerson>>,
    config: &LinkConfig,
) -> LinkageRow {
    let result = |outcome, person_id, reason: String| LinkageRow {
        study_id: row.study_id.clone(),
        person_id,
        outcome,
        tier: (outcome == Outcome::Validated).then_some(1),
        score: (outcome == Outcome::Validated).then_some(100.0),
        reason,
    };
    let problems: Vec<String> = row.problems.iter().map(ToString::to_string).collect();
    let with_problems = |reason: &str| {
        if problems.is_empty() {
            reason.to_string()
        } else {
            format!("{reason}; {}", problems.join("; "))
        }
    };
    let nothing_to_match = row.nhs_number.is_none()
        && row.nhs_number_typo.is_none()
        && row.date_of_birth.is_none()
        && row.postcode.is_none()
        && row.forename.is_none()
        && row.surname.is_none();
    if nothing_to_match {
        return result(Outcome::Invalid, None, with_problems("nothing to match on"));
    }
    let Some(nhs) = row.nhs_number else {
        return result(
            Outcome::Unmatched,
            None,
            with_problems("no valid nhs_number to cross-check"),
        );
    };
    let people = match index.get(&nhs.as_string()) {
        None => {
            return result(
                Outcome::Unmatched,
                None,
                with_problems("nhs_number not found in the index"),
            )
        }
        Some(p) if p.len() > 1 => {
            return result(
                Outcome::Unmatched,
                None,
                with_problems("nhs_number is held by more than one person in the index"),
            )
        }
        Some(p) => &p[0],
    };
    let mut disagree = Vec::new();
    let mut missing = Vec::new();
    let mut neutral = false;
    for field in &config.validation_fields {
        match field {
            CohortField::DateOfBirth => match row.date_of_birth {
                None => missing.push("date_of_birth"),
                Some(d) if Some(d) != people.date_of_birth => disagree.push("date_of_birth"),
                Some(_) => {}
            },
            CohortField::Postcode => match &row.postcode {
                None => missing.push("postcode"),
                Some(p) if Some(p) != people.postcode.as_ref() => disagree.push("postcode"),
                Some(_) => {}
            },
            CohortField::Gender => match row.gender.map(|g| g.compare(people.gender)) {
                None | Some(GenderAgreement::NotKnown) => neutral = true,
                Some(GenderAgreement::Disagree) => disagree.push("gender"),
                Some(GenderAgreement::Agree) => {}
            },
            _ => {}
        }
    }
    if disagree.is_empty() && missing.is_empty() {
        let reason = if neutral {
            "all validation fields agree (gender not known: neutral)"
        } else {
            "all validation fields agree"
        };
        return result(
            Outcome::Validated,
            Some(people.person_id),
            with_problems(reason),
        );
    }
    let mut parts = Vec::new();
    if !disagree.is_empty() {
        parts.push(format!(
            "nhs_number found; {} disagree{}",
            disagree.join(", "),
            if disagree.len() == 1 { "s" } else { "" }
        ));
    }
    if !missing.is_empty() {
        parts.push(format!("{} missing", missing.join(", ")));
    }
    result(Outcome::Unmatched, None, with_problems(&parts.join("; ")))
}
